package consumer

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe for a logger and a test at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines() []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

func TestQuieterLetsTheFirstThroughAndHoldsRepeatsBack(t *testing.T) {
	var buf lockedBuffer
	q := newQuieter(slog.NewJSONHandler(&buf, nil), time.Second, 8*time.Second)
	now := time.Unix(1000, 0)
	q.now = func() time.Time { return now }
	log := slog.New(q)
	// 30 s of the same warning every 100 ms, and one other message.
	for i := range 300 {
		log.Warn("unable to open connection to broker", "addr", "127.0.0.1:1")
		if i == 5 {
			log.Warn("another message")
		}
		now = now.Add(100 * time.Millisecond)
	}
	var through, held int
	for _, m := range buf.lines() {
		if m["msg"] == "unable to open connection to broker" {
			through++
			if h, ok := m["repeats_held"].(float64); ok {
				held += int(h)
			}
		}
	}
	// Through at 0, 1, 3, 7, 15, 23 s (the gap doubles to 8 s); each says
	// how many it held back since the previous one; the 69 after 23 s are
	// told with the next.
	if through != 6 || held != 300-6-69 {
		t.Errorf("%d records through, %d held back reported, of 300; want 6 and 225", through, held)
	}
	if n := len(buf.lines()); n != 7 {
		t.Errorf("%d lines, want 7 (the other message goes through on its own)", n)
	}
	// After a quiet spell longer than the longest gap it starts afresh.
	now = now.Add(time.Minute)
	before := len(buf.lines())
	log.Warn("unable to open connection to broker")
	log.Warn("unable to open connection to broker")
	if got := len(buf.lines()) - before; got != 1 {
		t.Errorf("%d lines after a quiet minute, want 1", got)
	}
}

// An operator starting Sluice against brokers that cannot be reached sees
// why within seconds: franz-go's own warning, naming the broker.
func TestUnreachableBrokersAreLoggedWithinSeconds(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connections are refused
	var buf lockedBuffer
	cfg := Config{Kafka: KafkaConfig{Brokers: []string{addr}, Topics: []string{"t"}}}
	c, err := New(cfg, SinkFunc(func(context.Context, *Message) error { return nil }),
		WithLogger(slog.New(slog.NewJSONHandler(&buf, nil))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, m := range buf.lines() {
			if m["component"] == "franz-go" && m["level"] == "WARN" && strings.Contains(strings.ToLower(asString(m)), strings.ToLower(addr)) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no franz-go warning naming %s within 5 s; the log:\n%s", addr, buf.b.String())
		}
		time.Sleep(20 * time.Millisecond) // polling the log buffer
	}
}

func asString(m map[string]any) string {
	b, _ := json.Marshal(m)
	return string(b)
}

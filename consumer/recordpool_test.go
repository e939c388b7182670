package consumer

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/kafkatest"
)

// A class pool keeps items up to its limit, counted by class size, and
// serves a class from the next ones up when its own is empty.
func TestClassPool(t *testing.T) {
	p := classPool[[]byte]{unit: 1}
	p.keepUpTo(1024 + 512)
	p.put(10, make([]byte, 0, 1024))
	p.put(9, make([]byte, 0, 512))
	p.put(8, make([]byte, 0, 256)) // over the limit: dropped
	if p.kept != 1536 {
		t.Fatalf("kept %d bytes, want 1536 (the third put passes the limit)", p.kept)
	}
	if b, ok := p.get(8); !ok || cap(b) != 512 {
		t.Fatalf("get(8) = cap %d, %v; want the 512 one (the next class up)", cap(b), ok)
	}
	if b, ok := p.get(10); !ok || cap(b) != 1024 {
		t.Fatalf("get(10) = cap %d, %v; want the 1024 one", cap(b), ok)
	}
	if _, ok := p.get(5); ok || p.kept != 0 {
		t.Fatalf("an empty pool served class 5 (kept %d)", p.kept)
	}
	p.put(12, make([]byte, 0, 4096)) // larger than the whole limit
	if p.kept != 0 {
		t.Fatal("an item larger than the limit was kept")
	}
}

// Every record's key and value are what was produced when the sink reads
// them, while the client's record memory goes round its pool many times (a
// window of 300 records, 30 000 compressible records): a record recycled
// while its message could still be read would show another record's bytes.
// And the memory does come back to the pool.
func TestRecycledRecordsKeepTheirContent(t *testing.T) {
	cl, topics := kafkatest.New(t, 4, "recycle")
	topic := topics[0]
	const n = 30_000
	value := func(i int) string { return fmt.Sprintf("v%d-%s", i, strings.Repeat("x", i%200)) }
	cl.Produce(topic, n, func(i int) ([]byte, []byte) {
		return []byte(fmt.Sprint(i)), []byte(value(i))
	})
	recordSlices.mu.Lock()
	recordSlices.free = [32][][]kgo.Record{}
	recordSlices.kept = 0
	recordSlices.mu.Unlock()

	var mu sync.Mutex
	seen := make(map[string]bool, n)
	var bad []string
	all := make(chan struct{})
	sink := SinkFunc(func(_ context.Context, m *Message) error {
		var i int
		_, err := fmt.Sscan(string(m.Key), &i)
		mu.Lock()
		defer mu.Unlock()
		if err != nil || string(m.Value) != value(i) {
			if len(bad) < 5 {
				bad = append(bad, fmt.Sprintf("offset %d/%d: key %q value %.20q", m.Partition, m.Offset, m.Key, m.Value))
			}
		}
		seen[string(m.Key)] = true
		if len(seen) == n {
			close(all)
		}
		return nil
	})
	cfg := Config{Workers: 4, MaxRecords: 300, CommitInterval: 50 * time.Millisecond,
		Kafka: KafkaConfig{Brokers: cl.Brokers, Topics: []string{topic}, Group: "g-" + topic,
			FetchMaxWait: 50 * time.Millisecond}}
	c, err := New(cfg, sink, WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	select {
	case <-all:
	case <-time.After(2 * time.Minute):
		mu.Lock()
		t.Errorf("%d of %d records delivered in 2 min", len(seen), n)
		mu.Unlock()
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Errorf("records delivered with another record's bytes: %v", bad)
	}
	recordSlices.mu.Lock()
	kept := recordSlices.kept
	recordSlices.mu.Unlock()
	if kept == 0 {
		t.Error("no record memory came back to the pool: records are not recycled")
	}
}

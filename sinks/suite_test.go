package sinks_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/consumer"
	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/testutil"
	"github.com/sluicehq/sluice/sinks"
	"github.com/sluicehq/sluice/sinks/sinktest"
)

// lineRecord turns a JSON line back into what was delivered.
func lineRecord(t *testing.T, l sinks.Line) sinktest.Record {
	t.Helper()
	r := sinktest.Record{}
	dec := func(s *string, b64 string) []byte {
		if s != nil {
			return []byte(*s)
		}
		if b64 == "" {
			return nil
		}
		b, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			t.Fatalf("bad base64 %q: %v", b64, err)
		}
		return b
	}
	r.Key, r.Value = dec(l.Key, l.KeyB64), dec(l.Value, l.ValueB64)
	if len(l.Headers) > 0 {
		r.Headers = map[string]string{}
		for _, h := range l.Headers {
			r.Headers[h.Key] = string(dec(h.Value, h.ValueB64))
		}
	}
	return r
}

func readLines(t *testing.T, data []byte) []sinktest.Record {
	t.Helper()
	var out []sinktest.Record
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l sinks.Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("bad line %q: %v", sc.Text(), err)
		}
		out = append(out, lineRecord(t, l))
	}
	return out
}

func TestNoopSuite(t *testing.T) {
	sinktest.Run(t, sinktest.Harness{
		New:               func(*testing.T) (consumer.Sink, sinktest.ReadFunc) { return sinks.Noop{}, nil },
		NoData:            true,
		AcceptsAfterClose: true,
	})
}

func TestStdoutSuite(t *testing.T) {
	sinktest.Run(t, sinktest.Harness{
		New: func(t *testing.T) (consumer.Sink, sinktest.ReadFunc) {
			var buf testutil.SyncBuffer
			return sinks.NewStdout(&buf), func(t *testing.T, _ int) []sinktest.Record { return readLines(t, buf.Bytes()) }
		},
		Ordered: true, Headers: true,
	})
}

func TestFileSuite(t *testing.T) {
	sinktest.Run(t, sinktest.Harness{
		New: func(t *testing.T) (consumer.Sink, sinktest.ReadFunc) {
			path := filepath.Join(t.TempDir(), "out.jsonl")
			s, err := sinks.NewFile(sinks.FileConfig{Path: path})
			if err != nil {
				t.Fatal(err)
			}
			return s, func(t *testing.T, _ int) []sinktest.Record {
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				return readLines(t, data)
			}
		},
		Ordered: true, Headers: true,
	})
}

// webhook is an httptest server that stores what it is sent, one JSON
// object or an array of them per request, in arrival order.
type webhook struct {
	*httptest.Server
	mu       sync.Mutex
	lines    []sinks.Line
	requests atomic.Int64
	// status, when set, answers instead of storing.
	status func(r *http.Request, lines []sinks.Line) (code int, hdr http.Header)
}

func newWebhook(t *testing.T) *webhook {
	w := &webhook{}
	w.Server = httptest.NewServer(http.HandlerFunc(w.serve))
	t.Cleanup(w.Close)
	return w
}

func (w *webhook) serve(rw http.ResponseWriter, r *http.Request) {
	w.requests.Add(1)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	var lines []sinks.Line
	if bytes.HasPrefix(body, []byte("[")) {
		err = json.Unmarshal(body, &lines)
	} else {
		var l sinks.Line
		err = json.Unmarshal(body, &l)
		lines = []sinks.Line{l}
	}
	if err != nil {
		http.Error(rw, "bad json: "+err.Error(), http.StatusBadRequest)
		return
	}
	w.mu.Lock()
	status := w.status
	w.mu.Unlock()
	if status != nil {
		if code, hdr := status(r, lines); code != 0 {
			for k, v := range hdr {
				rw.Header()[k] = v
			}
			rw.WriteHeader(code)
			fmt.Fprintf(rw, "status %d\n", code)
			return
		}
	}
	w.mu.Lock()
	w.lines = append(w.lines, lines...)
	w.mu.Unlock()
	rw.WriteHeader(http.StatusNoContent)
}

func (w *webhook) setStatus(f func(r *http.Request, lines []sinks.Line) (int, http.Header)) {
	w.mu.Lock()
	w.status = f
	w.mu.Unlock()
}

func (w *webhook) records(t *testing.T) []sinktest.Record {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]sinktest.Record, len(w.lines))
	for i, l := range w.lines {
		out[i] = lineRecord(t, l)
	}
	return out
}

func TestHTTPSuite(t *testing.T) {
	for _, batch := range []int{1, 4} {
		t.Run(fmt.Sprintf("batch=%d", batch), func(t *testing.T) {
			var current *webhook
			sinktest.Run(t, sinktest.Harness{
				New: func(t *testing.T) (consumer.Sink, sinktest.ReadFunc) {
					w := newWebhook(t)
					current = w
					s, err := sinks.NewHTTP(sinks.HTTPConfig{URL: w.URL, BatchMax: batch, Timeout: 5 * time.Second})
					if err != nil {
						t.Fatal(err)
					}
					return s, func(t *testing.T, _ int) []sinktest.Record { return w.records(t) }
				},
				Ordered: true, Headers: true,
				Break: func(t *testing.T) func() {
					current.setStatus(func(*http.Request, []sinks.Line) (int, http.Header) { return 500, nil })
					return func() { current.setStatus(nil) }
				},
			})
		})
	}
}

func TestKafkaSuite(t *testing.T) {
	sinktest.Run(t, sinktest.Harness{
		New: func(t *testing.T) (consumer.Sink, sinktest.ReadFunc) {
			cl, topics := kafkatest.New(t, 3, "sink")
			s, err := sinks.NewKafka(sinks.KafkaConfig{Brokers: cl.Brokers, Topic: topics[0], Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			return s, func(t *testing.T, n int) []sinktest.Record { return readKafka(t, cl.Brokers, topics[0], n) }
		},
		Ordered: true, Headers: true,
	})
}

// readKafka reads topic from the start until it has n records or 30 s pass
// (the real broker, shared with the other packages' tests, can be slow to
// serve a new topic's partitions).
func readKafka(t *testing.T, brokers []string, topic string, n int) []sinktest.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []sinktest.Record
	for len(out) < n && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			rec := sinktest.Record{Key: r.Key, Value: r.Value, Headers: map[string]string{}}
			for _, h := range r.Headers {
				rec.Headers[h.Key] = string(h.Value)
			}
			out = append(out, rec)
		})
	}
	if len(out) < n {
		// Say whether the records are missing from the topic or were not
		// read in time.
		ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topic)
		t.Logf("read %d of %d records in 30 s; the topic's end offsets: %v (%v)", len(out), n, ends, err)
	}
	return out
}

package consumer_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/consumer"
	"github.com/sluicehq/sluice/internal/kafkatest"
)

// ledger is a sink that records every delivery by partition and offset.
type ledger struct {
	mu     sync.Mutex
	seen   map[[2]int64]int // (partition, offset) -> deliveries
	byKey  map[string][]int64
	total  int
	notify chan struct{}
	delay  time.Duration
}

func newLedger() *ledger {
	return &ledger{seen: map[[2]int64]int{}, byKey: map[string][]int64{}, notify: make(chan struct{}, 1)}
}

func (l *ledger) Deliver(ctx context.Context, m *consumer.Message) error {
	if l.delay > 0 {
		select {
		case <-time.After(l.delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	l.mu.Lock()
	l.seen[[2]int64{int64(m.Partition), m.Offset}]++
	k := fmt.Sprintf("%d/%s", m.Partition, m.Key)
	l.byKey[k] = append(l.byKey[k], m.Offset)
	l.total++
	l.mu.Unlock()
	select {
	case l.notify <- struct{}{}:
	default:
	}
	return nil
}

// waitFor blocks until the ledger holds n distinct records or the test times out.
func (l *ledger) waitFor(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		l.mu.Lock()
		got := len(l.seen)
		l.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-l.notify:
		case <-deadline:
			t.Fatalf("timed out: %d of %d records delivered", got, n)
		}
	}
}

func (l *ledger) duplicates() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := 0
	for _, n := range l.seen {
		d += n - 1
	}
	return d
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func baseConfig(brokers []string, topic, group string) consumer.Config {
	return consumer.Config{
		Workers:        4,
		CommitInterval: 100 * time.Millisecond,
		Kafka: consumer.KafkaConfig{
			Brokers: brokers, Topics: []string{topic}, Group: group,
			FetchMaxWait: 100 * time.Millisecond,
		},
	}
}

// run starts c and returns a function that stops it and waits for Run.
func run(t *testing.T, c *consumer.Consumer) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-errc; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func keyed(i int) ([]byte, []byte) {
	return []byte(fmt.Sprintf("k%d", i%17)), []byte(fmt.Sprintf("v%d", i))
}

func TestCleanRunDeliversEachRecordOnceAndCommitsAll(t *testing.T) {
	for _, ord := range []consumer.Ordering{consumer.OrderKey, consumer.OrderPartition, consumer.OrderNone} {
		t.Run(string(ord), func(t *testing.T) {
			const n = 5000
			cl, topics := kafkatest.New(t, 4, "clean")
			cl.Produce(topics[0], n, keyed)
			sink := newLedger()
			cfg := baseConfig(cl.Brokers, topics[0], "g-"+topics[0])
			cfg.Ordering = ord
			c, err := consumer.New(cfg, sink, consumer.WithLogger(quietLogger()))
			if err != nil {
				t.Fatal(err)
			}
			stop := run(t, c)
			sink.waitFor(t, n, time.Minute)
			stop()

			if d := sink.duplicates(); d != 0 {
				t.Errorf("%d duplicates in a clean run", d)
			}
			if got := sink.total; got != n {
				t.Errorf("delivered %d, want %d", got, n)
			}
			ends := cl.EndOffsets(topics[0])
			committed := cl.Committed("g-"+topics[0], topics[0])
			for p, end := range ends {
				if committed[p] != end {
					t.Errorf("partition %d: committed %d, log end %d", p, committed[p], end)
				}
			}
			if ord != consumer.OrderNone {
				for k, offs := range sink.byKey {
					for i := 1; i < len(offs); i++ {
						if offs[i] <= offs[i-1] {
							t.Fatalf("key %s delivered out of order: %v", k, offs[:i+1])
						}
					}
				}
			}
			if w := c.Window(); w.Records() != 0 || w.Bytes() != 0 {
				t.Errorf("window holds %d records, %d bytes after a clean stop", w.Records(), w.Bytes())
			}
		})
	}
}

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

func (l *ledger) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.seen)
}

func value100(i int) ([]byte, []byte) {
	v := make([]byte, 100)
	copy(v, fmt.Sprintf("v%d", i))
	return []byte(fmt.Sprintf("k%d", i%31)), v
}

func TestSlowSinkPausesAndWindowStaysInBudget(t *testing.T) {
	const n = 6000
	cl, topics := kafkatest.New(t, 4, "slow")
	cl.Produce(topics[0], n, value100)
	sink := newLedger()
	sink.delay = 2 * time.Millisecond // 4 workers: about 2000 records/s
	cfg := baseConfig(cl.Brokers, topics[0], "g-"+topics[0])
	cfg.MaxRecords = 2000
	cfg.MaxBytes = 160 << 10                // about 1550 records of 103 bytes: bytes bind first
	cfg.PauseDelay = 100 * time.Millisecond // the window turns over in about 0.8 s
	c, err := consumer.New(cfg, sink, consumer.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	sink.waitFor(t, n, 2*time.Minute)
	stop()
	st := c.Stats()
	if st.Pauses == 0 || st.Resumes == 0 {
		t.Errorf("pauses %d resumes %d: a slow sink must pause and resume partitions", st.Pauses, st.Resumes)
	}
	w := c.Window()
	if w.PeakRecords() > w.MaxRecords() || w.PeakBytes() > w.MaxBytes() {
		t.Errorf("window peaked at %d records / %d bytes, budget %d / %d",
			w.PeakRecords(), w.PeakBytes(), w.MaxRecords(), w.MaxBytes())
	}
	if d := sink.duplicates(); d != 0 {
		t.Errorf("%d duplicates", d)
	}
}

// blockingSink delivers nothing until released, except for what pass allows.
type blockingSink struct {
	*ledger
	release chan struct{}
	pass    func(m *consumer.Message) bool
}

func (b *blockingSink) Deliver(ctx context.Context, m *consumer.Message) error {
	if b.pass == nil || !b.pass(m) {
		select {
		case <-b.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return b.ledger.Deliver(ctx, m)
}

func TestStuckRecordHoldsTheCommitOfItsPartitionOnly(t *testing.T) {
	const n = 2000
	cl, topics := kafkatest.New(t, 2, "stuck")
	cl.Produce(topics[0], n, keyed)
	group := "g-" + topics[0]
	sink := &blockingSink{ledger: newLedger(), release: make(chan struct{}),
		pass: func(m *consumer.Message) bool { return m.Partition != 0 || m.Offset != 5 }}
	cfg := baseConfig(cl.Brokers, topics[0], group)
	cfg.Ordering = consumer.OrderNone
	cfg.BatchMax = 1 // a worker delivers its batch in order: one stuck record holds the rest of its batch
	c, err := consumer.New(cfg, sink, consumer.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	sink.waitFor(t, n-1, time.Minute)
	ends := cl.EndOffsets(topics[0])
	// Commits keep running for partition 1 while offset 5 of partition 0 is
	// stuck: wait until partition 1 is fully committed, then look at 0.
	deadline := time.Now().Add(time.Minute)
	for cl.Committed(group, topics[0])[1] != ends[1] {
		if time.Now().After(deadline) {
			t.Fatal("partition 1 never fully committed")
		}
		time.Sleep(20 * time.Millisecond) // polling the broker: there is no event to wait on
	}
	if got := cl.Committed(group, topics[0])[0]; got > 5 {
		t.Fatalf("partition 0 committed %d past the undelivered offset 5", got)
	}
	close(sink.release)
	sink.waitFor(t, n, time.Minute)
	stop()
	if got := cl.Committed(group, topics[0])[0]; got != ends[0] {
		t.Fatalf("partition 0 committed %d after release, want %d", got, ends[0])
	}
}

func TestCleanShutdownThenRestartGivesNoDuplicates(t *testing.T) {
	const n = 20000
	cl, topics := kafkatest.New(t, 4, "restart")
	cl.Produce(topics[0], n, keyed)
	group := "g-" + topics[0]
	sink := newLedger()
	sink.delay = 50 * time.Microsecond
	first, err := consumer.New(baseConfig(cl.Brokers, topics[0], group), sink, consumer.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, first)
	sink.waitFor(t, n/4, time.Minute)
	stop() // what SIGTERM does
	got := sink.count()
	if got >= n {
		t.Skipf("the first run finished all %d records before the stop; nothing to check", n)
	}
	second, err := consumer.New(baseConfig(cl.Brokers, topics[0], group), sink, consumer.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	stop = run(t, second)
	sink.waitFor(t, n, time.Minute)
	stop()
	if d := sink.duplicates(); d != 0 {
		t.Fatalf("%d duplicates after a clean shutdown at %d of %d records", d, got, n)
	}
}

func TestRebalanceAmongThreeMembersUnderLoadLosesNothing(t *testing.T) {
	const n = 30000
	cl, topics := kafkatest.New(t, 6, "rebalance")
	group := "g-" + topics[0]
	sink := newLedger()
	sink.delay = 20 * time.Microsecond
	newMember := func() *consumer.Consumer {
		cfg := baseConfig(cl.Brokers, topics[0], group)
		cfg.MaxRecords = 2000
		c, err := consumer.New(cfg, sink, consumer.WithLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for i := range 10 {
			cl.Produce(topics[0], n/10, func(j int) ([]byte, []byte) { return keyed(i*n/10 + j) })
		}
	}()
	stop1 := run(t, newMember())
	sink.waitFor(t, n/10, time.Minute)
	stop2 := run(t, newMember())
	sink.waitFor(t, n/4, time.Minute)
	stop3 := run(t, newMember())
	sink.waitFor(t, n/2, time.Minute)
	stop2() // a member leaves under load
	stop4 := run(t, newMember())
	<-produced
	sink.waitFor(t, n, 2*time.Minute)
	stop1()
	stop3()
	stop4()
	ends := cl.EndOffsets(topics[0])
	committed := cl.Committed(group, topics[0])
	for p, end := range ends {
		if committed[p] != end {
			t.Errorf("partition %d: committed %d, log end %d", p, committed[p], end)
		}
	}
	t.Logf("%d records, %d duplicates across 4 members and 4 rebalances", n, sink.duplicates())
}

func TestPausedPartitionRevokedAndReassignedResumes(t *testing.T) {
	const n = 3000
	cl, topics := kafkatest.New(t, 4, "repause")
	cl.Produce(topics[0], n, keyed)
	group := "g-" + topics[0]
	shared := newLedger()
	// The first member's sink is blocked, so its window fills and every
	// partition pauses.
	blocked := &blockingSink{ledger: shared, release: make(chan struct{})}
	cfg := baseConfig(cl.Brokers, topics[0], group)
	cfg.MaxRecords = 200
	cfg.RebalanceTimeout = 500 * time.Millisecond
	first, err := consumer.New(cfg, blocked, consumer.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	stop1 := run(t, first)
	waitUntil(t, time.Minute, "all partitions paused", func() bool {
		fs := first.FlowState()
		return len(fs.Partitions) == 4 && fs.Paused == 4
	})
	// A second member takes half of the paused partitions, then leaves, so
	// they come back to the first member.
	second, err := consumer.New(baseConfig(cl.Brokers, topics[0], group), shared, consumer.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	stop2 := run(t, second)
	waitUntil(t, time.Minute, "the second member gets partitions", func() bool {
		return second.Stats().Partitions > 0 && first.Stats().Partitions < 4
	})
	stop2()
	waitUntil(t, time.Minute, "the partitions come back", func() bool { return first.Stats().Partitions == 4 })
	close(blocked.release)
	shared.waitFor(t, n, time.Minute) // would time out if a re-assigned partition stayed paused
	stop1()
}

// waitUntil polls cond: these are states of other goroutines and of the
// broker, with no event to wait on.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

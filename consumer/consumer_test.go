package consumer_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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

// someKeyless is keyed, but every fifth record has no key.
func someKeyless(i int) ([]byte, []byte) {
	k, v := keyed(i)
	if i%5 == 0 {
		k = nil
	}
	return k, v
}

func TestCleanRunDeliversEachRecordOnceAndCommitsAll(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ord     consumer.Ordering
		produce func(int) ([]byte, []byte)
	}{
		{"key", consumer.OrderKey, keyed},
		{"key-some-keyless", consumer.OrderKey, someKeyless},
		{"partition", consumer.OrderPartition, keyed},
		{"none", consumer.OrderNone, keyed},
	} {
		ord := tc.ord
		t.Run(tc.name, func(t *testing.T) {
			const n = 5000
			cl, topics := kafkatest.New(t, 4, "clean")
			cl.Produce(topics[0], n, tc.produce)
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
					if strings.HasSuffix(k, "/") {
						continue // records without a key (partition/key) carry no order
					}
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

// A clean shutdown (what SIGTERM does) in the middle of the stream, then a
// restart in the same group: nothing lost, nothing delivered twice. A gate
// lets a quarter of the records through and holds the next deliveries
// until the stop has begun, so the stop always lands mid-stream with
// deliveries in flight and a full window to drain.
func TestCleanShutdownThenRestartGivesNoDuplicates(t *testing.T) {
	const n, first, window = 20000, 5000, 1000
	cl, topics := kafkatest.New(t, 4, "restart")
	cl.Produce(topics[0], n, keyed)
	group := "g-" + topics[0]
	sink := newLedger()
	g := newGate(sink, first)
	cfg := baseConfig(cl.Brokers, topics[0], group)
	cfg.MaxRecords = window // what the first run can still deliver once stopped: what it had admitted
	c1, err := consumer.New(cfg, g, consumer.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var runErr error
	go func() { defer close(done); runErr = c1.Run(ctx) }()
	t.Cleanup(func() {
		g.open()
		cancel()
		<-done
	})
	g.waitHeld(t, time.Minute)
	cancel() // what SIGTERM does
	g.open() // the drain delivers what was admitted
	select {
	case <-done:
		if runErr != nil {
			t.Fatalf("first run: %v", runErr)
		}
	case <-time.After(time.Minute):
		t.Fatal("the first run did not stop within a minute")
	}
	got := sink.count()
	if got <= first || got >= first+2*window {
		t.Fatalf("the first run delivered %d of %d: want more than the %d let through before the stop "+
			"(it drains what it admitted) and less than two windows more", got, n, first)
	}
	// A clean stop commits everything it delivered, and delivered a
	// contiguous prefix of each partition.
	committed := cl.Committed(group, topics[0])
	perPart := map[int64]int64{}
	sink.mu.Lock()
	for po := range sink.seen {
		perPart[po[0]]++
	}
	for po := range sink.seen {
		if po[1] >= committed[int32(po[0])] {
			t.Errorf("partition %d offset %d delivered but not committed (committed %d)", po[0], po[1], committed[int32(po[0])])
			break
		}
	}
	sink.mu.Unlock()
	for p, off := range committed {
		if perPart[int64(p)] != off {
			t.Errorf("partition %d: committed %d after %d records delivered", p, off, perPart[int64(p)])
		}
	}
	if w := c1.Window(); w.Records() != 0 {
		t.Errorf("the first run's window holds %d records after its stop", w.Records())
	}

	c2, err := consumer.New(cfg, sink, consumer.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c2)
	sink.waitFor(t, n, time.Minute)
	stop()
	if d := sink.duplicates(); d != 0 {
		t.Errorf("%d duplicates after a clean shutdown at %d of %d records", d, got, n)
	}
	if sink.count() != n {
		t.Errorf("%d distinct records delivered, want %d", sink.count(), n)
	}
	ends := cl.EndOffsets(topics[0])
	committed = cl.Committed(group, topics[0])
	for p, end := range ends {
		if committed[p] != end {
			t.Errorf("partition %d: committed %d, log end %d", p, committed[p], end)
		}
	}
}

// Members join and leave a group while records flow. Each member delivers
// through its own gate, and at every change of membership each member is
// held at its gate with deliveries in flight and a full window, so every
// rebalance happens under load, whatever the scheduling. A revoke waits
// for its in-flight deliveries: the test lets a member's gate go a little
// further as soon as a revoke of its partitions begins.
//
// The bound on duplicates is the contract's (docs/GUARANTEES.md, P2, P3):
// a revoked partition commits its done prefix before it is released, and
// a clean leave drains and commits everything. With partition ordering a
// partition's deliveries are in offset order, so its done prefix is all it
// delivered: no duplicates at all. With key ordering a record of one key
// can be delivered while an earlier offset of another key still waits; a
// revoke repeats at most those, which the window holds: at most one
// window per revoked partition.
func TestRebalanceAmongThreeMembersUnderLoadLosesNothing(t *testing.T) {
	for _, ord := range []consumer.Ordering{consumer.OrderKey, consumer.OrderPartition} {
		t.Run(string(ord), func(t *testing.T) { testRebalanceUnderLoad(t, ord) })
	}
}

func testRebalanceUnderLoad(t *testing.T, ord consumer.Ordering) {
	const (
		partitions = 6
		n          = 12000 // 2000 a partition
		window     = 200
		first      = 400 // the first member alone, before the first join
		step       = 150 // each member, at each change
	)
	// Until everything is let through, at most first + 8 steps + one
	// drained window (the leaving member's) are delivered: 1800, fewer
	// than a partition holds, so no member runs out of records to hold.
	cl, topics := kafkatest.New(t, partitions, "rebalance")
	cl.ProduceEven(topics[0], partitions, n, keyed)
	group := "g-" + topics[0]
	sink := newLedger()

	type member struct {
		name    string
		c       *consumer.Consumer
		g       *gate
		reg     *prometheus.Registry
		stop    func()
		revoked float64 // partitions revoked, as last seen
	}
	var all []*member
	join := func(name string, limit int) *member {
		cfg := baseConfig(cl.Brokers, topics[0], group)
		cfg.MaxRecords = window
		cfg.Ordering = ord
		m := &member{name: name, g: newGate(sink, limit), reg: prometheus.NewRegistry()}
		c, err := consumer.New(cfg, m.g, consumer.WithLogger(quietLogger()), consumer.WithRegisterer(m.reg))
		if err != nil {
			t.Fatal(err)
		}
		m.c = c
		m.stop = run(t, c)
		t.Cleanup(m.g.open) // runs before the stop run registered
		all = append(all, m)
		return m
	}
	revokedOf := func(m *member) float64 { return counterWith(t, m.reg, "sluice_rebalances_total", "revoked") }
	// settle waits until the live members own every partition between them,
	// each owns some, and each is held at its gate with a delivery in
	// flight. Whenever a revoke of a member's partitions begins, its gate
	// lets step more through, so that the revoke can finish.
	settle := func(what string, live ...*member) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			ok, owned := true, 0
			for _, m := range live {
				if r := revokedOf(m); r > m.revoked {
					m.revoked = r
					m.g.raise(step)
				}
				p := m.c.Stats().Partitions
				passed, held, limit := m.g.state()
				owned += p
				ok = ok && p > 0 && held > 0 && passed >= limit
			}
			if ok && owned == partitions {
				return
			}
			if time.Now().After(deadline) {
				for _, m := range live {
					passed, held, limit := m.g.state()
					t.Logf("%s: %d partitions, %d passed of %d, %d held", m.name, m.c.Stats().Partitions, passed, limit, held)
				}
				t.Fatalf("timed out waiting for the group to settle after %s", what)
			}
			time.Sleep(10 * time.Millisecond) // member and group state: no event to wait on
		}
	}

	m1 := join("m1", first)
	settle("m1 started", m1)
	m2 := join("m2", step)
	settle("m2 joined", m1, m2)
	m3 := join("m3", step)
	settle("m3 joined", m1, m2, m3)
	// m2 leaves cleanly under load: its drain delivers what it admitted,
	// and its leave repeats nothing (its revokes are not in the bound).
	leaving := revokedOf(m2)
	m2.g.open()
	m2.stop()
	settle("m2 left", m1, m3)
	m4 := join("m4", step)
	settle("m4 joined", m1, m3, m4)

	revoked := leaving // partitions revoked from members that stayed
	for _, m := range []*member{m1, m3, m4} {
		revoked += revokedOf(m)
	}
	for _, m := range all {
		m.g.open()
	}
	sink.waitFor(t, n, 2*time.Minute)
	dups := sink.duplicates()
	m1.stop()
	m3.stop()
	m4.stop()

	if d := sink.duplicates(); d != dups {
		t.Errorf("the last members' clean leaves, after every record was delivered, added %d duplicates", d-dups)
	}
	bound := 0
	if ord == consumer.OrderKey {
		bound = int(revoked) * window
	}
	if dups > bound {
		t.Errorf("%d duplicates with %s ordering after %v partitions were revoked under load; the bound is %d",
			dups, ord, revoked, bound)
	}
	if got := sink.count(); got != n {
		t.Errorf("%d distinct records delivered, want %d", got, n)
	}
	ends := cl.EndOffsets(topics[0])
	committed := cl.Committed(group, topics[0])
	for p, end := range ends {
		if committed[p] != end {
			t.Errorf("partition %d: committed %d, log end %d", p, committed[p], end)
		}
	}
	t.Logf("%s ordering: %d records, %d duplicates (bound %d) across 4 members, %v partitions revoked from members that stayed",
		ord, n, dups, bound, revoked)
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

package consumer_test

// Each test here reproduces one way the pipeline used to break its
// published guarantees (issue 10 of the project), in the conditions that
// broke it: a slow or failing sink during a rebalance, one large record, a
// JetStream pull into a small byte budget, redeliveries that were not
// failures. Each failed before its fix.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/consumer"
	"github.com/sluicehq/sluice/internal/kafkatest"
)

// probe is a sink that records every call: which partition and offset,
// when it started, whether its context was still live, and whether another
// call for the same partition and key was running at that moment. fail, when
// set, decides each call's outcome; failing calls take 15 ms (or until ctx
// ends) so that overlapping calls can show.
type probe struct {
	fail func(m *consumer.Message) error
	// lane names what may not be delivered twice at once (default:
	// partition and key); overlap counts such deliveries, and may be
	// shared with other probes (members of one group).
	lane    func(m *consumer.Message) string
	overlap *overlapTracker

	mu    sync.Mutex
	calls []probeCall
	ok    map[[2]int64]int
}

type probeCall struct {
	partition int32
	offset    int64
	at        time.Time
	live      bool
}

func newProbe(fail func(m *consumer.Message) error) *probe {
	return &probe{fail: fail, overlap: newOverlapTracker(), ok: map[[2]int64]int{}}
}

// overlapTracker counts deliveries of one lane running at the same time,
// across the probes that share it (members of one group).
type overlapTracker struct {
	mu       sync.Mutex
	running  map[string]int
	overlaps []string
}

func newOverlapTracker() *overlapTracker { return &overlapTracker{running: map[string]int{}} }

func (o *overlapTracker) list() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.overlaps...)
}

func (o *overlapTracker) begin(lane string, offset int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.running[lane] > 0 {
		o.overlaps = append(o.overlaps, fmt.Sprintf("%s offset %d", lane, offset))
	}
	o.running[lane]++
}

func (o *overlapTracker) end(lane string) {
	o.mu.Lock()
	o.running[lane]--
	o.mu.Unlock()
}

func (p *probe) Deliver(ctx context.Context, m *consumer.Message) error {
	key := fmt.Sprintf("%d/%s", m.Partition, m.Key)
	if p.lane != nil {
		key = p.lane(m)
	}
	p.mu.Lock()
	p.calls = append(p.calls, probeCall{m.Partition, m.Offset, time.Now(), ctx.Err() == nil})
	p.mu.Unlock()
	p.overlap.begin(key, m.Offset)
	defer p.overlap.end(key)
	var err error
	if p.fail != nil {
		err = p.fail(m)
	}
	if err != nil {
		select {
		case <-time.After(15 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
		return err
	}
	p.mu.Lock()
	p.ok[[2]int64{int64(m.Partition), m.Offset}]++
	p.mu.Unlock()
	return nil
}

// first returns the first call for partition, if any.
func (p *probe) first(partition int32) (probeCall, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.calls {
		if c.partition == partition {
			return c, true
		}
	}
	return probeCall{}, false
}

// callsFor counts the calls for partition that started after t.
func (p *probe) callsFor(partition int32, after time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.calls {
		if c.partition == partition && c.at.After(after) {
			n++
		}
	}
	return n
}

// retries counts the calls for offset 50 of partition.
func (p *probe) retries(partition int32) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.calls {
		if c.partition == partition && c.offset == 50 {
			n++
		}
	}
	return n
}

// last returns the partition of the latest call.
func (p *probe) last() int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[len(p.calls)-1].partition
}

func (p *probe) sawOffset(partition int32, offset int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.calls {
		if c.partition == partition && c.offset == offset {
			return true
		}
	}
	return false
}

func (p *probe) delivered() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ok)
}

func (p *probe) overlapping() []string { return p.overlap.list() }

var errOffset50 = errors.New("offset 50 is refused")

// failAt50 refuses offset 50 of every partition, for ever: a transient
// error, so without a dead-letter destination the record blocks its lane.
func failAt50(m *consumer.Message) error {
	if m.Offset == 50 {
		return errOffset50
	}
	return nil
}

// twoPartitionGroup produces 400 keyed records over two partitions (both
// get more than 50) and returns the cluster, topic and a config for a
// member of the group: partition ordering, commits only on revoke and at
// shutdown, retries every 10-20 ms, a 500 ms rebalance timeout.
func twoPartitionGroup(t *testing.T) (*kafkatest.Cluster, string, consumer.Config) {
	t.Helper()
	cl, topics := kafkatest.New(t, 2, "revoke")
	topic := topics[0]
	cl.Produce(topic, 400, keyed)
	for p, end := range cl.EndOffsets(topic) {
		if end <= 60 {
			t.Fatalf("partition %d got only %d records; the test needs more than 50 in each", p, end)
		}
	}
	cfg := baseConfig(cl.Brokers, topic, "g-"+topic)
	cfg.Ordering = consumer.OrderPartition
	cfg.CommitInterval = time.Hour
	cfg.RebalanceTimeout = 500 * time.Millisecond
	cfg.ShutdownTimeout = time.Second
	cfg.RetryInitialBackoff = 10 * time.Millisecond
	cfg.RetryMaxBackoff = 20 * time.Millisecond
	cfg.Kafka.SessionTimeout = 6 * time.Second
	return cl, topic, cfg
}

func newMember(t *testing.T, cfg consumer.Config, id string, sink consumer.Sink, opts ...consumer.Option) *consumer.Consumer {
	t.Helper()
	cfg.Kafka.ClientID = id
	c, err := consumer.New(cfg, sink, append([]consumer.Option{consumer.WithLogger(testLogger(id))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// takenPartition waits until the second member has called its sink for a
// partition, and returns that partition and the call.
func takenPartition(t *testing.T, second *probe) (int32, probeCall) {
	t.Helper()
	var p int32
	var first probeCall
	waitUntil(t, time.Minute, "the second member to take a partition", func() bool {
		for _, part := range []int32{0, 1} {
			if c, ok := second.first(part); ok {
				p, first = part, c
				return true
			}
		}
		return false
	})
	return p, first
}

// Bug 1: the commit on revoke ran on the context the revoke wait had
// already used up, so a partition whose delivery outlived the rebalance
// timeout was never committed and its new owner redelivered everything.
func TestRevokeCommitsTheDonePrefixWhenADeliveryOutlivesTheRebalanceTimeout(t *testing.T) {
	cl, topic, cfg := twoPartitionGroup(t)
	first := newProbe(failAt50)
	stop1 := run(t, newMember(t, cfg, "first", first))
	defer stop1()
	waitUntil(t, time.Minute, "offset 50 of both partitions to reach the sink", func() bool {
		return first.sawOffset(0, 50) && first.sawOffset(1, 50)
	})

	second := newProbe(nil)
	stop2 := run(t, newMember(t, cfg, "second", second))
	defer stop2()
	p, call := takenPartition(t, second)
	if call.offset != 50 {
		t.Errorf("the new owner of partition %d started at offset %d, want 50: the revoke did not commit 0..49", p, call.offset)
	}
	if got := cl.Committed(cfg.Kafka.Group, topic)[p]; got != 50 {
		t.Errorf("committed offset of the revoked partition %d is %d, want 50", p, got)
	}
}

// Bug 2: workers went on retrying records of partitions this member no
// longer owned, and when such a partition came back, a new lane ran beside
// the old worker: the same key was delivered twice at the same time.
func TestRevokedPartitionGetsNoMoreDeliveriesAndComesBackWithoutOverlap(t *testing.T) {
	_, _, cfg := twoPartitionGroup(t)
	first := newProbe(failAt50)
	reg := prometheus.NewRegistry()
	stop1 := run(t, newMember(t, cfg, "first", first, consumer.WithRegisterer(reg)))
	defer stop1()
	waitUntil(t, time.Minute, "offset 50 of both partitions to reach the sink", func() bool {
		return first.sawOffset(0, 50) && first.sawOffset(1, 50)
	})
	assigned := func() float64 { return counterWith(t, reg, "sluice_rebalances_total", "assigned") }

	second := newProbe(failAt50)
	stop2 := run(t, newMember(t, cfg, "second", second))
	p, owned := takenPartition(t, second)
	waitUntil(t, time.Minute, "the second member to retry offset 50 five times", func() bool {
		return second.retries(p) >= 5
	})
	if n := first.callsFor(p, owned.at); n > 0 {
		t.Errorf("the first member called its sink %d times for partition %d after the second member owned it", n, p)
	}

	// The partition comes back to the first member, whose old worker for
	// it must be gone by now.
	before := assigned()
	stop2()
	waitUntil(t, time.Minute, "the partition to come back to the first member", func() bool {
		return assigned() > before
	})
	back := time.Now()
	waitUntil(t, time.Minute, "the first member to retry offset 50 of it again", func() bool {
		return first.callsFor(p, back) >= 10
	})
	if o := first.overlapping(); len(o) > 0 {
		t.Errorf("%d sink calls began while another call for the same partition and key was running, e.g. %s", len(o), o[0])
	}
}

// Bug 3: the window sized its room from the largest record it had ever
// seen, so after one record larger than the byte budget every later poll
// asked for one record, admitted once per commit.
func TestOneLargeRecordDoesNotThrottleTheRecordsAfterIt(t *testing.T) {
	cl, topics := kafkatest.New(t, 1, "large")
	topic := topics[0]
	cl.Produce(topic, 1, func(int) ([]byte, []byte) { return nil, make([]byte, 100<<10) })
	const small = 500
	cl.Produce(topic, small, value100)
	sink := newLedger()
	cfg := baseConfig(cl.Brokers, topic, "g-"+topic)
	cfg.MaxBytes = 64 << 10
	cfg.CommitInterval = time.Second
	c, err := consumer.New(cfg, sink, consumer.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	// Throttled, this took one commit interval a record (about 500 s).
	sink.waitFor(t, small+1, 30*time.Second)
	stop()
	if d := sink.duplicates(); d != 0 {
		t.Errorf("%d duplicates", d)
	}
}

// Bug 4: a JetStream pull from an empty window asked for far more bytes
// than the budget (100 messages of 10 KiB into 64 KiB held 1 MiB), and when
// the next message did not fit in the bytes asked for, the server ended the
// pull with nothing and the source pulled again at once, in a tight loop.
func TestJetStreamPullsStayWithinTheByteBudget(t *testing.T) {
	ns := startNATS(t)
	_, js := ns.client()
	createStream(t, js, "BYTES", "bytes.>")
	const budget = 64 << 10
	publish(t, js, []string{"bytes.a"}, 100, 10<<10, nil)

	release := make(chan struct{})
	var calls atomic.Int64
	sink := consumer.SinkFunc(func(ctx context.Context, m *consumer.Message) error {
		calls.Add(1)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	reg := prometheus.NewRegistry()
	cfg := jsConfig(ns.URL, "BYTES")
	cfg.MaxBytes = budget
	cfg.MaxRecords = 1000
	c, err := consumer.New(cfg, sink, consumer.WithLogger(natsLog()), consumer.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	stop := runNATS(t, c)
	waitUntil(t, time.Minute, "the window to fill and the sink to hold a message", func() bool {
		return calls.Load() > 0 && c.Window().Bytes() > budget/2
	})
	pulls := metric(t, reg, "sluice_nats_pulls_total")
	// Nothing is given back while the sink holds on, so there is no reason
	// to pull: watch for a while that none is sent.
	time.Sleep(500 * time.Millisecond)
	if extra := metric(t, reg, "sluice_nats_pulls_total") - pulls; extra > 1 {
		t.Errorf("%v pulls in 500 ms while the window was full and nothing was released", extra)
	}
	if peak := c.Window().PeakBytes(); peak > budget {
		t.Errorf("the window held %d bytes, over its budget of %d", peak, budget)
	}

	// A message larger than the whole budget is admitted alone.
	publish(t, js, []string{"bytes.b"}, 1, 100<<10, nil)
	publish(t, js, []string{"bytes.c"}, 5, 100, nil)
	close(release)
	waitUntil(t, time.Minute, "every message to be delivered and acked", func() bool {
		info := consumerInfo(t, js, "BYTES", "sluice")
		return info.AckFloor.Stream == 106
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if peak := c.Window().PeakBytes(); peak > 100<<10+1024 {
		t.Errorf("the window held %d bytes: more than the one large message alone", peak)
	}
}

// Bug 5: JetStream counted every server redelivery as a failed attempt,
// including the hand-back of held messages at shutdown, so a message held
// across a few restarts was dead-lettered on its first real failure.
func TestJetStreamRedeliveriesThatAreNotFailuresDoNotCountAsAttempts(t *testing.T) {
	ns := startNATS(t)
	_, js := ns.client()
	createStream(t, js, "HELD", "held.>")
	publish(t, js, []string{"held.a"}, 1, 100, nil)

	cfg := jsConfig(ns.URL, "HELD")
	cfg.ShutdownTimeout = 200 * time.Millisecond
	cfg.RetryMaxAttempts = 2
	cfg.RetryInitialBackoff = 10 * time.Millisecond
	cfg.RetryMaxBackoff = 20 * time.Millisecond
	var dead atomic.Int64
	dlq := consumer.SinkFunc(func(context.Context, *consumer.Message) error { dead.Add(1); return nil })

	// Twice: the sink holds the message until shutdown, which hands it back.
	for range 2 {
		var held atomic.Bool
		hold := consumer.SinkFunc(func(ctx context.Context, m *consumer.Message) error {
			held.Store(true)
			<-ctx.Done()
			return ctx.Err()
		})
		c, err := consumer.New(cfg, hold, consumer.WithLogger(natsLog()), consumer.WithDeadLetter(dlq))
		if err != nil {
			t.Fatal(err)
		}
		stop := runNATS(t, c)
		waitUntil(t, time.Minute, "the sink to hold the message", held.Load)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
	if n := consumerInfo(t, js, "HELD", "sluice").NumRedelivered; n != 1 {
		t.Fatalf("%d messages redelivered, want the one held", n)
	}

	// Then one real failure, and the second attempt succeeds.
	var attempts atomic.Int64
	var delivered atomic.Bool
	flaky := consumer.SinkFunc(func(ctx context.Context, m *consumer.Message) error {
		if attempts.Add(1) == 1 {
			return errors.New("one failure")
		}
		delivered.Store(true)
		return nil
	})
	c, err := consumer.New(cfg, flaky, consumer.WithLogger(natsLog()), consumer.WithDeadLetter(dlq))
	if err != nil {
		t.Fatal(err)
	}
	stop := runNATS(t, c)
	waitUntil(t, time.Minute, "the message to be delivered or dead-lettered", func() bool {
		return delivered.Load() || dead.Load() > 0
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if dead.Load() != 0 || !delivered.Load() {
		t.Errorf("after two hand-backs and one failure: dead-lettered %d, delivered %v; want the retry to deliver it",
			dead.Load(), delivered.Load())
	}
}

// Lost partitions: a member whose heartbeats go unanswered for longer than
// its session is expired by the coordinator, and its partitions go to the
// other member, while its fetches and its sink still work. It must stop
// delivering before the other member starts (liveness), so that the same
// key is never delivered by both at once, and when its heartbeat is
// answered again it learns that it lost them (OnPartitionsLost) and commits
// nothing for them.
func TestLostPartitionsAreNotDeliveredBesideTheirNewOwner(t *testing.T) {
	fc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "lost"))
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	brokers := fc.ListenAddrs()
	const n = 1000
	produceTo(t, brokers, "lost", n, keyed)

	// While silent, the heartbeats of the quiet member (as it was when the
	// silence began) get no answer.
	var silent atomic.Bool
	var silenced string // member ID; only the control function touches it
	fc.ControlKey(kmsg.Heartbeat.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		fc.KeepControl()
		hb := req.(*kmsg.HeartbeatRequest)
		if silent.Load() && silenced == "" && strings.HasPrefix(hb.MemberID, "quiet-") {
			silenced = hb.MemberID
		}
		if silent.Load() && hb.MemberID == silenced {
			fc.SleepControl(func() {
				for silent.Load() {
					time.Sleep(10 * time.Millisecond) // the control function's own wait for the test to speak again
				}
			})
		}
		return nil, nil, false
	})

	// Partition ordering and 40 ms a record, a window of 200: when the
	// silence begins the quiet member holds records for longer than its
	// session, so without the fence it would still be delivering them when
	// the other member starts on the same partition.
	shared := newOverlapTracker()
	slow := func(*consumer.Message) error { time.Sleep(40 * time.Millisecond); return nil }
	byPartition := func(m *consumer.Message) string { return fmt.Sprint(m.Partition) }
	quiet := newProbe(slow)
	quiet.lane, quiet.overlap = byPartition, shared
	// The other member's sink is fast, so that a partition it is given is
	// fetched at once, not after a window of slow records has drained.
	other := newProbe(func(*consumer.Message) error { time.Sleep(time.Millisecond); return nil })
	other.lane, other.overlap = byPartition, shared
	cfg := baseConfig(brokers, "lost", "g-lost")
	cfg.Ordering = consumer.OrderPartition
	cfg.Kafka.SessionTimeout = 6 * time.Second
	cfg.MaxRecords = 200
	regQuiet := prometheus.NewRegistry()
	stopQuiet := run(t, newMember(t, cfg, "quiet", quiet, consumer.WithRegisterer(regQuiet)))
	defer stopQuiet()
	otherCfg := cfg
	regOther := prometheus.NewRegistry()
	stopOther := run(t, newMember(t, otherCfg, "other", other, consumer.WithRegisterer(regOther)))
	defer stopOther()
	assigned := func(reg *prometheus.Registry) float64 {
		return counterWith(t, reg, "sluice_rebalances_total", "assigned")
	}
	waitUntil(t, time.Minute, "both members to deliver", func() bool {
		return quiet.delivered() > 10 && other.delivered() > 10
	})

	otherHad := assigned(regOther)
	moved := quiet.last() // the quiet member's partition, which the other is to be given
	silent.Store(true)
	waitUntil(t, time.Minute, "the other member to be given the quiet member's partition", func() bool {
		return assigned(regOther) > otherHad
	})
	given := time.Now()
	waitUntil(t, time.Minute, "the other member to deliver from the partition it was given", func() bool {
		return other.callsFor(moved, given) >= 1
	})
	silent.Store(false)
	waitUntil(t, time.Minute, "the quiet member to learn that it lost its partition", func() bool {
		return counterWith(t, regQuiet, "sluice_rebalances_total", "lost") > 0
	})
	waitUntil(t, 2*time.Minute, "every record to be delivered", func() bool {
		return len(union(quiet, other)) == n
	})
	if o := shared.list(); len(o) > 0 {
		t.Errorf("%d sink calls began while the other member was delivering the same partition, e.g. %s", len(o), o[0])
	}
}

// union is the set of records the probes delivered.
func union(ps ...*probe) map[[2]int64]bool {
	out := map[[2]int64]bool{}
	for _, p := range ps {
		p.mu.Lock()
		for k := range p.ok {
			out[k] = true
		}
		p.mu.Unlock()
	}
	return out
}

// produceTo writes n records to topic with a plain client.
func produceTo(t *testing.T, brokers []string, topic string, n int, fn func(int) ([]byte, []byte)) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		k, v := fn(i)
		recs[i] = &kgo.Record{Key: k, Value: v}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func testLogger(id string) *slog.Logger {
	if os.Getenv("SLUICEDEV_TEST_LOG") == "" {
		return quietLogger()
	}
	return slog.New(slog.NewTextHandler(os.Stderr, nil)).With("member", id)
}

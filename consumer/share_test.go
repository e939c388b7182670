package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/consumer"
	"github.com/sluicehq/sluice/internal/kafkatest"
)

// The share-group tests run on kfake, and on the real broker under
// scripts/test-real-kafka.sh (kafkatest.New picks it).

// shareCluster is a cluster with one topic, and a share group whose
// acquisition lock lasts lock (0: the broker's default).
func shareCluster(t *testing.T, partitions int32, lock time.Duration) (*kafkatest.Cluster, string, string) {
	t.Helper()
	c, names := kafkatest.New(t, partitions, "share")
	group := "g-" + names[0]
	if lock > 0 {
		ms := strconv.FormatInt(lock.Milliseconds(), 10)
		if c.Fake != nil {
			// kfake reads the lock from its broker configuration, and
			// expires locks at its sweep.
			alterConfigs(t, c.Brokers, kmsg.ConfigResourceTypeBroker, "",
				"group.share.record.lock.duration.ms", ms, "share.record.lock.sweep.interval.ms", "100")
		} else {
			alterConfigs(t, c.Brokers, kmsg.ConfigResourceTypeGroupConfig, group, "share.record.lock.duration.ms", ms)
		}
	}
	return c, names[0], group
}

// alterConfigs sets configuration entries of one resource.
func alterConfigs(t *testing.T, brokers []string, typ kmsg.ConfigResourceType, name string, kvs ...string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = typ, name
	for i := 0; i < len(kvs); i += 2 {
		rc := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		rc.Name, rc.Value = kvs[i], kmsg.StringPtr(kvs[i+1])
		res.Configs = append(res.Configs, rc)
	}
	req.Resources = append(req.Resources, res)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err == nil {
		for _, r := range resp.Resources {
			if e := kerr.ErrorForCode(r.ErrorCode); e != nil {
				err = e
				if r.ErrorMessage != nil {
					err = fmt.Errorf("%w: %s", e, *r.ErrorMessage)
				}
			}
		}
	}
	if err != nil {
		t.Fatalf("alter configs of %q: %v", name, err)
	}
}

func shareConfig(brokers []string, topic, group string) consumer.Config {
	cfg := baseConfig(brokers, topic, group)
	cfg.Source = consumer.SourceKafkaShare
	return cfg
}

func TestShareGroupRefusesAnOrderAndDefaultsToNone(t *testing.T) {
	cfg := shareConfig([]string{"127.0.0.1:1"}, "t", "g")
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if cfg.Ordering != consumer.OrderNone {
		t.Errorf("default ordering %q, want none", cfg.Ordering)
	}
	for _, o := range []consumer.Ordering{consumer.OrderKey, consumer.OrderPartition} {
		cfg := shareConfig([]string{"127.0.0.1:1"}, "t", "g")
		cfg.Ordering = o
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), "share group") {
			t.Errorf("ordering %s: %v, want a refusal that says why", o, err)
		}
	}
	cfg = shareConfig([]string{"127.0.0.1:1"}, "t", "g")
	cfg.Kafka.InstanceID = "pod-0"
	if err := cfg.Validate(); err == nil {
		t.Errorf("an instance id with a share group was accepted")
	}
}

// TestShareGroupCleanRunDeliversEachRecordOnce: one member takes every
// record once and accepts it; a member started after it gets only what was
// produced since, none of what the first accepted. In both acquire modes.
func TestShareGroupCleanRunDeliversEachRecordOnce(t *testing.T) {
	for _, mode := range []string{consumer.ShareRecordLimit, consumer.ShareBatchOptimized} {
		t.Run(mode, func(t *testing.T) { testShareCleanRun(t, mode) })
	}
}

func testShareCleanRun(t *testing.T, mode string) {
	cl, topic, group := shareCluster(t, 2, 0)
	const n = 1200
	cl.Produce(topic, n, value100)
	led := newLedger()
	cfg := shareConfig(cl.Brokers, topic, group)
	cfg.Kafka.ShareAcquireMode = mode
	cfg.MaxRecords = 100
	reg := prometheus.NewRegistry()
	c, err := consumer.New(cfg, led, consumer.WithLogger(quietLogger()), consumer.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	led.waitFor(t, n, 60*time.Second)
	stop()
	if d := led.duplicates(); d != 0 {
		t.Fatalf("%d duplicates in a clean run", d)
	}
	if peak := c.Window().PeakRecords(); peak > int64(cfg.MaxRecords) {
		t.Errorf("window peaked at %d records, budget %d", peak, cfg.MaxRecords)
	}
	ends := cl.EndOffsets(topic)
	cl.Produce(topic, 10, value100)
	next := newLedger()
	c2, err := consumer.New(shareConfig(cl.Brokers, topic, group), next, consumer.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	stop2 := run(t, c2)
	next.waitFor(t, 10, 60*time.Second)
	stop2()
	next.mu.Lock()
	defer next.mu.Unlock()
	for po := range next.seen {
		if po[1] < ends[int32(po[0])] {
			t.Errorf("partition %d offset %d, accepted by the first member, was delivered again", po[0], po[1])
		}
	}
}

// TestShareGroupMoreMembersThanPartitions: three members on one partition
// all take part, and every record is delivered.
func TestShareGroupMoreMembersThanPartitions(t *testing.T) {
	cl, topic, group := shareCluster(t, 1, 0)
	const n = 600
	cl.Produce(topic, n, value100)
	all := newLedger()
	var did [3]atomic.Int64
	for i := range did {
		cfg := shareConfig(cl.Brokers, topic, group)
		cfg.MaxRecords = 20 // small polls, so that one member cannot take everything at once
		sink := consumer.SinkFunc(func(ctx context.Context, m *consumer.Message) error {
			did[i].Add(1)
			time.Sleep(2 * time.Millisecond) // a slow sink: the work is worth sharing
			return all.Deliver(ctx, m)
		})
		c, err := consumer.New(cfg, sink, consumer.WithLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		run(t, c)
	}
	all.waitFor(t, n, 90*time.Second)
	worked := 0
	for i := range did {
		if did[i].Load() > 0 {
			worked++
		}
	}
	if worked < 2 {
		t.Errorf("%d of 3 members delivered records (%d, %d, %d), want the work shared", worked,
			did[0].Load(), did[1].Load(), did[2].Load())
	}
}

// TestShareGroupSlowSinkKeepsItsLocks: records wait in one member's window
// far longer than the acquisition lock (a slow sink, one worker) while a
// second member polls for work; their locks are renewed, so the second
// member gets none of them and none is delivered twice.
func TestShareGroupSlowSinkKeepsItsLocks(t *testing.T) {
	const lock = time.Second
	cl, topic, group := shareCluster(t, 1, lock)
	const n = 40
	cl.Produce(topic, n, value100)
	led := newLedger()
	var slowGot, otherGot, attempts atomic.Int64
	slow := consumer.SinkFunc(func(ctx context.Context, m *consumer.Message) error {
		slowGot.Add(1)
		if m.Attempt > 1 {
			attempts.Add(1)
		}
		time.Sleep(100 * time.Millisecond) // 40 records: 4 s, four locks' worth
		return led.Deliver(ctx, m)
	})
	cfg := shareConfig(cl.Brokers, topic, group)
	cfg.Workers = 1
	reg := prometheus.NewRegistry()
	c, err := consumer.New(cfg, slow, consumer.WithLogger(quietLogger()), consumer.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)
	waitUntil(t, 60*time.Second, "the slow member holds the records", func() bool { return slowGot.Load() > 0 })
	other := consumer.SinkFunc(func(ctx context.Context, m *consumer.Message) error {
		otherGot.Add(1)
		return led.Deliver(ctx, m)
	})
	c2, err := consumer.New(shareConfig(cl.Brokers, topic, group), other, consumer.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	run(t, c2)
	led.waitFor(t, n, 60*time.Second)
	if d := led.duplicates(); d != 0 {
		t.Errorf("%d records delivered twice: their locks ran out", d)
	}
	if o := otherGot.Load(); o != 0 {
		t.Errorf("the second member got %d of the records the first held", o)
	}
	if a := attempts.Load(); a != 0 {
		t.Errorf("%d deliveries came with an earlier delivery counted", a)
	}
	if r := counterWith(t, reg, "sluice_kafka_share_acks_total", "renew"); r == 0 {
		t.Errorf("no lock renewed, yet the records waited %v with a %v lock", time.Duration(n)*100*time.Millisecond, lock)
	}
}

// TestShareGroupPoisonRecordIsDeadLetteredThenAccepted: a record that always
// fails goes to the dead-letter destination after the configured attempts,
// once, and is not delivered again.
func TestShareGroupPoisonRecordIsDeadLetteredThenAccepted(t *testing.T) {
	cl, topic, group := shareCluster(t, 1, 0)
	const n = 50
	cl.Produce(topic, n, value100)
	led := newLedger()
	poison := errors.New("poison")
	var poisonCalls atomic.Int64
	sink := consumer.SinkFunc(func(ctx context.Context, m *consumer.Message) error {
		if m.Offset == 7 {
			poisonCalls.Add(1)
			return poison
		}
		return led.Deliver(ctx, m)
	})
	dlq := newLedger()
	var dlqAttempts []string
	var dmu sync.Mutex
	dlqSink := consumer.SinkFunc(func(ctx context.Context, m *consumer.Message) error {
		dmu.Lock()
		for _, h := range m.Headers {
			if h.Key == consumer.HeaderDLQAttempts {
				dlqAttempts = append(dlqAttempts, string(h.Value))
			}
		}
		dmu.Unlock()
		return dlq.Deliver(ctx, m)
	})
	cfg := shareConfig(cl.Brokers, topic, group)
	cfg.RetryMaxAttempts = 3
	cfg.RetryInitialBackoff = 10 * time.Millisecond
	cfg.RetryMaxBackoff = 20 * time.Millisecond
	c, err := consumer.New(cfg, sink, consumer.WithLogger(quietLogger()), consumer.WithDeadLetter(dlqSink))
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	led.waitFor(t, n-1, 60*time.Second)
	dlq.waitFor(t, 1, 60*time.Second)
	// Records produced after the poison one come through the same member
	// only once the poison record's poll is settled (accepted).
	cl.Produce(topic, 5, value100)
	led.waitFor(t, n-1+5, 60*time.Second)
	stop()
	if got := poisonCalls.Load(); got != 3 {
		t.Errorf("the poison record was tried %d times, want 3", got)
	}
	dmu.Lock()
	defer dmu.Unlock()
	if len(dlqAttempts) != 1 || dlqAttempts[0] != "3" {
		t.Errorf("dead-lettered with attempts %v, want once with 3", dlqAttempts)
	}
	if d := led.duplicates() + dlq.duplicates(); d != 0 {
		t.Errorf("%d duplicates", d)
	}
}

// TestShareGroupDrainReleasesWhatItHeld: a member whose sink is stuck is
// shut down; the records it held are released as it leaves, so another
// member gets them at once, long before their locks (a minute) would run
// out.
func TestShareGroupDrainReleasesWhatItHeld(t *testing.T) {
	cl, topic, group := shareCluster(t, 1, time.Minute)
	const n = 30
	cl.Produce(topic, n, value100)
	var got atomic.Int64
	stuck := consumer.SinkFunc(func(ctx context.Context, m *consumer.Message) error {
		got.Add(1)
		<-ctx.Done()
		return ctx.Err()
	})
	cfg := shareConfig(cl.Brokers, topic, group)
	cfg.ShutdownTimeout = 2 * time.Second
	c, err := consumer.New(cfg, stuck, consumer.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	waitUntil(t, 60*time.Second, "the first member holds records", func() bool { return got.Load() > 0 })
	stop()
	led := newLedger()
	var redelivered atomic.Int64
	sink := consumer.SinkFunc(func(ctx context.Context, m *consumer.Message) error {
		if m.Attempt > 1 {
			redelivered.Add(1)
		}
		return led.Deliver(ctx, m)
	})
	c2, err := consumer.New(shareConfig(cl.Brokers, topic, group), sink, consumer.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	run(t, c2)
	led.waitFor(t, n, 30*time.Second) // well within the one-minute lock
	if redelivered.Load() == 0 {
		t.Errorf("no record came with its earlier delivery counted, though the first member held %d", got.Load())
	}
}

// TestShareGroupMembersComingAndGoingLoseNothing: while records are
// produced, members join and leave cleanly; every record is delivered, and
// none twice (a leaving member delivers what it admitted, then leaves,
// releasing nothing it has not settled).
func TestShareGroupMembersComingAndGoingLoseNothing(t *testing.T) {
	cl, topic, group := shareCluster(t, 3, 0)
	led := newLedger()
	start := func() func() {
		cfg := shareConfig(cl.Brokers, topic, group)
		cfg.MaxRecords = 50
		sink := consumer.SinkFunc(func(ctx context.Context, m *consumer.Message) error {
			time.Sleep(time.Millisecond)
			return led.Deliver(ctx, m)
		})
		c, err := consumer.New(cfg, sink, consumer.WithLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		return run(t, c)
	}
	stops := []func(){start(), start()}
	const rounds, per = 6, 300
	for r := range rounds {
		cl.Produce(topic, per, value100)
		led.waitFor(t, (r+1)*per/2, 60*time.Second) // some of this round is under way
		if r%2 == 0 {
			stops[0]()
			stops = append(stops[1:], start())
		} else {
			stops = append(stops, start())
		}
	}
	led.waitFor(t, rounds*per, 90*time.Second)
	for _, stop := range stops {
		stop()
	}
	if d := led.duplicates(); d != 0 {
		t.Errorf("%d duplicates with clean joins and leaves only", d)
	}
}

// TestShareGroupKeepsTheByteBudget: the broker treats a fetch's byte limit
// as a hint (kfake ignores it), so a poll brings more bytes than the window
// has; what does not fit waits outside it, and the window keeps its byte
// budget. Every record is delivered once.
func TestShareGroupKeepsTheByteBudget(t *testing.T) {
	cl, topic, group := shareCluster(t, 1, 0)
	const n = 60
	cl.Produce(topic, n, func(i int) ([]byte, []byte) { return nil, make([]byte, 1000) })
	led := newLedger()
	cfg := shareConfig(cl.Brokers, topic, group)
	cfg.MaxBytes = 4 << 10 // four records
	c, err := consumer.New(cfg, led, consumer.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)
	led.waitFor(t, n, 60*time.Second)
	if peak := c.Window().PeakBytes(); peak > cfg.MaxBytes {
		t.Errorf("the window held %d bytes, budget %d", peak, cfg.MaxBytes)
	}
	if d := led.duplicates(); d != 0 {
		t.Errorf("%d duplicates", d)
	}
}

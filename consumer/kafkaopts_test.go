package consumer_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/consumer"
	"github.com/sluicehq/sluice/internal/kafkatest"
)

// values is a sink that records each delivered value by topic.
type values struct {
	mu  sync.Mutex
	got map[string][]string // topic -> values, in delivery order
}

func newValues() *values { return &values{got: map[string][]string{}} }

func (v *values) Deliver(_ context.Context, m *consumer.Message) error {
	v.mu.Lock()
	v.got[m.Topic] = append(v.got[m.Topic], string(m.Value))
	v.mu.Unlock()
	return nil
}

func (v *values) of(topic string) []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.got[topic]...)
}

// produceTransactions writes, with a transactional producer, a committed
// transaction of n records ("c1-i"), an aborted one ("a-i"), then another
// committed one ("c2-i"): a reader that delivers every committed record
// has read past the aborted ones.
func produceTransactions(t *testing.T, brokers []string, topic string, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic),
		kgo.TransactionalID("tx-"+topic), kgo.ProducerLinger(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, txn := range []struct {
		prefix string
		end    kgo.TransactionEndTry
	}{{"c1", kgo.TryCommit}, {"a", kgo.TryAbort}, {"c2", kgo.TryCommit}} {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatalf("begin: %v", err)
		}
		for i := range n {
			r := &kgo.Record{Key: fmt.Appendf(nil, "k%d", i%5), Value: fmt.Appendf(nil, "%s-%d", txn.prefix, i)}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("produce %s: %v", r.Value, err)
			}
		}
		if err := cl.EndTransaction(ctx, txn.end); err != nil {
			t.Fatalf("end transaction %s: %v", txn.prefix, err)
		}
	}
}

// TestIsolation: with read_committed (the default) every record of a
// committed transaction is delivered and none of an aborted one; with
// read_uncommitted the aborted records are delivered too (so the first
// case tells the two apart). kfake, or the real broker under
// scripts/test-real-kafka.sh.
func TestIsolation(t *testing.T) {
	const n = 50
	for _, tc := range []struct {
		isolation   string // "" is the default
		wantAborted int
	}{{"", 0}, {consumer.IsolationReadUncommitted, n}} {
		t.Run("isolation="+tc.isolation, func(t *testing.T) {
			cl, topics := kafkatest.New(t, 3, "txn")
			produceTransactions(t, cl.Brokers, topics[0], n)
			sink := newValues()
			cfg := baseConfig(cl.Brokers, topics[0], "g-"+topics[0])
			cfg.Kafka.Isolation = tc.isolation
			c, err := consumer.New(cfg, sink, consumer.WithLogger(quietLogger()))
			if err != nil {
				t.Fatal(err)
			}
			stop := run(t, c)
			want := 2*n + tc.wantAborted
			waitUntil(t, time.Minute, fmt.Sprintf("%d records delivered", want), func() bool {
				return len(sink.of(topics[0])) >= want
			})
			// Nothing more can come: the same keys are in every
			// transaction, and records of one key are delivered in
			// offset order, so an aborted record would have come before
			// the "c2" record of its key that follows it.
			stop()
			count := map[string]int{}
			seen := map[string]bool{}
			for _, v := range sink.of(topics[0]) {
				prefix, _, _ := strings.Cut(v, "-")
				count[prefix]++
				if seen[v] {
					t.Errorf("%s delivered twice", v)
				}
				seen[v] = true
			}
			if count["c1"] != n || count["c2"] != n {
				t.Errorf("committed records delivered: %d and %d, want %d each", count["c1"], count["c2"], n)
			}
			if count["a"] != tc.wantAborted {
				t.Errorf("aborted records delivered: %d, want %d", count["a"], tc.wantAborted)
			}
		})
	}
}

// TestTopicsRegexPicksUpANewTopic: a member subscribed by regex consumes
// the matching topic there is, then a matching topic created while it runs,
// and never a topic that matches the expression only in part (Sluice
// anchors it).
func TestTopicsRegexPicksUpANewTopic(t *testing.T) {
	cl, topics := kafkatest.New(t, 2, "family")
	base := topics[0]
	adm := cl.Admin()
	defer adm.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	create := func(name string) {
		t.Helper()
		res, err := adm.CreateTopics(ctx, 2, 1, nil, name)
		if err == nil {
			err = res.Error()
		}
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
	}
	// Matches "family-…" only in part: an unanchored regex would take it.
	create(base + "-late-not")
	cl.Produce(base+"-late-not", 10, keyed)
	cl.Produce(base, 20, keyed)

	sink := newValues()
	cfg := baseConfig(cl.Brokers, "", "g-"+base)
	cfg.Kafka.Topics = nil
	cfg.Kafka.TopicsRegex = regexp.QuoteMeta(base) + "(-late)?"
	// Look for new topics often (franz-go's default is every 5 min).
	cfg.Kafka.Opts = []kgo.Opt{kgo.MetadataMaxAge(time.Second), kgo.MetadataMinAge(100 * time.Millisecond)}
	c, err := consumer.New(cfg, sink, consumer.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	waitUntil(t, time.Minute, "the existing topic consumed", func() bool { return len(sink.of(base)) == 20 })

	create(base + "-late")
	cl.Produce(base+"-late", 30, keyed)
	waitUntil(t, time.Minute, "the topic created later consumed", func() bool { return len(sink.of(base+"-late")) == 30 })
	stop()
	if got := sink.of(base + "-late-not"); len(got) != 0 {
		t.Errorf("%d records of %s-late-not delivered: the regex must match whole names", len(got), base)
	}
}

// TestClientIdentityReachesTheBroker: the client id and the static
// instance id are what the group coordinator shows for the member, and on
// kfake (which lets a test see requests) every fetch names the rack.
func TestClientIdentityReachesTheBroker(t *testing.T) {
	cl, topics := kafkatest.New(t, 2, "ident")
	cl.Produce(topics[0], 10, keyed)
	var fetches, rackFetches atomic.Int64
	if cl.Fake != nil {
		cl.Fake.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
			fetches.Add(1)
			if req.(*kmsg.FetchRequest).Rack == "zone-b" {
				rackFetches.Add(1)
			}
			return nil, nil, false // only observe
		})
	}
	group := "g-" + topics[0]
	sink := newValues()
	cfg := baseConfig(cl.Brokers, topics[0], group)
	cfg.Kafka.ClientID = "sluice-7d9f-x2"
	cfg.Kafka.InstanceID = "sluice-7d9f-x2-instance"
	cfg.Kafka.Rack = "zone-b"
	c, err := consumer.New(cfg, sink, consumer.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	waitUntil(t, time.Minute, "the records delivered", func() bool { return len(sink.of(topics[0])) == 10 })

	adm := cl.Admin()
	defer adm.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	groups, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	g := groups[group]
	if len(g.Members) != 1 {
		t.Fatalf("group %s has %d members, want 1: %+v", group, len(g.Members), g)
	}
	m := g.Members[0]
	if m.ClientID != cfg.Kafka.ClientID {
		t.Errorf("client id %q, want %q", m.ClientID, cfg.Kafka.ClientID)
	}
	if m.InstanceID == nil || *m.InstanceID != cfg.Kafka.InstanceID {
		t.Errorf("instance id %v, want %q", m.InstanceID, cfg.Kafka.InstanceID)
	}
	stop()
	if cl.Fake != nil && (fetches.Load() == 0 || rackFetches.Load() != fetches.Load()) {
		t.Errorf("%d of %d fetches named rack zone-b", rackFetches.Load(), fetches.Load())
	}
}

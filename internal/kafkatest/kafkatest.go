// Package kafkatest gives tests a Kafka cluster: a real broker when
// SLUICEDEV_TEST_KAFKA_BROKERS is set (scripts/kafka.sh starts one), else an
// in-process kfake cluster. Topics get unique names so tests sharing a real
// broker do not see each other's records.
package kafkatest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// EnvBrokers names the variable that points the tests at a real cluster.
const EnvBrokers = "SLUICEDEV_TEST_KAFKA_BROKERS"

// Cluster is a running Kafka cluster for one test.
type Cluster struct {
	Brokers []string
	Fake    *kfake.Cluster // nil against a real broker
	t       testing.TB
}

// Real reports whether the tests run against a real broker.
func Real() bool { return os.Getenv(EnvBrokers) != "" }

var seq atomic.Int64

// New returns a cluster with the named topics created with the given number
// of partitions. Names are made unique per call; use the returned names.
func New(t testing.TB, partitions int32, topics ...string) (*Cluster, []string) {
	t.Helper()
	names := make([]string, len(topics))
	for i, tp := range topics {
		names[i] = fmt.Sprintf("%s-%d-%d", tp, time.Now().UnixNano()%1e9, seq.Add(1))
	}
	if env := os.Getenv(EnvBrokers); env != "" {
		c := &Cluster{Brokers: strings.Split(env, ","), t: t}
		adm := c.Admin()
		defer adm.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, err := adm.CreateTopics(ctx, partitions, 1, nil, names...)
		if err != nil {
			t.Fatalf("create topics: %v", err)
		}
		for _, r := range res.Sorted() {
			if r.Err != nil {
				t.Fatalf("create topic %s: %v", r.Topic, r.Err)
			}
		}
		return c, names
	}
	fc, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.SeedTopics(partitions, names...),
	)
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(fc.Close)
	return &Cluster{Brokers: fc.ListenAddrs(), Fake: fc, t: t}, names
}

// Admin returns an admin client; the caller closes it.
func (c *Cluster) Admin() *kadm.Client {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers...))
	if err != nil {
		c.t.Fatalf("admin client: %v", err)
	}
	return kadm.NewClient(cl)
}

// Produce writes n records to topic: key and value come from fn(i). It
// fails the test if any record is not acknowledged.
func (c *Cluster) Produce(topic string, n int, fn func(i int) (key, value []byte)) {
	c.t.Helper()
	c.produce(topic, n, fn, nil)
}

// ProduceEven writes n records to topic as Produce does, but record i goes
// to partition i % partitions whatever its key, so each partition holds a
// known share (a test can then tell that no partition runs dry early).
func (c *Cluster) ProduceEven(topic string, partitions int32, n int, fn func(i int) (key, value []byte)) {
	c.t.Helper()
	c.produce(topic, n, fn, func(i int) int32 { return int32(i) % partitions })
}

func (c *Cluster) produce(topic string, n int, fn func(i int) (key, value []byte), partition func(i int) int32) {
	c.t.Helper()
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(time.Millisecond)}
	if partition != nil {
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		c.t.Fatalf("producer: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var failed atomic.Int64
	var first atomic.Value
	for i := range n {
		k, v := fn(i)
		r := &kgo.Record{Key: k, Value: v}
		if partition != nil {
			r.Partition = partition(i)
		}
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil && failed.Add(1) == 1 {
				first.Store(err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		c.t.Fatalf("flush: %v", err)
	}
	if failed.Load() > 0 {
		c.t.Fatalf("%d records not produced: %v", failed.Load(), first.Load())
	}
}

// Committed returns the group's committed offset for each partition of topic.
func (c *Cluster) Committed(group, topic string) map[int32]int64 {
	c.t.Helper()
	adm := c.Admin()
	defer adm.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		c.t.Fatalf("fetch offsets: %v", err)
	}
	out := map[int32]int64{}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic {
			out[o.Partition] = o.At
		}
	})
	return out
}

// EndOffsets returns the log end offset of each partition of topic.
func (c *Cluster) EndOffsets(topic string) map[int32]int64 {
	c.t.Helper()
	adm := c.Admin()
	defer adm.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		c.t.Fatalf("end offsets: %v", err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

package consumer_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/consumer"
)

// Example consumes a Kafka topic and hands each record to a sink. The
// cluster is kfake, an in-process Kafka, so the example runs anywhere.
func Example() {
	// A one-broker cluster with a topic of one partition.
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "orders"))
	if err != nil {
		panic(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()

	// Produce three records with a plain franz-go client.
	ctx := context.Background()
	producer, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		panic(err)
	}
	values := []string{"c", "a", "b"}
	for _, v := range values {
		r := &kgo.Record{Topic: "orders", Value: []byte(v)}
		if err := producer.ProduceSync(ctx, r).FirstErr(); err != nil {
			panic(err)
		}
	}
	producer.Close()

	// The sink collects the values. Workers call it concurrently, and a
	// message belongs to the pipeline: keep a copy, not m.Value itself.
	var (
		mu   sync.Mutex
		got  []string
		done = make(chan struct{}) // closed once every record arrived
	)
	sink := consumer.SinkFunc(func(_ context.Context, m *consumer.Message) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, string(m.Value))
		if len(got) == len(values) {
			close(done)
		}
		return nil // delivered: its offset may be committed
	})

	// A consumer of the topic; every other setting keeps its default.
	c, err := consumer.New(consumer.Config{
		Source: consumer.SourceKafka,
		Kafka: consumer.KafkaConfig{
			Brokers: brokers,
			Topics:  []string{"orders"},
			Group:   "example",
		},
	}, sink, consumer.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		panic(err)
	}

	// Run blocks until its context ends; then it finishes what it
	// admitted, commits and leaves the group.
	runCtx, stop := context.WithCancel(ctx)
	stopped := make(chan error, 1)
	go func() { stopped <- c.Run(runCtx) }()
	<-done
	stop()
	if err := <-stopped; err != nil {
		panic(err)
	}

	// Records without a key carry no order: sort them to print.
	slices.Sort(got)
	for _, v := range got {
		fmt.Println(v)
	}
	// Output:
	// a
	// b
	// c
}

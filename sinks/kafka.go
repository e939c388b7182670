package sinks

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/consumer"
)

// KafkaConfig configures the Kafka sink. The zero value of each field means
// its documented default.
type KafkaConfig struct {
	// Brokers to bootstrap from (required).
	Brokers []string
	// Topic receives every message (required).
	Topic string
	// Timeout bounds the delivery of one record, retries inside the client
	// included (default 30 s). A record that times out is retried by the
	// pipeline.
	Timeout time.Duration
	// Opts are extra franz-go options (TLS, SASL, ...), applied last.
	Opts []kgo.Opt
}

func (c *KafkaConfig) setDefaults() {
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
}

// Validate fills in defaults and reports every invalid field.
func (c *KafkaConfig) Validate() error {
	c.setDefaults()
	var errs []error
	bad := func(field string, v any, want string) {
		errs = append(errs, &consumer.FieldError{Field: "Kafka." + field, Value: v, Want: want})
	}
	if len(c.Brokers) == 0 {
		bad("Brokers", c.Brokers, "want at least one host:port")
	}
	if c.Topic == "" {
		bad("Topic", c.Topic, "want a topic name")
	}
	if c.Timeout < time.Millisecond {
		bad("Timeout", c.Timeout, "want at least 1ms")
	}
	return errors.Join(errs...)
}

// Kafka produces each message to a topic with franz-go, keeping its key,
// value, headers and timestamp; the partition follows from the key. The
// producer is idempotent and waits for all in-sync replicas, so Deliver
// returning nil means the record is committed to the log. A batch is
// produced at once and waited for together; records with the same key keep
// their order. It also serves as a dead-letter destination.
//
// Safe for concurrent use. Close flushes and closes the client.
type Kafka struct {
	cfg       KafkaConfig
	cl        *kgo.Client
	closeOnce sync.Once
}

var (
	_ consumer.Sink      = (*Kafka)(nil)
	_ consumer.BatchSink = (*Kafka)(nil)
	_ consumer.Pinger    = (*Kafka)(nil)
)

// NewKafka validates cfg and creates the producer client. The client
// connects lazily, on the first record or Ping.
func NewKafka(cfg KafkaConfig) (*Kafka, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.ProducerLinger(0),
	}
	cl, err := kgo.NewClient(append(opts, cfg.Opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka sink: %w", err)
	}
	return &Kafka{cfg: cfg, cl: cl}, nil
}

func (k *Kafka) record(m *consumer.Message) *kgo.Record {
	r := &kgo.Record{Topic: k.cfg.Topic, Key: m.Key, Value: m.Value, Timestamp: m.Time}
	if len(m.Headers) > 0 {
		r.Headers = make([]kgo.RecordHeader, len(m.Headers))
		for i, h := range m.Headers {
			r.Headers[i] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
		}
	}
	return r
}

// Deliver produces m and waits for the broker's acknowledgement.
func (k *Kafka) Deliver(ctx context.Context, m *consumer.Message) error {
	// A context, not kgo.RecordDeliveryTimeout: that one counts from the
	// record's timestamp, which is the source record's, often long past.
	ctx, cancel := context.WithTimeout(ctx, k.cfg.Timeout)
	defer cancel()
	return kafkaError(k.cl.ProduceSync(ctx, k.record(m)).FirstErr())
}

// DeliverBatch produces msgs together and waits for all of them. It returns
// the number acknowledged before the first failure.
func (k *Kafka) DeliverBatch(ctx context.Context, msgs []*consumer.Message) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, k.cfg.Timeout)
	defer cancel()
	errs := make([]error, len(msgs))
	var wg sync.WaitGroup
	wg.Add(len(msgs))
	for i, m := range msgs {
		k.cl.Produce(ctx, k.record(m), func(_ *kgo.Record, err error) {
			errs[i] = err
			wg.Done()
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return i, kafkaError(err)
		}
	}
	return len(msgs), nil
}

// kafkaError marks errors no retry can fix (the record itself is rejected)
// as permanent and a closed client as closed.
func kafkaError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kgo.ErrClientClosed):
		return fmt.Errorf("kafka sink: %w: %w", ErrClosed, err)
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge),
		errors.Is(err, kerr.InvalidRecord), errors.Is(err, kerr.CorruptMessage),
		errors.Is(err, kerr.InvalidTimestamp):
		return consumer.Permanent(fmt.Errorf("kafka sink: %w", err))
	}
	return unavailableIfDial(fmt.Errorf("kafka sink: %w", err))
}

// Ping checks that a broker answers.
func (k *Kafka) Ping(ctx context.Context) error { return k.cl.Ping(ctx) }

// Close waits (until ctx ends) for records in flight, then closes the
// client. It is idempotent.
func (k *Kafka) Close(ctx context.Context) error {
	var err error
	k.closeOnce.Do(func() {
		err = k.cl.Flush(ctx)
		k.cl.Close()
	})
	return err
}

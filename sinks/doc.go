// Package sinks holds Sluice's sinks: where delivered messages go.
//
// Every sink implements [consumer.Sink]: Deliver returns nil once a message
// is safely stored and an error otherwise. A sink never acknowledges or
// commits; the pipeline does that after Deliver returned nil. Sinks that
// can store several messages at once (HTTP with BatchMax > 1, PostgreSQL,
// Kafka, NATS, file) also implement [consumer.BatchSink]. Sinks are safe for
// concurrent use, and Close(ctx) releases what they hold; Deliver after
// Close returns [ErrClosed].
//
// A sink says what went wrong with the consumer package's helpers, and the
// pipeline's failure policy decides from that: consumer.Permanent (never
// retry: dead-letter), consumer.RetryAfter (wait as asked),
// consumer.Unavailable (the destination is down: hold, without using up the
// record's attempts), anything else transient (retry with backoff).
//
// The sinks: [HTTP] (JSON webhook), [Postgres] (idempotent upserts),
// [Kafka] and [NATS] (forward to a topic or subject; also dead-letter
// destinations), [File] (JSON lines, rotated by size), [Stdout] and [Noop].
// The decorators: [Instrument] (latency and results by sink) and [Breaker]
// (a circuit breaker). The usual stack, as cmd/sluice builds it:
//
//	base, err := sinks.NewHTTP(sinks.HTTPConfig{URL: "https://example.com/hook", BatchMax: 100})
//	measured := sinks.Instrument(base, "http", sinks.WithRegisterer(reg))
//	sink, err := sinks.NewBreaker(measured, "http", sinks.BreakerConfig{}, sinks.WithRegisterer(reg))
//	dlq, err := sinks.NewKafka(sinks.KafkaConfig{Brokers: brokers, Topic: "orders.dlq"})
//	c, err := consumer.New(cfg, sink, consumer.WithDeadLetter(dlq), consumer.WithRegisterer(reg))
//
// Package sinktest is the suite every sink passes.
package sinks

package consumer

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Headers added to a dead-lettered message, after its own headers. They say
// where it came from and why it failed.
const (
	HeaderDLQSource    = "sluice-dlq-source"    // kafka, jetstream or nats
	HeaderDLQTopic     = "sluice-dlq-topic"     // source topic or subject
	HeaderDLQPartition = "sluice-dlq-partition" // source partition (0 for NATS)
	HeaderDLQOffset    = "sluice-dlq-offset"    // source offset or stream sequence
	HeaderDLQAttempts  = "sluice-dlq-attempts"  // delivery attempts made
	HeaderDLQReason    = "sluice-dlq-reason"    // permanent, max_attempts or max_elapsed
	HeaderDLQError     = "sluice-dlq-error"     // the last error, secrets scrubbed (RedactText), truncated to 1 KiB
	HeaderDLQTime      = "sluice-dlq-time"      // when it was dead-lettered, RFC 3339
)

// WithDeadLetter sets where messages go that cannot be delivered: after
// their last attempt, or at once when the sink says the failure is
// permanent. The destination is itself a Sink (a Kafka topic or a NATS
// subject, see the sinks package); it receives a copy of the message with
// the HeaderDLQ* headers appended. Without one, Config.DeadLetterPolicy
// applies. A nil sink means none.
//
// The consumer does not close it: close it after Run has returned.
func WithDeadLetter(s Sink) Option { return func(o *options) { o.dlq = s } }

// deadLetters holds the dead-letter destination and its instruments.
type deadLetters struct {
	sink     Sink // nil: none configured
	dead     prometheus.Counter
	dropped  prometheus.Counter
	failures prometheus.Counter
	blocked  atomic.Int64 // records given up on and held by the block policy
}

func newDeadLetters(sink Sink, reg prometheus.Registerer) *deadLetters {
	f := promauto.With(reg)
	d := &deadLetters{
		sink: sink,
		dead: f.NewCounter(prometheus.CounterOpts{
			Name: "sluice_records_dead_lettered_total",
			Help: "Records sent to the dead-letter destination (permanent error, or attempts or time ran out).",
		}),
		dropped: f.NewCounter(prometheus.CounterOpts{
			Name: "sluice_records_dropped_total",
			Help: "Records given up on without a dead-letter destination, under SLUICE_DLQ_POLICY=drop.",
		}),
		failures: f.NewCounter(prometheus.CounterOpts{
			Name: "sluice_dead_letter_errors_total",
			Help: "Failed writes to the dead-letter destination (each retry counts).",
		}),
	}
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sluice_records_blocked",
		Help: "Records given up on but held in place because there is no dead-letter destination (SLUICE_DLQ_POLICY=block).",
	}, func() float64 { return float64(d.blocked.Load()) })
	return d
}

// deadLetter writes m to the dead-letter destination, retrying with backoff
// for as long as it takes: a record is never lost because the dead-letter
// destination is down (its lane holds meanwhile). Only a permanent failure
// of the dead-letter write, under the drop policy, gives the record up. It
// reports false when ctx (the partition's) ended first.
func (p *pipeline) deadLetter(ctx context.Context, m *Message, cause error, reason string) bool {
	dm := deadLetterMessage(m, cause, reason, time.Now())
	warned := false
	for attempt := 1; ; attempt++ {
		err := p.dl.sink.Deliver(ctx, dm)
		if err == nil {
			p.dl.dead.Inc()
			p.log.Warn("record dead-lettered", "reason", reason, "topic", m.Topic,
				"partition", m.Partition, "offset", m.Offset, "attempts", m.Attempt, errAttr(cause))
			return true
		}
		p.dl.failures.Inc()
		if ctx.Err() != nil {
			return false
		}
		if IsPermanent(err) && p.fail.onExhausted == DeadLetterDrop {
			p.drop(m, err, "dead_letter_rejected")
			return true
		}
		if !warned {
			warned = true
			p.log.Warn("dead-letter write failed; retrying, the record's lane holds meanwhile",
				"reason", "dead_letter_error", "topic", m.Topic, "partition", m.Partition,
				"offset", m.Offset, errAttr(err))
		}
		d := p.fail.backoff.next(attempt)
		if ra, ok := RetryDelay(err); ok {
			d = max(d, ra)
		}
		if !sleep(ctx, d) {
			return false
		}
	}
}

// drop gives m up, loudly.
func (p *pipeline) drop(m *Message, cause error, reason string) {
	m.dropped = true
	p.dl.dropped.Inc()
	p.log.Warn("record dropped", "reason", reason, "policy", DeadLetterDrop, "topic", m.Topic,
		"partition", m.Partition, "offset", m.Offset, "attempts", m.Attempt, errAttr(cause))
}

// deadLetterMessage copies m for the dead-letter destination: same source
// position, key, value and headers, plus the HeaderDLQ* headers.
func deadLetterMessage(m *Message, cause error, reason string, now time.Time) *Message {
	msg := RedactText(cause.Error())
	if len(msg) > 1024 {
		msg = msg[:1024]
	}
	dm := &Message{
		Source: m.Source, Topic: m.Topic, Partition: m.Partition, Offset: m.Offset,
		Key: m.Key, Value: m.Value, Time: m.Time, Attempt: 1,
		Headers: make([]Header, 0, len(m.Headers)+8),
	}
	dm.Headers = append(dm.Headers, m.Headers...)
	dm.Headers = append(dm.Headers,
		Header{HeaderDLQSource, []byte(m.Source)},
		Header{HeaderDLQTopic, []byte(m.Topic)},
		Header{HeaderDLQPartition, strconv.AppendInt(nil, int64(m.Partition), 10)},
		Header{HeaderDLQOffset, strconv.AppendInt(nil, m.Offset, 10)},
		Header{HeaderDLQAttempts, strconv.AppendInt(nil, int64(m.Attempt), 10)},
		Header{HeaderDLQReason, []byte(reason)},
		Header{HeaderDLQError, []byte(msg)},
		Header{HeaderDLQTime, now.UTC().AppendFormat(nil, time.RFC3339Nano)},
	)
	return dm
}

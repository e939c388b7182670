package consumer

import (
	"errors"
	"fmt"
	"time"
)

// Ordering says which messages must reach the sink one after another.
type Ordering string

const (
	// OrderKey delivers messages with the same key, in one partition, in
	// offset order; different keys go in parallel. Messages without a key
	// carry no order (Kafka's partitioners spread them anyway). The default.
	OrderKey Ordering = "key"
	// OrderPartition delivers each partition in offset order.
	OrderPartition Ordering = "partition"
	// OrderNone delivers in any order, as parallel as the pool allows.
	OrderNone Ordering = "none"
)

// Sources.
const (
	SourceKafka = "kafka"
	// SourceKafkaShare is a member of a Kafka share group (KIP-932, Kafka
	// 4.2+): at least once, records acknowledged one by one, any number of
	// members per partition, no order (see shareSource).
	SourceKafkaShare = "kafka-share"
	// SourceJetStream is a NATS JetStream durable pull consumer: at least
	// once, with pulls sized from the window (see NATSConfig).
	SourceJetStream = "jetstream"
	// SourceNATS is a core NATS queue subscription: at most once; it cannot
	// pause, only drop (see NATSConfig).
	SourceNATS = "nats"
)

// Config is the pipeline's configuration, common to every source. The zero
// value of each field means its documented default.
type Config struct {
	// Source names where messages come from (default SourceKafka).
	Source string

	// MaxRecords and MaxBytes are the in-flight budget for the whole process
	// (default 100000 records, 64 MiB). A record counts from the moment it is
	// fetched until its offset is committed or its ack sent.
	MaxRecords int
	MaxBytes   int64
	// HighWater and LowWater are fractions of the budget (default 0.8 and
	// 0.5): fetching pauses at the high mark and resumes at the low one.
	HighWater float64
	LowWater  float64
	// PauseDelay is how long the window must stay under pressure (reached
	// the high-water mark and not yet back at the low one) before
	// partitions pause (default 200 ms), so a window that fills for a moment
	// while a commit is on its way does not stop fetching. The budget holds
	// regardless: it is enforced when records are admitted.
	PauseDelay time.Duration

	// Ordering of deliveries (default OrderKey; OrderNone for SourceKafkaShare,
	// which allows no other).
	Ordering Ordering
	// Workers is the pool size to start with (default 8). The pool can be
	// resized at any time with Resize.
	Workers int
	// BatchMax is the most messages a worker takes from a lane at once
	// (default 256). Larger batches take the pipeline's lock less often;
	// smaller ones let a worker move on to other lanes sooner.
	BatchMax int

	// CommitInterval is how often done offsets are committed (default 1 s).
	// Commits also happen sooner when a quarter of the window is done but
	// uncommitted, on revoke, and on shutdown.
	CommitInterval time.Duration
	// RebalanceTimeout bounds how long a revoke waits for in-flight
	// deliveries of the revoked partitions (default 10 s). When it runs
	// out, their context is cancelled (the sink, the retry waits and the
	// dead-letter write see it), so no worker goes on delivering for a
	// partition this member gives away; the done prefix is then committed
	// with a deadline of its own (CommitTimeout).
	//
	// A Kafka member tells the group coordinator how long to wait for it
	// to rejoin a rebalance: GroupRebalanceTimeout, derived from this.
	RebalanceTimeout time.Duration
	// CommitTimeout bounds each commit (default 10 s): on the interval,
	// on revoke and at shutdown, each gets a deadline of its own, so a
	// commit to a coordinator that does not answer can never hold up a
	// revoke or a shutdown for longer.
	CommitTimeout time.Duration
	// ShutdownTimeout bounds the drain on shutdown (default 30 s): stop
	// intake, finish what was admitted, commit. Keep it below the pod's
	// termination grace period.
	ShutdownTimeout time.Duration

	// RetryInitialBackoff and RetryMaxBackoff shape the delay between
	// attempts of a failing delivery (default 100 ms doubling to 10 s).
	RetryInitialBackoff time.Duration
	RetryMaxBackoff     time.Duration
	// RetryMaxAttempts bounds the failed attempts of one message (default
	// 5), and RetryMaxElapsed the time from its first failure (default
	// 2 min); then it is dead-lettered (see WithDeadLetter) or, without a
	// dead-letter destination, DeadLetterPolicy applies. A Permanent error
	// gives the message up at once. Failures marked Unavailable or
	// RetryAfter (the destination is down or throttling, e.g. the circuit
	// breaker is open) count against neither: they hold the lane instead.
	RetryMaxAttempts int
	RetryMaxElapsed  time.Duration
	// DeadLetterPolicy is what happens to a message given up on when there
	// is no dead-letter destination: DeadLetterBlock (default) or
	// DeadLetterDrop.
	DeadLetterPolicy DeadLetterPolicy

	// Kafka configures the Kafka source.
	Kafka KafkaConfig
	// NATS configures the jetstream and nats sources.
	NATS NATSConfig
}

// ErrInvalidConfig wraps every configuration error.
var ErrInvalidConfig = errors.New("invalid config")

// FieldError says which field is invalid and what it should be. It wraps
// ErrInvalidConfig.
type FieldError struct {
	Field string // e.g. "MaxRecords" or "Kafka.Brokers"
	Value any
	Want  string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("invalid config: %s=%v: %s", e.Field, e.Value, e.Want)
}

func (e *FieldError) Unwrap() error { return ErrInvalidConfig }

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.MaxRecords, 100_000)
	if c.MaxBytes == 0 {
		c.MaxBytes = 64 << 20
	}
	if c.HighWater == 0 {
		c.HighWater = 0.8
	}
	if c.LowWater == 0 {
		c.LowWater = 0.5
	}
	if c.Ordering == "" {
		c.Ordering = OrderKey
		if c.Source == SourceKafkaShare {
			c.Ordering = OrderNone // a share group has no order to keep
		}
	}
	def(&c.Workers, 8)
	def(&c.BatchMax, 256)
	dur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	dur(&c.PauseDelay, 200*time.Millisecond)
	dur(&c.CommitInterval, time.Second)
	dur(&c.RebalanceTimeout, 10*time.Second)
	dur(&c.CommitTimeout, 10*time.Second)
	dur(&c.ShutdownTimeout, 30*time.Second)
	dur(&c.RetryInitialBackoff, 100*time.Millisecond)
	dur(&c.RetryMaxBackoff, 10*time.Second)
	c.setFailureDefaults()
	if c.Source == "" {
		c.Source = SourceKafka
	}
	if c.Source == SourceKafka || c.Source == SourceKafkaShare {
		c.Kafka.setDefaults(c)
	}
	if c.Source == SourceJetStream || c.Source == SourceNATS {
		c.NATS.setDefaults(c)
	}
}

// heartbeatInterval is the gap between a Kafka member's heartbeats
// (franz-go's default): a member that is not revoking anything learns that a
// rebalance has begun at its next heartbeat, and rejoins at once.
const heartbeatInterval = 3 * time.Second

// GroupRebalanceTimeout is the rebalance timeout a Kafka member sends with
// its JoinGroup: how long the group coordinator waits for every member to
// rejoin once a rebalance has begun, holding the whole group (no commit
// goes through) until they have or the time is up, when it drops the ones
// missing. Sluice sizes it to the longest a member of its own can take to
// rejoin, and a second more: a revoke (RebalanceTimeout, then revokeGrace,
// then a commit bounded by CommitTimeout), or a heartbeat interval for a
// member with nothing to revoke. With the defaults that is 22 s; franz-go's
// own default, 60 s, held a group waiting on a member that had died while
// joining for far longer than any revoke needs.
func (c *Config) GroupRebalanceTimeout() time.Duration {
	return max(heartbeatInterval, c.RebalanceTimeout+revokeGrace+c.CommitTimeout) + time.Second
}

// Validate fills in defaults and reports every invalid field at once.
func (c *Config) Validate() error {
	c.setDefaults()
	var errs []error
	bad := func(field string, v any, want string) {
		errs = append(errs, &FieldError{Field: field, Value: v, Want: want})
	}
	if c.MaxRecords < 1 {
		bad("MaxRecords", c.MaxRecords, "want at least 1")
	}
	if c.MaxBytes < 1024 {
		bad("MaxBytes", c.MaxBytes, "want at least 1KiB")
	}
	if c.HighWater <= 0 || c.HighWater > 1 {
		bad("HighWater", c.HighWater, "want a fraction in (0, 1]")
	}
	if c.LowWater <= 0 || c.LowWater >= c.HighWater {
		bad("LowWater", c.LowWater, "want a fraction above 0 and below HighWater")
	}
	switch c.Ordering {
	case OrderKey, OrderPartition, OrderNone:
	default:
		bad("Ordering", c.Ordering, "want key, partition or none")
	}
	if c.Workers < 1 {
		bad("Workers", c.Workers, "want at least 1")
	}
	if c.BatchMax < 1 {
		bad("BatchMax", c.BatchMax, "want at least 1")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"PauseDelay", c.PauseDelay}, {"CommitInterval", c.CommitInterval}, {"RebalanceTimeout", c.RebalanceTimeout}, {"CommitTimeout", c.CommitTimeout},
		{"ShutdownTimeout", c.ShutdownTimeout}, {"RetryInitialBackoff", c.RetryInitialBackoff},
		{"RetryMaxBackoff", c.RetryMaxBackoff},
	} {
		if d.v < 0 {
			bad(d.name, d.v, "want a positive duration")
		}
	}
	if c.RetryMaxBackoff < c.RetryInitialBackoff {
		bad("RetryMaxBackoff", c.RetryMaxBackoff, "want at least RetryInitialBackoff")
	}
	errs = append(errs, c.validateFailure()...)
	if c.Source == SourceKafka {
		errs = append(errs, c.Kafka.validate()...)
	}
	if c.Source == SourceKafkaShare {
		errs = append(errs, c.Kafka.validate()...)
		if c.Ordering != OrderNone {
			bad("Ordering", c.Ordering, "want none with the kafka-share source: a share group hands any record to any member, "+
				"so no order by key or partition can be kept (use the kafka source for ordered delivery)")
		}
		if c.Kafka.InstanceID != "" {
			bad("Kafka.InstanceID", c.Kafka.InstanceID, "want none with the kafka-share source: share groups have no static membership")
		}
	}
	if c.Source == SourceJetStream || c.Source == SourceNATS {
		errs = append(errs, c.NATS.validate(c.Source)...)
	}
	return errors.Join(errs...)
}

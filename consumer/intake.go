package consumer

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The seam between the sources and the pipeline.
//
// A source (Kafka, a Kafka share group, JetStream, core NATS) sees the
// consumer only through intake: it asks for room, admits what it fetched,
// and reports what the broker assigned and took away. Admit is the one
// place where records take their place in the window and where the pause
// policy hears of it; the pipeline tells the source back through pause
// and resume. What a source does besides, it declares by implementing one
// of the small interfaces below, found by type assertion: a committer
// records commit points with the broker; a source that is not one settles
// each message itself (an acker, or nothing to settle at all, core NATS)
// and its messages are not tracked.

// source is where messages come from.
type source interface {
	// start connects, and keeps in for the rest of the source's life. It
	// is called once, before anything else; ctx bounds the connecting.
	start(ctx context.Context, in intake) error
	// run fetches and admits messages until ctx ends.
	run(ctx context.Context) error
	// pause and resume stop and restart fetching for the partitions.
	pause(parts []*partition)
	resume(parts []*partition)
	// close leaves the group (revoking what is still assigned) and closes
	// the client, by ctx's deadline (the shutdown's). It is called once,
	// after run has returned.
	close(ctx context.Context)
}

// intake is what a source sees of the consumer.
type intake interface {
	// Room is how many more records the window takes now (see
	// Window.Room); Free is what it has free, in records and bytes, and
	// Empty whether it holds nothing (a record larger than the whole
	// budget is then admitted alone).
	Room() int
	Free() (records, bytes int64)
	Empty() bool
	// Changed returns a channel that receives after the window gives room
	// back: call it before looking at the room, then wait on it.
	Changed() <-chan struct{}
	// Polled tells the window what a fetch brought (records, bytes), before
	// admitting it: the room is estimated from it while the window is empty.
	Polled(records int, bytes int64)
	// Admit takes the longest prefix of msgs (one partition's, in offset
	// order) that fits in the window into the window, the tracker and the
	// lanes, and returns its length; the caller keeps the rest until the
	// window has room (Changed). bytes is the sum of the messages' sizes,
	// or -1 when the caller does not know it. hwm is the partition's high
	// watermark as the broker reported it with them, or -1. Messages of a
	// partition that is being revoked or is gone are taken and dropped.
	Admit(part *partition, msgs []*Message, bytes, hwm int64) int
	// Partition returns the state of an assigned partition, or nil.
	Partition(tp topicPartition) *partition
	// Assigned, Revoked and Lost report what the broker gave this member
	// and took away (Revoked waits, within RebalanceTimeout, for what was
	// admitted of the partitions to be delivered and committed; Lost
	// abandons it).
	Assigned(tps []topicPartition)
	Revoked(tps []topicPartition)
	Lost(tps []topicPartition)
	// Position reports where a partition stands for a source with no
	// commit points: the position its acknowledgements have reached and
	// its high watermark, from which the lag is read.
	Position(part *partition, position, hwm int64)
}

// committer is a source that records commit points (the done prefix of
// each partition) with the broker, and returns those that failed. Its
// messages are tracked, and their places in the window are given back once
// their commit point is recorded.
type committer interface {
	commit(ctx context.Context, cps []commitPoint) (failed []commitPoint, err error)
}

// acker is a source that settles each message with the broker itself (a
// JetStream ack, a share-group acceptance). The workers call ack, without
// the pipeline's lock, with each batch the pipeline is done with
// (delivered, dead-lettered or dropped, see Message.gaveUp); the messages'
// places in the window are given back when it returns.
type acker interface {
	ack(batch []*Message)
}

// settler is a source that can take a failed message back and have the
// broker redeliver it later, instead of the worker retrying it in place
// (JetStream's NakWithDelay). settle is called without the lock for each
// retry and block decision, before the worker waits d.delay; returning
// true settles the message: the pipeline counts it done and does not retry
// it (its acker then skips it). Returning false keeps the in-process
// retry. Dead-letter and drop decisions are the pipeline's either way.
type settler interface {
	settle(m *Message, d decision) bool
}

// fenced is a source whose group membership can lapse without it knowing
// at once (a Kafka consumer group): the workers wait on its liveness
// before each sink call while the session may be lost.
type fenced interface {
	fence() *liveness
}

// sourceEnv is what a source is built with besides intake: the consumer's
// configuration (defaults applied), logger, metrics and the registerer for
// its own metrics.
type sourceEnv struct {
	cfg *Config
	log *slog.Logger
	met *metrics
	reg prometheus.Registerer
}

// newSource builds the source that Config.Source names.
func newSource(env sourceEnv) (source, error) {
	switch env.cfg.Source {
	case SourceKafka:
		return newKafkaSource(env)
	case SourceKafkaShare:
		return newShareSource(env)
	case SourceJetStream:
		return newJetStreamSource(env)
	case SourceNATS:
		return newCoreNATSSource(env)
	}
	return nil, &FieldError{Field: "Source", Value: env.cfg.Source, Want: "want kafka, kafka-share, jetstream or nats"}
}

// attach wires the hooks src implements into the pipeline.
func (p *pipeline) attach(src source) {
	_, tracked := src.(committer)
	p.untracked = !tracked
	p.acker, _ = src.(acker)
	p.settler, _ = src.(settler)
	if f, ok := src.(fenced); ok {
		p.live = f.fence()
	}
}

// seam is the consumer's side of intake.
type seam struct{ c *Consumer }

var _ intake = seam{}

func (s seam) Room() int                              { return s.c.win.Room() }
func (s seam) Empty() bool                            { return s.c.win.Records() == 0 }
func (s seam) Changed() <-chan struct{}               { return s.c.win.Changed() }
func (s seam) Assigned(tps []topicPartition)          { s.c.assigned(tps) }
func (s seam) Revoked(tps []topicPartition)           { s.c.revoked(tps, false) }
func (s seam) Lost(tps []topicPartition)              { s.c.revoked(tps, true) }
func (s seam) Partition(tp topicPartition) *partition { return s.c.pipe.partition(tp) }

func (s seam) Free() (int64, int64) {
	w := s.c.win
	return w.MaxRecords() - w.Records(), w.MaxBytes() - w.Bytes()
}

func (s seam) Polled(n int, bytes int64) {
	s.c.win.SawRecords(n, bytes)
	s.c.met.fetchedBytes.Add(float64(bytes))
}

func (s seam) Admit(part *partition, msgs []*Message, bytes, hwm int64) int {
	c := s.c
	w := c.win
	n := len(msgs)
	if n == 0 {
		return 0
	}
	// The whole batch fits (the usual case) without a look at each message.
	if bytes < 0 || w.Records()+int64(n) > w.MaxRecords() || w.Bytes()+bytes > w.MaxBytes() {
		n, bytes = w.fit(msgs)
		if n == 0 {
			return 0
		}
	}
	w.Add(n, bytes)
	c.pipe.admit(part, msgs[:n], bytes, hwm)
	if w.AboveHigh() {
		c.pipe.kick() // commit now: committed records give their places back
	}
	c.evaluateFlow()
	return n
}

func (s seam) Position(part *partition, position, hwm int64) {
	p := s.c.pipe
	p.mu.Lock()
	defer p.mu.Unlock()
	if !part.gone {
		part.committed, part.doneOffset, part.hwm = position, position, hwm
	}
}

// drainBudget is how long a source may take to drain its connection at
// close: its own limit, cut to what is left before ctx's deadline (at
// least closeGrace), so the whole shutdown stays within ShutdownTimeout.
func drainBudget(ctx context.Context, limit time.Duration) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return min(limit, max(time.Until(dl), closeGrace))
	}
	return limit
}

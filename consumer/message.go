package consumer

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Message is one record handed to a sink. The pipeline owns it: a sink must
// not keep Key, Value or Headers after Deliver returns (copy them if it
// needs to), and must not modify them.
type Message struct {
	// The first 56 bytes hold what the pipeline reads of every message
	// around its delivery (the fence, the attempt, the tracker, the
	// release): with key ordering a worker visits a poll's messages in key
	// order, not memory order, and each cache line it touches is a miss.
	// Message is 256 bytes, so in a block (blocks.go) every one starts at
	// the same place in a line as the block does: at its start, or 8 bytes
	// in (the allocator's header of a small object with pointers). Either
	// way those 56 bytes are one line.

	seq   int64 // position in its partition's tracker
	size  int64 // bytes counted in the window
	epoch int32 // Kafka leader epoch, for the commit
	idx   int32 // index in its keyed segment (key ordering)
	// blk is the pooled block the message lives in (blocks.go); nil for
	// messages the pipeline does not reuse.
	blk *msgBlock
	// rec is the franz-go record Key, Value and Headers point into, to be
	// recycled once they are no longer read (recordpool.go); nil for the
	// other sources.
	rec *kgo.Record

	// Offset is the Kafka offset, or the JetStream stream sequence.
	Offset int64
	// Attempt counts deliveries of this message by this process, from 1.
	// For JetStream it goes on across a redelivery that this process asked
	// for after a failure (NakWithDelay): the failures charged before it
	// count. A redelivery for any other reason (AckWait ran out, a
	// shutdown handed the message back, another replica had it) is not a
	// failure of the message, and counting starts again.
	Attempt int
	// Source names where the message came from: "kafka", "jetstream" or "nats".
	Source string
	// Topic is the Kafka topic, or the NATS subject.
	Topic string
	// Partition is the Kafka partition; 0 for NATS.
	Partition int32
	// dropped: given up without reaching a dead-letter destination (the
	// drop policy), as opposed to dead-lettered.
	dropped bool
	Key     []byte
	Value   []byte
	// Headers in the order the broker gave them.
	Headers []Header
	// Time is the record's timestamp as the broker reports it.
	Time time.Time

	// charged is the failed attempts the failure policy has counted
	// against the message (see failureState.attempts), carried across a
	// JetStream redelivery this process asked for.
	charged int
	ack     any // source-specific handle (a JetStream message)
	// gaveUp is why the pipeline gave the message up (dead-lettered or
	// dropped); "" when the sink delivered it. The source's ack sees it.
	gaveUp string
	_      [24]byte // to 256 bytes (see the top)
}

// Header is one record header.
type Header struct {
	Key   string
	Value []byte
}

// Sink delivers messages to their destination. Deliver returns nil once the
// message is safely stored; any error means it was not, and the pipeline
// decides whether to retry it. Deliver is called from many goroutines at
// once, but never concurrently for two messages that share an ordering lane.
//
// A Sink never acknowledges or commits anything: the pipeline does, only
// after Deliver returned nil.
type Sink interface {
	Deliver(ctx context.Context, m *Message) error
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(ctx context.Context, m *Message) error

// Deliver calls f.
func (f SinkFunc) Deliver(ctx context.Context, m *Message) error { return f(ctx, m) }

// Pinger is an optional Sink capability: Ping reports whether the sink's
// destination is reachable. Readiness uses it.
type Pinger interface {
	Ping(ctx context.Context) error
}

package consumer

import (
	"math/bits"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Message blocks: the Kafka source fills the Messages of one poll of one
// partition into a block taken from a pool, and the block goes back to the
// pool once every message in it has left the pipeline, instead of a new
// []Message per poll for the garbage collector (216 bytes a record, which
// at a million records a second was most of the process's garbage).
//
// A message leaves the pipeline at exactly one of three places, each under
// the pipeline's mutex: finish (a worker is done with the batch it took,
// delivered or not), dropLane (queued, never taken: its partition is going
// away) and admit (its partition went away before it was admitted). So
// block.live is guarded by that mutex, and a block is reused only after the
// last of its messages was handed back by the worker that held it: at that
// point no lane holds it (take removed it from the lane), the sink has
// returned (a sink may not keep a Message after Deliver returns) and so has
// the source's ack. Messages still waiting outside the window, or left in lanes when
// the pipeline stops, are never released: their block is collected as
// garbage, never reused early.
//
// Blocks come in sizes 16..256 (powers of two) so a small poll does not pin
// a large block; a poll of fewer than 16 records of a partition gets plain
// Messages with no block, and a larger one several blocks.
type msgBlock struct {
	msgs  []Message
	ptrs  []*Message
	class int
	n     int // messages handed out
	live  int // of those, not yet released; guarded by the pipeline's mutex
}

const (
	blockMinShift = 4
	blockMin      = 1 << blockMinShift // smaller polls get plain Messages
	blockMax      = 256
)

// blocks keeps released blocks for reuse, by class (see classPool); a
// block's size is its capacity in messages.
var blocks = classPool[*msgBlock]{unit: blockMin}

// blockClass is the pool index of the smallest block that holds n
// (blockMin <= n <= blockMax) messages.
func blockClass(n int) int { return max(0, bits.Len(uint(n-1))-blockMinShift) }

// newMessages returns n (at most blockMax) Messages, from a pooled block
// when n is at least blockMin. They are not zeroed: the caller writes each
// one whole, keeping its blk, and admits them.
func newMessages(n int) []*Message {
	if n < blockMin {
		msgs := make([]Message, n)
		ptrs := make([]*Message, n)
		for i := range msgs {
			ptrs[i] = &msgs[i]
		}
		return ptrs
	}
	c := blockClass(n)
	b, ok := blocks.get(c)
	if !ok {
		size := blockMin << c
		b = &msgBlock{msgs: make([]Message, size), ptrs: make([]*Message, size), class: c}
		for i := range b.msgs {
			b.msgs[i].blk = b
			b.ptrs[i] = &b.msgs[i]
		}
	}
	b.n, b.live = n, n
	return b.ptrs[:n:n]
}

// releaseMessages hands msgs back to their blocks and returns spent with
// the franz-go records that may now be recycled appended: a message with
// no block gives its record at once; a block gives the records of all its
// messages, in order, once none of them is left in the pipeline, and goes
// back to its pool. Recycling a block's records together walks them in
// memory order, where with key ordering messages are released in key
// order, and each recycled record (zeroed by the client) was a cache miss.
// The block is not cleared in the pool: by then its memory is cold, and
// clearing it cost the workers more (30 ns a message, measured) than the
// fetcher's overwriting it whole saves. A kept block so keeps its old
// records' memory reachable until it is reused: a bounded amount (see
// classPool), and mostly the client's pooled buffers (recordpool.go),
// which stay in use anyway.
// Called with the pipeline's mutex held, once for each message, by whoever
// holds it last (see above).
func releaseMessages(msgs []*Message, spent []*kgo.Record) []*kgo.Record {
	for _, m := range msgs {
		b := m.blk
		if b == nil {
			if m.rec != nil {
				spent = append(spent, m.rec)
				m.rec = nil
			}
			continue
		}
		b.live--
		if b.live == 0 {
			for i := range b.msgs[:b.n] {
				if r := b.msgs[i].rec; r != nil {
					spent = append(spent, r)
					b.msgs[i].rec = nil
				}
			}
			blocks.put(b.class, b)
		}
	}
	return spent
}

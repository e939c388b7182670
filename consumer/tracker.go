package consumer

import (
	"context"
	"math"
	"slices"
	"sync/atomic"
	"time"
)

// topicPartition names a partition. For NATS sources the topic is the stream
// (or subject) and the partition is 0.
type topicPartition struct {
	topic     string
	partition int32
}

// segment is the tracker's record of a run of admitted messages of one
// partition: a chunk (no ordering) or one admission's messages in the
// partition's lane (partition ordering), which one lane delivers in order,
// or one admission's messages (key ordering), which their keys' lanes
// deliver in any order. Its done count is the length of its done prefix:
// for an in-order segment every done message is in it, so counting them
// says which they are (completion costs O(1) a run, not a store per
// message); a keyed segment marks each message done in marks and moves its
// prefix over the marked ones, each message once.
type segment struct {
	count, done, counted int32 // messages; of those, the done prefix; of that, counted into the released share
	doneEpoch            int32 // leader epoch of the last done message (of every message, when marked)
	doneEnd              int64 // offset after the last done message
	bytes                int64 // of all its messages
	doneBytes            int64
	countedBytes         int64
	first                int64  // offset of the first message, when marked
	marks                []mark // one a message, for a keyed segment; nil for an in-order one
}

// mark is one message of a keyed segment: its size in the window,
// complemented (negative) once it is done, and its offset from the
// segment's first.
type mark struct{ size, delta int32 }

// markArrays keeps keyed segments' mark arrays for reuse, up to twice the
// window's record budget (newPipeline sets it).
var markArrays = classPool[[]mark]{unit: 1}

// partition is the pipeline's state for one assigned partition: the tracker
// (admitted offsets in order, which of them are done), its share of the
// window, its lanes and its pause state. Every field is guarded by the
// pipeline's mutex.
//
// The tracker keeps one segment per run of admitted messages, in admission
// order, which for Kafka is offset order. doneOffset moves over the done
// messages at the front only while they are contiguous: through a segment
// whose done prefix is whole, into the next, never past a message that was
// not delivered. That is the whole at-least-once argument.
type partition struct {
	topicPartition

	segs    []segment
	head    int   // segs[:head] are popped
	base    int64 // seq of segs[0]
	nextSeq int64
	// takenEnd is the offset after the last message a worker took (so it
	// is done, inside a worker, or past what a revoke still delivers): a
	// revoke delivers the queued messages below it (the frontier).
	takenEnd int64

	doneOffset int64 // offset after the contiguous done prefix; -1 when nothing is done yet
	doneEpoch  int32
	committed  int64 // offset last committed; -1 until the first commit
	firstSeen  int64 // offset of the first admitted message; -1 before
	fetched    int64 // offset after the last admitted message; -1 before
	hwm        int64 // high watermark the broker reported last

	heldRecords, heldBytes int64 // what this partition holds in the window
	relRecords, relBytes   int64 // done prefix not yet committed (released at the next commit)
	committing             bool  // a commit of this partition is in flight

	queued, inflight int // messages waiting for a worker / inside one

	lane *lane            // partition ordering
	keys map[string]*lane // key ordering: busy and idle key lanes
	// sweepAt is the size of keys at which its idle lanes are swept out
	// (see pipeline.sweepIdleKeys).
	sweepAt int

	revoking bool // dispatch stopped: partition is being revoked or lost
	gone     bool // no longer assigned; late completions are ignored

	// ctx is what this partition's deliveries run under: the sink call,
	// the retry waits and the dead-letter write. It ends when the
	// partition is lost, when its revoke wait runs out, and when the
	// workers stop, so no worker goes on delivering (or retrying, or
	// dead-lettering) for a partition this member no longer owns.
	ctx    context.Context
	cancel context.CancelFunc
	// leaveFrom is the first offset this member no longer delivers, read
	// without the lock: a worker checks it before each message of a batch
	// and stops there. math.MaxInt64 while the partition is owned; at a
	// revoke, the offset after the last message already delivered or in a
	// worker (the gaps below it are still delivered, so the committed
	// prefix reaches it and the next owner repeats nothing); math.MinInt64
	// once the partition is lost, abandoned or removed.
	// It has cache lines of its own: the workers read it for every
	// message, and the fields around it are written for every batch.
	_         [64]byte
	leaveFrom atomic.Int64
	_         [56]byte

	// pred is the state of an earlier assignment of this same partition
	// whose deliveries have not all returned yet (its sink ignored the
	// cancelled context, say). This partition's lanes are parked until
	// they have, so a key is never delivered twice at the same time; succ
	// is the other direction of that link. Guarded by the pipeline's mutex.
	pred, succ *partition
	parked     []*lane

	paused      bool
	pauseReason string
	pausedAt    time.Time
}

func newPartition(tp topicPartition) *partition {
	p := &partition{
		topicPartition: tp,
		doneOffset:     -1,
		committed:      -1,
		firstSeen:      -1,
		fetched:        -1,
		hwm:            -1,
		takenEnd:       math.MinInt64,
	}
	p.leaveFrom.Store(math.MaxInt64)
	return p
}

// stops reports whether m is past what this member still delivers.
func (p *partition) stops(m *Message) bool { return m.Offset >= p.leaveFrom.Load() }

// track appends an in-order segment of n messages from offset first to end
// (exclusive), of bytes in all, and returns its sequence number.
func (p *partition) track(first, end int64, n int, bytes int64) int64 {
	p.segs = p.appendSeg(segment{count: int32(n), bytes: bytes})
	p.admitted(first, end, n, bytes)
	return p.nextSeq - 1
}

// trackKeyed appends an empty keyed segment for up to n messages, whose
// leader epoch is epoch and first offset first, and returns its sequence
// number; addKeyed adds the messages.
func (p *partition) trackKeyed(first int64, epoch int32, n int) int64 {
	marks, ok := markArrays.get(ceilClass(n))
	if !ok {
		marks = make([]mark, 0, 1<<ceilClass(n))
	}
	p.segs = p.appendSeg(segment{doneEpoch: epoch, doneEnd: first, first: first, marks: marks[:0]})
	return p.nextSeq - 1
}

// fitsKeyed reports whether a message of offset and size (and leader epoch)
// can join the keyed segment seq, the last one: a mark holds 31 bits of
// size and of distance from the segment's first offset.
func (p *partition) fitsKeyed(seq, offset, size int64, epoch int32) bool {
	i := int(seq - p.base)
	if i < p.head || i != len(p.segs)-1 {
		return false
	}
	s := &p.segs[i]
	return s.marks != nil && s.doneEpoch == epoch && offset >= s.first &&
		offset-s.first <= math.MaxInt32 && size <= math.MaxInt32
}

// addKeyed adds a message of offset and size to the keyed segment seq (the
// last one, see fitsKeyed) and returns its index there.
func (p *partition) addKeyed(seq, offset, size int64) int32 {
	s := &p.segs[seq-p.base]
	s.marks = append(s.marks, mark{size: int32(size), delta: int32(offset - s.first)})
	s.count++
	s.bytes += size
	p.admitted(offset, offset+1, 1, size)
	return s.count - 1
}

// appendSeg appends s to the segments, doubling their array when full:
// append grows a large slice by a quarter, and a tracker that fills to a
// window's share that way allocates five times its final size.
func (p *partition) appendSeg(s segment) []segment {
	if len(p.segs) == cap(p.segs) {
		p.segs = slices.Grow(p.segs, max(len(p.segs), 64))
	}
	p.nextSeq++
	return append(p.segs, s)
}

// admitted counts n messages up to offset end (exclusive), of bytes in
// all, as held by this partition.
func (p *partition) admitted(first, end int64, n int, bytes int64) {
	if p.firstSeen < 0 {
		p.firstSeen = first
	}
	p.fetched = end
	p.heldRecords += int64(n)
	p.heldBytes += bytes
}

// markDone records that the next n messages of the in-order segment seq
// were delivered (bytes in all; end is the offset after the last of them,
// epoch its leader epoch), and advances the contiguous done prefix as far
// as it now reaches. It returns the number of records the prefix advanced
// by.
func (p *partition) markDone(seq int64, n int, bytes, end int64, epoch int32) int {
	i := int(seq - p.base)
	if i < p.head || i >= len(p.segs) {
		return 0 // already popped: cannot happen for a live partition
	}
	s := &p.segs[i]
	s.done += int32(n)
	s.doneBytes += bytes
	s.doneEnd, s.doneEpoch = end, epoch
	return p.advance(i)
}

// markKeyed records that message idx of the keyed segment seq was
// delivered, moves the segment's done prefix over the done messages that
// now follow it, and the partition's as far as it reaches. It returns the
// number of records the partition's prefix advanced by.
func (p *partition) markKeyed(seq int64, idx int32) int {
	i := int(seq - p.base)
	if i < p.head || i >= len(p.segs) {
		return 0
	}
	s := &p.segs[i]
	s.marks[idx].size = ^s.marks[idx].size
	if idx != s.done {
		return 0 // a gap before it: the prefix stops there
	}
	for s.done < s.count && s.marks[s.done].size < 0 {
		m := s.marks[s.done]
		s.doneBytes += int64(^m.size)
		s.doneEnd = s.first + int64(m.delta) + 1
		s.done++
	}
	return p.advance(i)
}

// advance moves the partition's done prefix when segment i (just marked)
// is the first not yet passed: over the done prefixes of the segments from
// there, through each whole one into the next. It returns the number of
// records it moved by.
func (p *partition) advance(i int) int {
	if i != p.head {
		return 0
	}
	moved := 0
	for p.head < len(p.segs) {
		s := &p.segs[p.head]
		if s.done > s.counted {
			d := s.done - s.counted
			p.relRecords += int64(d)
			p.relBytes += s.doneBytes - s.countedBytes
			s.counted, s.countedBytes = s.done, s.doneBytes
			p.doneOffset, p.doneEpoch = s.doneEnd, s.doneEpoch
			moved += int(d)
		}
		if s.done < s.count {
			break
		}
		s.releaseMarks()
		p.head++
	}
	p.compact()
	return moved
}

// releaseMarks gives a keyed segment's mark array back to markArrays.
func (s *segment) releaseMarks() {
	if s.marks != nil {
		markArrays.put(floorClass(cap(s.marks)), s.marks[:0])
		s.marks = nil
	}
}

// forget drops the tracker's segments (the partition is gone), giving
// their mark arrays back.
func (p *partition) forget() {
	for i := p.head; i < len(p.segs); i++ {
		p.segs[i].releaseMarks()
	}
	p.segs, p.head = nil, 0
}

// compact drops popped segments once they are the larger part of the
// slice, so the tracker's memory follows what is in flight, not what has
// passed.
func (p *partition) compact() {
	if p.head == len(p.segs) {
		p.base += int64(p.head)
		p.segs = p.segs[:0]
		p.head = 0
		return
	}
	if p.head >= 1024 && p.head*2 >= len(p.segs) {
		n := copy(p.segs, p.segs[p.head:])
		clear(p.segs[n:])
		p.segs = p.segs[:n]
		p.base += int64(p.head)
		p.head = 0
	}
}

// lag is how far the committed position is behind the broker's high
// watermark, or -1 when the broker has not told us yet.
func (p *partition) lag() int64 {
	if p.hwm < 0 {
		return -1
	}
	pos := p.committed
	if pos < 0 {
		pos = p.firstSeen
	}
	if pos < 0 {
		return 0
	}
	return max(0, p.hwm-pos)
}

// commitPoint is one partition's part of a commit: the offset to commit and
// the window share to release once the broker has recorded it.
type commitPoint struct {
	part    *partition
	offset  int64
	epoch   int32
	records int64
	bytes   int64
}

package consumer

import (
	"math/bits"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/twmb/franz-go/pkg/kgo"
)

// maxClass bounds the classes a classPool keeps: sizes below 1<<31.
const maxClass = 31

// recordPool lends franz-go the memory it decodes fetched records into (a
// []kgo.Record per record batch) and decompresses batches into, and takes
// it back once every record of a batch is recycled (kgo.WithPools,
// kgo.Record.Recycle). Without it the client allocates both afresh for
// every batch and the garbage collector clears them: the largest share of
// the process's allocations (several hundred bytes a record), more than
// the pipeline's own.
//
// A Kafka message's Key, Value and header values point into that memory,
// so a record is recycled only when its message can no longer be read:
// once the pipeline has let its message go (pipeline.release): after the
// sink and the source's ack returned (a sink may not keep them, see
// Message), or when the message is dropped without being delivered, and
// once the same is true of every other message of its block (blocks.go);
// the fetching goroutine then recycles it at its next admission. A message
// that never gets there (left in a lane when the pipeline stops, or fetched for a
// partition no longer assigned) keeps its batch's memory from the pool: it
// is collected as garbage, never reused while still referenced.
//
// Slices are kept by power-of-two capacity classes, so a batch of 100
// records does not take a slice of 10 000 (see classPool).
type recordPool struct{}

var (
	recordSlices = classPool[[]kgo.Record]{unit: 1} // size: records
	decompBufs   = classPool[[]byte]{unit: 1}       // size: bytes
)

var _ interface {
	kgo.PoolRecords
	kgo.PoolDecompressBytes
} = recordPool{}

// classPool keeps released items (slices, message blocks) of power-of-two
// sizes for reuse, up to a total size shared by all classes: what one
// window's worth of records needs (see keepUpTo). Unlike a sync.Pool, which
// the garbage collector empties every other cycle, it keeps them through a
// busy process's frequent collections, which is when they are needed: the
// window fills in a burst, then empties in one.
type classPool[T any] struct {
	unit  int // the size of class 0
	mu    sync.Mutex
	free  [32][]T
	kept  int64 // total size of the items in free
	limit int64
}

// get returns a kept item of class c, or of one of the next classes up:
// batch sizes vary, and a larger slice serves as well as a new one.
func (p *classPool[T]) get(c int) (T, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var zero T
	for k := c; k < min(c+4, len(p.free)); k++ {
		if n := len(p.free[k]); n > 0 {
			x := p.free[k][n-1]
			p.free[k][n-1] = zero
			p.free[k] = p.free[k][:n-1]
			p.kept -= int64(p.unit) << k
			return x, true
		}
	}
	return zero, false
}

// put keeps x, of class c, unless that would pass the limit.
func (p *classPool[T]) put(c int, x T) {
	p.mu.Lock()
	defer p.mu.Unlock()
	size := int64(p.unit) << c
	if p.kept+size > p.limit {
		return
	}
	p.free[c] = append(p.free[c], x)
	p.kept += size
}

// keepUpTo raises the limit to n (a process may run several consumers).
func (p *classPool[T]) keepUpTo(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.limit = max(p.limit, n)
}

// ceilClass is the smallest c with 1<<c >= n; floorClass the largest c with
// 1<<c <= n.
func ceilClass(n int) int  { return bits.Len(uint(max(n, 1) - 1)) }
func floorClass(n int) int { return bits.Len(uint(max(n, 1))) - 1 }

// GetRecords returns a slice with room for n records.
func (recordPool) GetRecords(n int) []kgo.Record {
	c := ceilClass(n)
	if c >= maxClass {
		return make([]kgo.Record, 0, n)
	}
	if s, ok := recordSlices.get(c); ok {
		return s[:0]
	}
	return make([]kgo.Record, 0, 1<<c)
}

// PutRecords takes a slice back. franz-go hands it back only once every
// record in it was recycled (each recycled record is zeroed).
func (recordPool) PutRecords(s []kgo.Record) {
	c := floorClass(cap(s))
	if cap(s) == 0 || c >= maxClass {
		return
	}
	recordSlices.put(c, s[:0:1<<c])
}

// GetDecompressBytes returns a buffer to decompress a batch into: of the
// size a snappy block's header gives, else a guess (eight times the
// compressed size, at least 4 KiB). When a batch needs more, the codec
// allocates what it needs, and franz-go hands that back here instead.
func (recordPool) GetDecompressBytes(compressed []byte, codec kgo.CompressionCodecType) []byte {
	size := 8 * len(compressed)
	if codec == kgo.CodecSnappy {
		if n, err := s2.DecodedLen(compressed); err == nil {
			size = n // a size hint only: too small, and the codec allocates
		}
	}
	c := ceilClass(max(size, 4<<10))
	if c >= maxClass {
		return make([]byte, 0, size)
	}
	if b, ok := decompBufs.get(c); ok {
		return b[:0]
	}
	return make([]byte, 0, 1<<c)
}

// PutDecompressBytes takes a buffer back (franz-go has zeroed what it used).
func (recordPool) PutDecompressBytes(b []byte) {
	c := floorClass(cap(b))
	if cap(b) == 0 || c >= maxClass {
		return
	}
	decompBufs.put(c, b[:0:1<<c])
}

// release hands msgs back where the pipeline lets them go: their blocks
// to the block pool, and their records, a block's together, to the spent
// list (releaseMessages). Called with the lock held.
func (p *pipeline) release(msgs []*Message) {
	p.spent = releaseMessages(msgs, p.spent)
}

// takeSpent swaps out the records released since the last call, to be
// recycled (recycleSpent) once the lock is let go. Called with the lock
// held, by the fetching goroutine only (from admit).
func (p *pipeline) takeSpent() []*kgo.Record {
	if len(p.spent) == 0 {
		return nil
	}
	recs := p.spent
	p.spent = p.recycled[:0]
	return recs
}

// recycleSpent recycles records taken by takeSpent, without the lock, on
// the fetching goroutine: one goroutine zeroes them and counts them down
// per batch, where workers doing it each for their own messages fought
// over the cache lines of neighbouring records and the batch's counter
// (a fifth of the CPU with key ordering, measured).
func (p *pipeline) recycleSpent(recs []*kgo.Record) {
	if recs == nil {
		return
	}
	for i, r := range recs {
		r.Recycle()
		recs[i] = nil
	}
	p.recycled = recs
}

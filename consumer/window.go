package consumer

import (
	"sync"
	"sync/atomic"
)

// Window is the process-wide in-flight budget, counted in records and bytes.
//
// A record takes its place in the window when the fetcher admits it and gives
// it back only when its offset is committed (Kafka) or its ack is sent
// (JetStream). Work the sink has finished but the broker has not yet
// recorded still counts, so a failing commit turns into backpressure rather
// than memory, and a crash repeats at most one window.
//
// Fill is the larger of the record and byte fractions. Above the high-water
// mark the fetcher starts pausing partitions; it resumes them at the
// low-water mark. Polling stops altogether at the admission gate, which
// leaves room for one more poll below the budget (see [Window.CanAdmit]).
//
// A Window is safe for concurrent use. Its counters are atomics so metrics and
// the debug endpoint read them without a lock.
type Window struct {
	maxRecords int64
	maxBytes   int64
	high, low  float64

	records atomic.Int64
	bytes   atomic.Int64
	peakRec atomic.Int64
	peakB   atomic.Int64

	mu   sync.Mutex
	room chan struct{} // closed and replaced when records are released
}

// NewWindow returns a window with the given budget and water marks
// (fractions of the budget, 0 < low < high <= 1).
func NewWindow(maxRecords int, maxBytes int64, high, low float64) *Window {
	return &Window{
		maxRecords: int64(maxRecords),
		maxBytes:   maxBytes,
		high:       high,
		low:        low,
		room:       make(chan struct{}),
	}
}

// Add takes n records and b bytes from the budget. It never blocks: the
// caller decides beforehand, with CanAdmit, whether it may poll.
func (w *Window) Add(n int, b int64) {
	r := w.records.Add(int64(n))
	by := w.bytes.Add(b)
	raiseTo(&w.peakRec, r)
	raiseTo(&w.peakB, by)
}

// Release gives n records and b bytes back and wakes anyone waiting for room.
func (w *Window) Release(n int, b int64) {
	if n == 0 && b == 0 {
		return
	}
	w.records.Add(-int64(n))
	w.bytes.Add(-b)
	w.mu.Lock()
	close(w.room)
	w.room = make(chan struct{})
	w.mu.Unlock()
}

// Changed returns a channel that is closed at the next Release.
func (w *Window) Changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.room
}

// Records and Bytes report what the window holds now.
func (w *Window) Records() int64 { return w.records.Load() }
func (w *Window) Bytes() int64   { return w.bytes.Load() }

// PeakRecords and PeakBytes report the most the window has held.
func (w *Window) PeakRecords() int64 { return w.peakRec.Load() }
func (w *Window) PeakBytes() int64   { return w.peakB.Load() }

// MaxRecords and MaxBytes report the budget.
func (w *Window) MaxRecords() int64 { return w.maxRecords }
func (w *Window) MaxBytes() int64   { return w.maxBytes }

// Fill is the larger of the records and bytes fractions of the budget.
func (w *Window) Fill() float64 {
	fr := float64(w.records.Load()) / float64(w.maxRecords)
	fb := float64(w.bytes.Load()) / float64(w.maxBytes)
	return max(fr, fb)
}

// AboveHigh reports whether the fill has reached the high-water mark.
func (w *Window) AboveHigh() bool { return w.Fill() >= w.high }

// BelowLow reports whether the fill has dropped to the low-water mark.
func (w *Window) BelowLow() bool { return w.Fill() <= w.low }

// FreeRecords is how many more records fit in the budget.
func (w *Window) FreeRecords() int {
	return int(max(0, w.maxRecords-w.records.Load()))
}

// CanAdmit reports whether one more poll, which can carry up to pollBytes,
// still fits in the byte budget and at least one record fits in the record
// budget. The record budget is kept exactly by polling at most FreeRecords.
// An empty window always admits, so a record larger than the budget still
// makes progress (alone).
func (w *Window) CanAdmit(pollBytes int64) bool {
	recs := w.records.Load()
	if recs == 0 {
		return true
	}
	return recs < w.maxRecords && w.bytes.Load()+pollBytes <= w.maxBytes
}

func raiseTo(a *atomic.Int64, v int64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

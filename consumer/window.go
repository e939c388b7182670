package consumer

import "sync/atomic"

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
// low-water mark. The fetcher asks the client for no more records than
// [Window.Room] allows and admits only what fits; the rest of a poll waits
// outside the window until there is room. So the budget is never exceeded,
// except by a single record larger than the whole budget (admitted alone).
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
	recent  atomic.Int64 // mean record size of the latest poll, in bytes (0 before one)

	// room holds a token after a Release (capacity 1, see Changed).
	room chan struct{}
}

// NewWindow returns a window with the given budget and water marks
// (fractions of the budget, 0 < low < high <= 1).
func NewWindow(maxRecords int, maxBytes int64, high, low float64) *Window {
	return &Window{
		maxRecords: int64(maxRecords),
		maxBytes:   maxBytes,
		high:       high,
		low:        low,
		room:       make(chan struct{}, 1),
	}
}

// Add takes n records and b bytes from the budget. It never blocks: the
// caller asks Room beforehand how many records it may take.
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
	w.wake()
}

// wake signals Changed's channel without a release: after a resume, so
// that a source waiting for room while paused looks again. A token, not a
// closed channel: nothing is allocated. If a token is there already, nobody
// has taken the last one and this signal is covered by it.
func (w *Window) wake() {
	select {
	case w.room <- struct{}{}:
	default:
	}
}

// Changed returns the channel a Release signals: a receive on it returns
// after any Release that happened since Changed was called. Call it before
// reading the room, then wait on it if there is none: a Release in between
// is not missed. A receive may also return for a Release from before the
// call (a token nobody took), so a waiter re-checks the room in a loop.
// One token wakes one receiver: the channel is for the one fetch loop that
// waits for room, not for several goroutines at once.
func (w *Window) Changed() <-chan struct{} { return w.room }

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

// fit returns how many of msgs, from the front, fit in the budget now, and
// their bytes. An empty window takes at least one.
func (w *Window) fit(msgs []*Message) (int, int64) {
	recs, bytes := w.records.Load(), w.bytes.Load()
	var n int
	var sum int64
	for _, m := range msgs {
		if recs+int64(n)+1 > w.maxRecords || bytes+sum+m.size > w.maxBytes {
			if recs == 0 && n == 0 {
				return 1, m.size
			}
			break
		}
		n++
		sum += m.size
	}
	return n, sum
}

// SawRecords tells the window what the latest poll held: n records of
// bytes in all. Room uses their mean size while the window is empty.
func (w *Window) SawRecords(n int, bytes int64) {
	if n > 0 {
		w.recent.Store((bytes + int64(n) - 1) / int64(n))
	}
}

// Room is how many more records may be asked for: what fits in the record
// budget and, at the size of the records the window holds now (their mean;
// while it is empty, the mean of the latest poll), in the byte budget.
// It follows what the window holds, never what it once held: one large
// record shrinks the room only while it is inside, and records of size 0
// leave the byte budget out of it. An empty window always has room for
// one record, so a record larger than the whole budget still makes
// progress, alone.
//
// Room is a request size, not the budget: what a poll brings is admitted
// only as far as it fits (see fit), so a mean that is too small costs a
// wait outside the window, never the budget.
func (w *Window) Room() int {
	recs := w.records.Load()
	room := w.maxRecords - recs
	if room <= 0 {
		return 0
	}
	bytes := w.bytes.Load()
	size := w.recent.Load()
	if recs > 0 {
		size = (bytes + recs - 1) / recs
	}
	if size > 0 {
		room = min(room, (w.maxBytes-bytes)/size)
	}
	if recs == 0 {
		room = max(room, 1)
	}
	return int(max(0, room))
}

func raiseTo(a *atomic.Int64, v int64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

package consumer

import (
	"sync"
	"sync/atomic"
	"time"
)

// Pause reasons, as shown in metrics, logs and /debug/flow.
const (
	// ReasonWindowHigh: the window reached its high-water mark and no
	// partition held more than its fair share, so all of them pause.
	ReasonWindowHigh = "window_high"
	// ReasonOverFairShare: the window reached its high-water mark and this
	// partition holds more than its fair share (budget / assigned
	// partitions). Pausing it first keeps one hot or stuck partition from
	// starving the others.
	ReasonOverFairShare = "over_fair_share"
	// ReasonWindowFull: the window has no room for one more record.
	ReasonWindowFull = "window_full"
)

var pauseReasons = []string{ReasonWindowHigh, ReasonOverFairShare, ReasonWindowFull}

// flowPart is what the pause policy sees of one partition.
type flowPart struct {
	heldRecords, heldBytes int64  // what it holds in the window
	paused                 bool   // paused now
	reason                 string // why, when paused
}

// flowInput is everything the pause policy decides from.
type flowInput struct {
	fill      float64 // the window's fill (see Window.Fill)
	high, low float64 // the water marks
	// maxRecords and maxBytes are the budget; a partition's fair share is
	// the budget divided by the number of partitions.
	maxRecords, maxBytes int64
	gated                bool // the window has no room for one more record
	pauseDelay           time.Duration
	// highSince is when the pressure started: when the fill reached high
	// water, without falling back to low water since (zero: no pressure).
	highSince time.Time
	parts     []flowPart
}

// flowPause is a partition to pause (its index in flowInput.parts) and why.
type flowPause struct {
	part   int
	reason string
}

// flowOutcome is what the pause policy decided: the partitions to pause and
// to resume (indexes in flowInput.parts), and the new start of pressure.
type flowOutcome struct {
	pause     []flowPause
	resume    []int
	highSince time.Time
}

// decideFlow is the pause policy. It is pure (the time is passed in and
// nothing is changed), so it is tested as a table (flow_test.go);
// pipeline.decideFlow feeds it and carries the outcome out.
//
// The policy, with hysteresis so it does not flap:
//   - nothing pauses until the window has been under pressure for
//     PauseDelay: from the moment the fill reached high water, without
//     falling back to low water since. A window that fills for a moment
//     because a commit is on its way is no reason to stop fetching (a pause
//     drops what the client has buffered for the partition, to be fetched
//     again). The budget never depends on pausing: the fetcher admits only
//     what fits.
//   - fill <= low water: resume everything.
//   - fill >= high water: pause the partitions over their fair share; if
//     none is, pause them all.
//   - gated: pause them all.
//   - a partition paused for being over its fair share resumes on its own
//     once it holds less than low/high of that share.
func decideFlow(now time.Time, in flowInput) (out flowOutcome) {
	out.highSince = in.highSince
	n := int64(len(in.parts))
	if n == 0 {
		return out
	}
	// Pressure starts when the fill reaches high water and lasts until it
	// falls back to low water (the same hysteresis as resuming).
	if in.fill <= in.low {
		out.highSince = time.Time{}
	} else if in.fill >= in.high && out.highSince.IsZero() {
		out.highSince = now
	}
	sustained := !out.highSince.IsZero() && now.Sub(out.highSince) >= in.pauseDelay
	shareRecs := in.maxRecords / n
	shareBytes := in.maxBytes / n
	over := func(part *flowPart, f float64) bool {
		return float64(part.heldRecords) > f*float64(shareRecs) || float64(part.heldBytes) > f*float64(shareBytes)
	}
	pauseAll := func(reason string) {
		for i := range in.parts {
			if !in.parts[i].paused {
				out.pause = append(out.pause, flowPause{i, reason})
			}
		}
	}
	switch {
	case in.fill <= in.low:
		for i := range in.parts {
			if in.parts[i].paused {
				out.resume = append(out.resume, i)
			}
		}
		return out
	case in.gated && sustained:
		pauseAll(ReasonWindowFull)
		return out
	case in.fill >= in.high && sustained:
		anyPaused := false
		for i := range in.parts {
			part := &in.parts[i]
			if !part.paused && over(part, 1) {
				out.pause = append(out.pause, flowPause{i, ReasonOverFairShare})
			}
			anyPaused = anyPaused || part.paused
		}
		if len(out.pause) > 0 {
			return out
		}
		if !anyPaused {
			pauseAll(ReasonWindowHigh)
			return out
		}
	}
	// Between the marks (or above high with some already paused): let
	// partitions paused for their share go once they are well under it.
	ratio := in.low / in.high
	for i := range in.parts {
		part := &in.parts[i]
		if part.paused && part.reason == ReasonOverFairShare && !over(part, ratio) {
			out.resume = append(out.resume, i)
		}
	}
	return out
}

// flowScratch holds pipeline.decideFlow's buffers between calls, so a
// decision under pressure allocates nothing unless it pauses or resumes.
type flowScratch struct {
	parts []*partition
	view  []flowPart
}

var flowScratchPool = sync.Pool{New: func() any { return new(flowScratch) }}

// decideFlow applies the pause policy (the function decideFlow) to the
// current window fill and the pipeline's partitions, records the outcome
// in each partition's pause state and returns the partitions to pause and
// to resume; the caller tells the source. gated says the window has no room
// for another record.
func (p *pipeline) decideFlow(now time.Time, gated bool) (pause, resume []*partition) {
	w := p.win
	fill := w.Fill()
	sc := flowScratchPool.Get().(*flowScratch)
	defer func() {
		clear(sc.parts) // no partition kept alive by the pool
		sc.parts, sc.view = sc.parts[:0], sc.view[:0]
		flowScratchPool.Put(sc)
	}()
	p.mu.Lock()
	defer p.mu.Unlock()
	parts, view := sc.parts, sc.view
	paused := 0
	for _, part := range p.parts {
		parts = append(parts, part)
		view = append(view, flowPart{
			heldRecords: part.heldRecords, heldBytes: part.heldBytes,
			paused: part.paused, reason: part.pauseReason,
		})
		if part.paused {
			paused++
		}
	}
	sc.parts, sc.view = parts, view
	out := decideFlow(now, flowInput{
		fill: fill, high: w.high, low: w.low,
		maxRecords: w.maxRecords, maxBytes: w.maxBytes,
		gated: gated, pauseDelay: p.pauseDelay, highSince: p.highSince,
		parts: view,
	})
	p.highSince = out.highSince
	for _, d := range out.pause {
		part := parts[d.part]
		part.paused, part.pauseReason, part.pausedAt = true, d.reason, now
		pause = append(pause, part)
	}
	for _, i := range out.resume {
		part := parts[i]
		part.paused, part.pauseReason = false, ""
		resume = append(resume, part)
	}
	p.flow.publish(paused+len(pause)-len(resume), p.highSince, p.pauseDelay)
	return pause, resume
}

// flowSignals mirrors, for reads without a lock, what the pause policy
// keeps under the pipeline's lock: how many partitions are paused and when
// the pressure started. pipeline.decideFlow publishes them; flowQuiet reads
// them.
//
// The count may be too high for a while (a paused partition that is
// revoked leaves the pipeline without a decision), never too low: only
// decideFlow pauses a partition, and it publishes the count it leaves. Too
// high only costs a decision that changes nothing, after which the count
// is right again.
type flowSignals struct {
	paused   atomic.Int32
	pressure atomic.Bool
	// sustainAt is when the pressure lasts PauseDelay, on flowClock.
	sustainAt atomic.Int64
}

// flowEpoch is the origin of flowClock: a monotonic clock in nanoseconds,
// so wall-clock steps do not move sustainAt.
var flowEpoch = time.Now()

func flowClock(t time.Time) int64 { return int64(t.Sub(flowEpoch)) }

func (f *flowSignals) publish(paused int, highSince time.Time, delay time.Duration) {
	f.paused.Store(int32(paused))
	if highSince.IsZero() {
		f.pressure.Store(false)
		return
	}
	// sustainAt before pressure: a reader that sees the pressure sees its
	// sustainAt, or an earlier one (which only sends it the slow way).
	f.sustainAt.Store(flowClock(highSince.Add(delay)))
	f.pressure.Store(true)
}

// flowQuiet reports, without a lock, that a pause decision taken now would
// change nothing: no partition is paused, and either there is no pressure
// and the fill is below high water (so none starts), or the pressure has
// not lasted PauseDelay yet and the fill is above low water (so it goes
// on), or it has but the fill is between the marks with room left (the
// policy pauses only at high water or with no room). When a decision
// matters, quiet is false: at the first crossing of high water (the
// pressure starts), once the pressure has lasted PauseDelay at high water
// or with no room (pause), at low water (the pressure ends), and while any
// partition is paused (resume).
func (p *pipeline) flowQuiet() bool {
	w, f := p.win, &p.flow
	if f.paused.Load() != 0 {
		return false
	}
	fill := w.Fill()
	if !f.pressure.Load() {
		return fill < w.high
	}
	if fill <= w.low {
		return false
	}
	if flowClock(time.Now()) < f.sustainAt.Load() {
		return true
	}
	return fill < w.high && w.Room() > 0
}

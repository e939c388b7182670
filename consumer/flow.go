package consumer

import "time"

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

// decideFlow applies the pause policy to the current window fill and
// returns the partitions to pause and to resume. It updates each
// partition's pause state; the caller tells the source. gated says the
// window has no room for another record.
//
// The policy, with hysteresis so it does not flap:
//   - nothing pauses until the window has been under pressure for
//     PauseDelay: from the moment the fill reached high water, without
//     falling back to low water since. A window that fills for a moment because a commit
//     is on its way is no reason to stop fetching (a pause drops what the
//     client has buffered for the partition, to be fetched again). The
//     budget never depends on pausing: the fetcher admits only what fits.
//   - fill <= low water: resume everything.
//   - fill >= high water: pause the partitions over their fair share; if
//     none is, pause them all.
//   - gated: pause them all.
//   - a partition paused for being over its fair share resumes on its own
//     once it holds less than low/high of that share.
func (p *pipeline) decideFlow(now time.Time, gated bool) (pause, resume []*partition) {
	w := p.win
	fill := w.Fill()
	p.mu.Lock()
	defer p.mu.Unlock()
	n := int64(len(p.parts))
	if n == 0 {
		return nil, nil
	}
	// Pressure starts when the fill reaches high water and lasts until it
	// falls back to low water (the same hysteresis as resuming).
	if fill <= w.low {
		p.highSince = time.Time{}
	} else if fill >= w.high && p.highSince.IsZero() {
		p.highSince = now
	}
	sustained := !p.highSince.IsZero() && now.Sub(p.highSince) >= p.pauseDelay
	shareRecs := w.maxRecords / n
	shareBytes := w.maxBytes / n
	over := func(part *partition, f float64) bool {
		return float64(part.heldRecords) > f*float64(shareRecs) || float64(part.heldBytes) > f*float64(shareBytes)
	}
	set := func(part *partition, reason string) {
		part.paused, part.pauseReason, part.pausedAt = true, reason, now
		pause = append(pause, part)
	}
	switch {
	case fill <= w.low:
		for _, part := range p.parts {
			if part.paused {
				part.paused, part.pauseReason = false, ""
				resume = append(resume, part)
			}
		}
		return pause, resume
	case gated && sustained:
		for _, part := range p.parts {
			if !part.paused {
				set(part, ReasonWindowFull)
			}
		}
		return pause, resume
	case fill >= w.high && sustained:
		var overShare []*partition
		for _, part := range p.parts {
			if !part.paused && over(part, 1) {
				overShare = append(overShare, part)
			}
		}
		if len(overShare) > 0 {
			for _, part := range overShare {
				set(part, ReasonOverFairShare)
			}
			return pause, resume
		}
		anyPaused := false
		for _, part := range p.parts {
			anyPaused = anyPaused || part.paused
		}
		if !anyPaused {
			for _, part := range p.parts {
				set(part, ReasonWindowHigh)
			}
			return pause, resume
		}
	}
	// Between the marks (or above high with some already paused): let
	// partitions paused for their share go once they are well under it.
	ratio := w.low / w.high
	for _, part := range p.parts {
		if part.paused && part.pauseReason == ReasonOverFairShare && !over(part, ratio) {
			part.paused, part.pauseReason = false, ""
			resume = append(resume, part)
		}
	}
	return pause, resume
}

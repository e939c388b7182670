package autoscale

import (
	"fmt"
	"math"
	"time"
)

// Thresholds that are part of the policy's reasoning rather than tuning.
const (
	// saturatedBusy: an interval counts as saturated (the pool, not the
	// arrivals, limits throughput) when at least this share of worker time
	// was spent in the sink and records were still waiting at its end.
	saturatedBusy = 0.9
	// growBusy: the policy adds workers only when at least this share of
	// the current workers is busy; otherwise workers sit idle and the limit
	// is elsewhere (ordering lanes, the fetcher, the broker).
	growBusy = 0.8
	// worthIt: an increase must raise throughput by at least this share of
	// the proportional gain (n1/n0 - 1), or it did not pay for itself.
	worthIt = 0.75
	// kept: a step back is borne out when the pool lost less than this share
	// of the proportional throughput (a sink that was not saturated loses
	// all of it).
	kept = 0.5
	// futile: an increase that raised throughput by less than this share of
	// the proportional gain is a sink bottleneck even if latency stayed
	// within LatencyTolerance (a throughput that falls as workers are added
	// is the plainest sign of an overloaded sink).
	futile = 0.25
	// maxHoldFactor caps the doubling of BottleneckHold.
	maxHoldFactor = 8
)

// Policy decides the pool size from samples. It is pure: its output is a
// function of the samples passed in (their At included) and never of a clock,
// so it can be driven in virtual time or replayed from a trace.
//
// A Policy is not safe for concurrent use: feed it from one goroutine.
//
// How it reasons, in order, at each sample:
//
//  1. Differentiate: rates, busy ratio, error share and the sink time per
//     completed record over the interval since the previous sample; fit the
//     depth and lag slopes over SlopeWindow.
//  2. Judge the last increase, if any (a controlled experiment): when the
//     pool was saturated before and after it, and the extra workers raised
//     sink latency (beyond LatencyTolerance) or the error share instead of
//     throughput, or barely raised throughput at all, the sink is the
//     bottleneck. Step back at once to the size at which latency would
//     return to its baseline (n × baseline/now, as Gradient2 reasons; the
//     baseline is the lowest latency seen within ScaleDownWindow), and
//     learn a ceiling just below the size that failed. No verdict is drawn
//     when latency was already rising before the increase with no more
//     workers (the sink changed on its own; the latencies seen before the
//     change are forgotten). A rise that followed an earlier increase is
//     that increase's doing and excuses nothing; and when the size before
//     the failed increase was itself reached without a verdict and was
//     already queueing in the sink, the step back may go below it (by one
//     step down at most). An increase whose extra workers stayed partly
//     idle while records waited (ordering lanes) is judged by the calls the
//     sink saw, not by the workers.
//  3. Confirm a step back at the next sample: if throughput fell with the
//     workers removed as it would have for a sink that is not saturated,
//     the latency rise came from the sink, not from us: forget the ceiling.
//     After a step back held up by that one-step limit, descend: while a
//     smaller pool keeps (almost) all the throughput, step down again; the
//     first step that loses throughput in proportion goes back up one step.
//     A learned ceiling is forgotten when the sink's latency halves from one
//     interval to the next with no fewer workers (the sink recovered).
//  4. Little's law: Ideal = (demand + max(Depth, Lag)/DrainTime) × sink
//     time per record × (1+Headroom), where demand is the production rate
//     (completions + dLag/dt) when the source reports lag, else the
//     admission rate.
//  5. Up only if the sink's error share is below ErrorThreshold, workers
//     are busy, the recommendation is outside the dead band, and within the
//     learned ceiling (beyond the last size known good, one worker at a time;
//     one above the ceiling once BottleneckHold has passed), the step limit
//     and the bounds.
//  6. Down only to the highest recommendation within ScaleDownWindow, never
//     while the queue still grows, outside the dead band, within the step
//     limit and the bounds.
//  7. A change against the direction of the last change, made within
//     ScaleDownWindow of it, needs two consecutive samples that agree.
//     Exempt are the step back of rule 2 (it answers a comparison of two
//     intervals, and its purpose is to limit the harm to one interval) and
//     growth when the pool is saturated and Ideal is at least twice its size
//     (a latency step or a burst is not noise; waiting a sample costs a
//     backlog of one interval at the full arrival rate).
type Policy struct {
	cfg    Config
	lo, hi int

	prev         Sample
	hasPrev      bool
	last         interval      // the latest interval's figures
	prevInterval interval      // the one before it
	latency      time.Duration // last known sink time per completed record

	points []point // (At, Depth, Lag) within SlopeWindow
	recs   []rec   // (At, recommendation) within ScaleDownWindow
	lats   []lat   // (At, latency) within ScaleDownWindow, for the baseline

	lastDir    string // direction of the last size change; "" when none
	lastChange time.Time
	pending    string // a reversal held on the previous sample

	probe    *probe  // an increase awaiting its verdict
	verify   *verify // a step back awaiting confirmation
	unjudged int     // the size reached by the last increase that got no verdict (the sink was changing); 0: none
	bn       bottleneck
}

// interval holds the figures of one sampling interval.
type interval struct {
	workers   int
	latency   time.Duration // 0: nothing completed
	tput      float64       // completions per second
	errRate   float64
	busy      float64
	queued    bool // records were waiting for a worker at the end
	saturated bool
	band      float64 // the dead band for this interval
}

type point struct {
	at         time.Time
	depth, lag float64
}

type rec struct {
	at time.Time
	n  int
}

type lat struct {
	at time.Time
	d  time.Duration
}

type probe struct {
	from, to    int
	at          time.Time // when the increase was decided (the end of before)
	before, pre interval  // the interval before the increase, and the one before that
}

type verify struct {
	from, to int
	bad      interval // the interval at from (the size that failed, or the last step of a descent)
	// descend: the size before the failed increase got no verdict and was
	// already queueing in the sink, so the sink's limit may lie below the
	// step back: while a smaller pool keeps the throughput, step down again.
	descend bool
	// down: this step is one of that descent; if it loses throughput, the
	// pool goes back to from.
	down bool
}

// bottleneck is what the policy learned about the sink's capacity.
type bottleneck struct {
	ceiling int // highest size allowed while the hold lasts; 0: none learned
	good    int // highest size known good below the ceiling
	until   time.Time
	hold    time.Duration
	probing bool // the pending increase goes above the ceiling
}

// NewPolicy returns a Policy for cfg, or the error of cfg.Validate.
func NewPolicy(cfg Config) (*Policy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	p := &Policy{cfg: cfg}
	p.lo, p.hi = cfg.bounds()
	return p, nil
}

// Config returns the configuration in use, defaults filled in.
func (p *Policy) Config() Config { return p.cfg }

// Decide takes the next sample and returns the wanted pool size, the reason,
// and the policy's view of the pipeline. Samples must come in order of At; a
// sample not after the previous one, or whose counters went backwards,
// restarts the policy's history (ReasonWarmup).
func (p *Policy) Decide(s Sample) Decision {
	n := s.Workers
	d := Decision{At: s.At, Current: n, Busy: s.Busy, Depth: s.Depth, Target: n}
	pendingBefore := p.pending
	p.pending = ""

	if !p.hasPrev || !s.At.After(p.prev.At) || wentBack(p.prev, s) {
		p.restart(s)
		d.MeanLatency = p.latency
		return p.finish(d, s, p.clamp(n), ReasonWarmup)
	}

	dt := s.At.Sub(p.prev.At)
	iv := p.measure(s, dt, &d)
	p.addPoint(s)
	d.DepthSlope, _ = p.slopes()

	// A learned ceiling describes the sink as it was: when the sink's
	// latency halves from one interval to the next with no fewer workers,
	// the sink got faster on its own (it recovered), and the ceiling is
	// forgotten, as a rise with no more workers is taken as the sink
	// slowing (rule 2).
	if p.bn.ceiling > 0 && iv.saturated && iv.latency > 0 && n >= p.last.workers && 2*iv.latency < p.last.latency {
		p.bn = bottleneck{}
		p.verify = nil
	}
	// Rule 3: confirm a step back, or go on with a descent.
	if v := p.verify; v != nil {
		p.verify = nil
		if n == v.to {
			lost, proportional := v.lost(iv)
			switch {
			case v.down && iv.saturated && lost > kept*proportional:
				// The descent went below the sink's limit: back to the
				// last size that kept the throughput.
				p.bn.good = v.from
				p.prevInterval, p.last = p.last, iv
				return p.finish(d, s, v.from, ReasonSinkBottleneck)
			case !v.down && !p.confirmed(v, iv):
				p.bn = bottleneck{}
				if p.lastDir == Down {
					p.lastDir = "" // the step back was a mistake: regrowth is no reversal
				}
			case v.descend && iv.saturated && lost <= futile*proportional:
				// The smaller pool lost (almost) none of the throughput:
				// the workers removed only queued inside the sink, which
				// may still be past its limit. Step down again.
				if next := max(p.lo, v.to-p.cfg.stepDown(v.to)); next < v.to {
					p.verify = &verify{from: v.to, to: next, bad: iv, descend: true, down: true}
					p.bn.good = next
					p.prevInterval, p.last = p.last, iv
					return p.finish(d, s, next, ReasonSinkBottleneck)
				}
			}
		}
	}
	// Rule 2: judge the last increase.
	if pr := p.probe; pr != nil {
		p.probe = nil
		if n == pr.to {
			if v := p.judge(pr, iv, s.At); v != nil {
				p.verify = v
				p.prevInterval, p.last = p.last, iv
				return p.finish(d, s, v.to, ReasonSinkBottleneck)
			}
		}
	}
	p.prevInterval, p.last = p.last, iv

	if n < p.lo || n > p.hi {
		reason := ReasonBounds
		if n > p.hi && p.hi == p.cfg.SinkMaxConcurrency {
			reason = ReasonSinkLimit
		}
		return p.finish(d, s, p.clamp(n), reason)
	}
	if p.latency <= 0 {
		return p.finish(d, s, n, ReasonNoSignal)
	}

	// Rule 4: Little's law.
	lat := p.latency.Seconds()
	grow := 1 + p.cfg.Headroom
	demand := d.DemandRate * lat * grow
	queued := max(int64(s.Depth), s.Lag, 0)
	backlog := float64(queued) / p.cfg.DrainTime.Seconds() * lat * grow
	x := demand + backlog
	d.Ideal = x
	r := p.clamp(ceilInt(x))
	p.addRec(s.At, r)

	var target int
	var reason string
	switch {
	case r == n && n == p.hi && ceilInt(x) > p.hi:
		// Little's law wants more than the bounds allow.
		target, reason = n, ReasonBounds
		if p.hi == p.cfg.SinkMaxConcurrency {
			reason = ReasonSinkLimit
		}
	case r > n:
		target, reason = p.up(s, iv, &d, r, demand, pendingBefore)
	case r < n:
		target, reason = p.down(s, iv, &d, pendingBefore)
	default:
		target, reason = n, ReasonSteady
	}
	return p.finish(d, s, target, reason)
}

// up applies rule 5 and the reversal guard to a recommendation r > n.
func (p *Policy) up(s Sample, iv interval, d *Decision, r int, demand float64, pendingBefore string) (int, string) {
	n := s.Workers
	if iv.errRate >= p.cfg.ErrorThreshold {
		return n, ReasonSinkErrors
	}
	busyNow := 0.0
	if n > 0 {
		busyNow = float64(s.Busy) / float64(n)
	}
	if max(iv.busy, busyNow) < growBusy {
		return n, ReasonWorkersIdle
	}
	if d.Ideal-float64(n) <= iv.band*float64(n) {
		return n, ReasonDeadBand
	}
	reason := ReasonDemand
	if ceilInt(demand) <= n {
		reason = ReasonBacklog
	}
	t := r
	p.bn.probing = false
	if c := p.bn.ceiling; c > 0 {
		t = min(t, max(n, p.bn.good)+1)
		if s.At.Before(p.bn.until) {
			t = min(t, c)
		}
		if t <= n {
			return n, ReasonSinkBottleneck
		}
		p.bn.probing = t > c
	}
	t = min(t, n+p.cfg.stepUp(n))
	if t == p.hi && p.hi == p.cfg.SinkMaxConcurrency && r >= p.hi {
		reason = ReasonSinkLimit
	}
	// A saturated pool that Little's law says should at least double is no
	// noise to be confirmed: the sink slowed down or a burst arrived.
	urgent := iv.saturated && d.Ideal >= 2*float64(n)
	if !urgent && p.reversal(Up, s.At, pendingBefore) {
		p.bn.probing = false
		return n, ReasonReversalGuard
	}
	if iv.latency > 0 {
		p.probe = &probe{from: n, to: t, at: s.At, before: iv, pre: p.prevInterval}
	}
	return t, reason
}

// down applies rule 6 and the reversal guard.
func (p *Policy) down(s Sample, iv interval, d *Decision, pendingBefore string) (int, string) {
	n := s.Workers
	m := p.maxRec(s.At)
	if m >= n {
		return n, ReasonStabilising
	}
	rate := max(d.DemandRate, d.CompletionRate)
	if d.DepthSlope > max(1, 0.01*rate) {
		return n, ReasonBacklog
	}
	if float64(n-m) <= iv.band*float64(n) {
		return n, ReasonDeadBand
	}
	t := max(m, n-p.cfg.stepDown(n))
	if p.reversal(Down, s.At, pendingBefore) {
		return n, ReasonReversalGuard
	}
	if rate == 0 {
		return t, ReasonIdle
	}
	return t, ReasonDemand
}

// reversal reports whether a change in direction dir must wait (rule 7),
// and remembers that it was asked.
func (p *Policy) reversal(dir string, now time.Time, pendingBefore string) bool {
	if p.lastDir == "" || p.lastDir == dir || now.Sub(p.lastChange) >= p.cfg.ScaleDownWindow {
		return false
	}
	if pendingBefore == dir {
		return false
	}
	p.pending = dir
	return true
}

// judge draws the verdict on an increase (rule 2). When the sink is the
// bottleneck it returns the step back to take and verify; else nil.
func (p *Policy) judge(pr *probe, iv interval, now time.Time) *verify {
	b := pr.before
	unjudged := p.unjudged
	p.unjudged = pr.to // until a verdict is drawn below
	if !b.saturated || b.latency <= 0 || iv.latency <= 0 || b.tput <= 0 {
		return nil // the increase was no test of the sink
	}
	tol := p.cfg.LatencyTolerance
	// Latency already rising before the increase, with no more workers than
	// the interval before: the sink changed on its own, and the latencies
	// seen before the change no longer describe it. When the pool had grown
	// in between, the rise is (at least partly) that growth's doing: judged
	// here, or a chain of increases, each one's rise excusing the next,
	// would escape every verdict (a sink that slowed 25x at its capacity of
	// 8 saw the pool go 8 -> 16 -> 32 -> 64 and stay there).
	if pr.pre.latency > 0 && pr.pre.workers >= b.workers && b.latency > time.Duration(float64(pr.pre.latency)*(1+tol)) {
		p.forgetLatencies(pr.at)
		return nil
	}
	if pr.pre.errRate > 0 && b.errRate-pr.pre.errRate > p.cfg.ErrorThreshold/2 {
		return nil // so were errors
	}
	p.unjudged = 0
	g := float64(pr.to)/float64(pr.from) - 1
	if !iv.saturated && iv.queued {
		// Records waited, yet not every worker was busy: something else
		// (ordering lanes) capped the calls the sink saw. Judge the
		// increase by the calls it added, not by the workers.
		g = iv.busy*float64(pr.to)/(b.busy*float64(pr.from)) - 1
	}
	gain := iv.tput/b.tput - 1
	paid := (!iv.saturated && !iv.queued) || gain >= worthIt*g
	latRose := float64(iv.latency) > float64(b.latency)*(1+tol)
	errRose := iv.errRate-b.errRate > p.cfg.ErrorThreshold/2
	if paid || !(latRose || errRose || gain < futile*g) {
		// Good: the sink took the extra workers.
		if p.bn.probing {
			p.bn = bottleneck{} // the sink has more room than it had: forget
		} else if p.bn.ceiling > 0 {
			p.bn.good = max(p.bn.good, pr.to)
		}
		return nil
	}
	// Bad: step back to where latency would be back at its baseline
	// (Gradient2: n × baseline/now, the baseline being the lowest latency
	// seen within ScaleDownWindow), below the size that failed, and at
	// least to the last size. When the last size was reached by an
	// increase that got no verdict and the sink was already queueing there
	// (its latency above the baseline by more than the tolerance), it is no
	// size known to be good: then at least to where its latency would be
	// back at the baseline, and by no more than one step down from it (a
	// baseline measured while the sink was changing can be far too low).
	base := min(b.latency, p.baseLatency())
	back := int(math.Round(float64(pr.to) * float64(base) / float64(iv.latency)))
	floor := pr.from
	descend := pr.from == unjudged && float64(b.latency) > float64(base)*(1+tol)
	if descend {
		floor = max(ceilInt(float64(pr.from)*float64(base)/float64(b.latency)), pr.from-p.cfg.stepDown(pr.from), 1)
		// Only a step back held up by the step limit has more to find
		// below it (rule 3 descends while the throughput holds).
		descend = back < floor
	}
	back = min(max(back, floor, p.lo), pr.to-1)
	switch {
	case p.bn.hold == 0:
		p.bn.hold = p.cfg.BottleneckHold
	case p.bn.probing:
		p.bn.hold = min(2*p.bn.hold, maxHoldFactor*p.cfg.BottleneckHold)
	}
	p.bn.ceiling = pr.to - 1
	p.bn.good = min(max(p.bn.good, back), p.bn.ceiling)
	p.bn.until = now.Add(p.bn.hold)
	p.bn.probing = false
	return &verify{from: pr.to, to: back, bad: iv, descend: descend}
}

// lost is the share of the throughput at v.from that iv, at v.to, lost,
// and the share it would have lost in proportion to the workers removed.
func (v *verify) lost(iv interval) (lost, proportional float64) {
	if v.bad.tput <= 0 {
		return 0, 0
	}
	return 1 - iv.tput/v.bad.tput, 1 - float64(v.to)/float64(v.from)
}

// confirmed reports whether a step back bore out the verdict (rule 3):
// throughput kept up with fewer workers, or latency fell.
func (p *Policy) confirmed(v *verify, iv interval) bool {
	if !iv.saturated || iv.latency <= 0 || v.bad.tput <= 0 || v.bad.latency <= 0 {
		return true // the smaller pool was enough: nothing contradicts the verdict
	}
	if float64(iv.latency) < float64(v.bad.latency)*(1-p.cfg.LatencyTolerance/2) {
		return true
	}
	lost := 1 - iv.tput/v.bad.tput
	proportional := 1 - float64(v.to)/float64(v.from)
	return lost <= kept*proportional
}

// measure differentiates s against the previous sample and fills the view.
func (p *Policy) measure(s Sample, dt time.Duration, d *Decision) interval {
	sec := dt.Seconds()
	prev := p.prev
	done := float64(s.Completed - prev.Completed)
	errs := float64(s.Errors - prev.Errors)
	iv := interval{workers: s.Workers}
	d.ArrivalRate = float64(s.Arrived-prev.Arrived) / sec
	d.CompletionRate = done / sec
	// The demand is the rate records are produced, not the rate they are
	// admitted: once the window is full, admissions follow completions, and
	// sizing the pool on its own throughput would feed back on itself. With
	// broker lag reported, production = completions + dLag/dt (lag counts
	// from the committed offset). Without it, admissions are the best guess.
	d.DemandRate = d.ArrivalRate
	if s.Lag > 0 || prev.Lag > 0 {
		d.DemandRate = max(0, d.CompletionRate+float64(s.Lag-prev.Lag)/sec)
	}
	iv.tput = d.CompletionRate
	if done > 0 {
		iv.latency = time.Duration(float64(s.SinkTime-prev.SinkTime) / done)
		p.latency = iv.latency
		p.addLatency(s.At, iv.latency)
	}
	d.MeanLatency = p.latency
	if done+errs > 0 {
		iv.errRate = errs / (done + errs)
	}
	d.ErrorRate = iv.errRate
	if s.Workers > 0 {
		if bt := s.BusyTime - prev.BusyTime; bt > 0 {
			iv.busy = min(1, bt.Seconds()/(sec*float64(s.Workers)))
		} else {
			iv.busy = min(1, float64(s.Busy)/float64(s.Workers))
		}
	}
	d.BusyRatio = iv.busy
	iv.queued = s.Depth > 0
	iv.saturated = iv.busy >= saturatedBusy && iv.queued
	iv.band = p.cfg.DeadBand
	if counted := max(done, float64(s.Arrived-prev.Arrived)); counted > 0 {
		iv.band = max(iv.band, 2/math.Sqrt(counted))
	}
	return iv
}

// finish completes d with target and reason, records the change, and
// computes the pod signal.
func (p *Policy) finish(d Decision, s Sample, target int, reason string) Decision {
	n := s.Workers
	d.Target, d.Reason = target, reason
	switch {
	case target > n:
		d.Direction = Up
	case target < n:
		d.Direction = Down
	default:
		d.Direction = Hold
	}
	if d.Direction != Hold {
		p.lastDir, p.lastChange = d.Direction, s.At
		if d.Direction == Down {
			p.probe = nil
		}
	}
	d.SinkBottleneck = p.bn.ceiling > 0
	d.Ceiling = p.bn.ceiling
	_, lagSlope := p.slopes()
	usable := p.hi
	if p.bn.ceiling > 0 {
		usable = min(usable, p.bn.ceiling)
	}
	d.Pod = NewPodSignal(PodInput{
		Lag:            s.Lag,
		LagSlope:       lagSlope,
		CompletionRate: d.CompletionRate,
		Latency:        p.latency,
		Usable:         usable,
		Partitions:     s.Partitions,
		HoldBack:       d.SinkBottleneck || d.ErrorRate >= p.cfg.ErrorThreshold,
		DrainTime:      p.cfg.PodDrainTime,
	})
	p.prev, p.hasPrev = s, true
	return d
}

// restart forgets the history, keeping what was learned about the sink.
func (p *Policy) restart(s Sample) {
	p.points = p.points[:0]
	p.recs = p.recs[:0]
	p.lats = p.lats[:0]
	p.probe, p.verify = nil, nil
	p.last, p.prevInterval = interval{}, interval{}
	p.addPoint(s)
}

func (p *Policy) addPoint(s Sample) {
	p.points = append(p.points, point{at: s.At, depth: float64(s.Depth), lag: float64(s.Lag)})
	cut := s.At.Add(-p.cfg.SlopeWindow)
	i := 0
	for i < len(p.points)-2 && p.points[i].at.Before(cut) {
		i++
	}
	p.points = p.points[i:]
}

// slopes fits depth and lag against time by least squares over the points
// in SlopeWindow, in records per second.
func (p *Policy) slopes() (depth, lag float64) {
	if len(p.points) < 2 {
		return 0, 0
	}
	t0 := p.points[0].at
	var st, sd, sl, stt, std, stl float64
	for _, q := range p.points {
		t := q.at.Sub(t0).Seconds()
		st += t
		sd += q.depth
		sl += q.lag
		stt += t * t
		std += t * q.depth
		stl += t * q.lag
	}
	k := float64(len(p.points))
	den := k*stt - st*st
	if den == 0 {
		return 0, 0
	}
	return (k*std - st*sd) / den, (k*stl - st*sl) / den
}

func (p *Policy) addRec(at time.Time, n int) {
	p.recs = append(p.recs, rec{at: at, n: n})
	cut := at.Add(-p.cfg.ScaleDownWindow)
	i := 0
	for i < len(p.recs)-1 && !p.recs[i].at.After(cut) {
		i++
	}
	p.recs = p.recs[i:]
}

func (p *Policy) addLatency(at time.Time, d time.Duration) {
	p.lats = append(p.lats, lat{at: at, d: d})
	cut := at.Add(-p.cfg.ScaleDownWindow)
	i := 0
	for i < len(p.lats)-1 && !p.lats[i].at.After(cut) {
		i++
	}
	p.lats = p.lats[i:]
}

// forgetLatencies drops the latencies seen before at: the sink changed
// then, so the baseline starts again from what it does now.
func (p *Policy) forgetLatencies(at time.Time) {
	i := 0
	for i < len(p.lats)-1 && p.lats[i].at.Before(at) {
		i++
	}
	p.lats = p.lats[i:]
}

// baseLatency is the lowest sink latency seen within ScaleDownWindow.
func (p *Policy) baseLatency() time.Duration {
	m := time.Duration(math.MaxInt64)
	for _, l := range p.lats {
		m = min(m, l.d)
	}
	return m
}

// maxRec is the highest recommendation within ScaleDownWindow.
func (p *Policy) maxRec(now time.Time) int {
	m := 0
	cut := now.Add(-p.cfg.ScaleDownWindow)
	for _, r := range p.recs {
		if r.at.After(cut) {
			m = max(m, r.n)
		}
	}
	return m
}

func (p *Policy) clamp(n int) int { return min(max(n, p.lo), p.hi) }

// String describes the policy's learned state, for debugging.
func (p *Policy) String() string {
	return fmt.Sprintf("autoscale.Policy{bounds:[%d,%d] ceiling:%d good:%d hold:%v}",
		p.lo, p.hi, p.bn.ceiling, p.bn.good, p.bn.hold)
}

// wentBack reports whether any counter of s is below prev's (a restart).
func wentBack(prev, s Sample) bool {
	return s.Arrived < prev.Arrived || s.Completed < prev.Completed || s.Errors < prev.Errors ||
		s.SinkTime < prev.SinkTime || s.BusyTime < prev.BusyTime
}

func ceilInt(x float64) int {
	if x <= 0 || math.IsNaN(x) {
		return 0
	}
	if x >= math.MaxInt32 {
		return math.MaxInt32
	}
	return int(math.Ceil(x - 1e-9))
}

package autoscale

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// tick describes one interval of a synthetic trace; trace turns ticks into
// cumulative Samples one second apart.
type tick struct {
	workers   int           // pool size during the interval (0: the previous decision's target)
	arrived   float64       // records admitted in the interval
	done      float64       // records completed in the interval
	errs      float64       // failed attempts in the interval
	latency   time.Duration // sink time per completed record
	busy      float64       // busy ratio over the interval
	depth     int           // waiting records at the end
	lag       int64         // broker lag at the end
	dt        time.Duration // interval length (default 1s)
	resetCnts bool          // counters restart from zero
}

// steady is a tick of a pool of n keeping up with rate records/s at lat.
func steady(n int, rate float64, lat time.Duration) tick {
	return tick{workers: n, arrived: rate, done: rate, latency: lat, busy: min(1, rate*lat.Seconds()/float64(n))}
}

// saturated is a tick of a pool of n that cannot keep up: every worker
// busy, completions n/lat, a full window.
func saturated(n int, lat time.Duration) tick {
	r := float64(n) / lat.Seconds()
	return tick{workers: n, arrived: r, done: r, latency: lat, busy: 1, depth: 5000}
}

// behind is saturated with lag growing by 2000/s over what completes: the
// demand is completions + 2000.
func behind(n int, lat time.Duration) tick {
	k := saturated(n, lat)
	k.lag = 2000
	return k
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// drive feeds ticks to p and returns the decisions. A tick with workers 0
// takes the previous decision's target, as the Controller would.
func drive(p *Policy, ticks []tick) []Decision {
	var s Sample
	s.At = t0
	var out []Decision
	n := 0
	for i, k := range ticks {
		if k.workers == 0 {
			k.workers = n
		}
		if i > 0 {
			dt := k.dt
			if dt == 0 {
				dt = time.Second
			}
			if k.resetCnts {
				s = Sample{At: s.At}
			}
			s.At = s.At.Add(dt)
			s.Arrived += uint64(k.arrived)
			s.Completed += uint64(k.done)
			s.Errors += uint64(k.errs)
			s.SinkTime += time.Duration((k.done + k.errs) * float64(k.latency))
			s.BusyTime += time.Duration(k.busy * float64(k.workers) * float64(dt))
		}
		s.Workers = k.workers
		s.Busy = int(k.busy * float64(k.workers))
		s.Depth = k.depth
		s.Lag = lagOf(s.Lag, k)
		d := p.Decide(s)
		n = d.Target
		out = append(out, d)
	}
	return out
}

func newPolicy(t *testing.T, cfg Config) *Policy {
	t.Helper()
	p, err := NewPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func repeat(k tick, n int) []tick {
	out := make([]tick, n)
	for i := range out {
		out[i] = k
	}
	return out
}

func TestPolicyRules(t *testing.T) {
	ms10 := 10 * time.Millisecond
	type want struct {
		target    int
		direction string
		reason    string
	}
	tests := []struct {
		name  string
		cfg   Config
		ticks []tick
		want  want // for the last decision
	}{
		{
			name:  "first sample is warmup",
			ticks: []tick{steady(4, 400, ms10)},
			want:  want{4, Hold, ReasonWarmup},
		},
		{
			name:  "first sample out of bounds is clamped",
			cfg:   Config{Max: 8},
			ticks: []tick{steady(20, 400, ms10)},
			want:  want{8, Down, ReasonWarmup},
		},
		{
			name:  "no completions yet: hold, latency unknown",
			ticks: []tick{{workers: 4}, {workers: 4, arrived: 500, busy: 1, depth: 500}},
			want:  want{4, Hold, ReasonNoSignal},
		},
		{
			name:  "exactly Little's law: steady",
			ticks: []tick{steady(11, 1000, ms10), steady(11, 1000, ms10)}, // 1000 × 10ms × 1.05 = 10.5
			want:  want{11, Hold, ReasonSteady},
		},
		{
			name: "demand above the pool: up, limited to doubling",
			ticks: []tick{
				saturated(4, ms10),
				{workers: 4, arrived: 1000, done: 400, latency: ms10, busy: 1, depth: 600},
			},
			want: want{8, Up, ReasonDemand},
		},
		{
			name: "a fixed step limit",
			cfg:  Config{MaxStep: 2},
			ticks: []tick{
				saturated(4, ms10),
				{workers: 4, arrived: 1000, done: 400, latency: ms10, busy: 1, depth: 600},
			},
			want: want{6, Up, ReasonDemand},
		},
		{
			name: "backlog alone: up to drain it",
			ticks: []tick{
				steady(10, 900, ms10),
				{workers: 10, arrived: 900, done: 900, latency: ms10, busy: 1, depth: 4000},
			},
			// (900 + 4000/10) × 10ms × 1.05 = 13.65
			want: want{14, Up, ReasonBacklog},
		},
		{
			name: "within the dead band: hold",
			ticks: []tick{
				steady(20, 1850, ms10),
				{workers: 20, arrived: 1950, done: 1900, latency: ms10, busy: 0.95, depth: 10},
			},
			// 1950 × 10ms × 1.05 = 20.5: 0.5 < 5 % of 20
			want: want{20, Hold, ReasonDeadBand},
		},
		{
			name: "sink calls failing: no growth",
			ticks: []tick{
				saturated(10, ms10),
				{workers: 10, arrived: 1000, done: 700, errs: 300, latency: ms10, busy: 1, depth: 3000},
			},
			want: want{10, Hold, ReasonSinkErrors},
		},
		{
			name: "workers idle: no growth even with a queue",
			ticks: []tick{
				steady(10, 500, ms10),
				{workers: 10, arrived: 500, done: 500, latency: ms10, busy: 0.5, depth: 8000},
			},
			want: want{10, Hold, ReasonWorkersIdle},
		},
		{
			name:  "less demand: shrink waits for the stabilisation window",
			cfg:   Config{ScaleDownWindow: 10 * time.Second},
			ticks: append([]tick{steady(40, 3800, ms10), steady(40, 3800, ms10)}, repeat(steady(40, 1000, ms10), 5)...),
			want:  want{40, Hold, ReasonStabilising},
		},
		{
			name:  "less demand: shrink after the window, halving at most",
			cfg:   Config{ScaleDownWindow: 5 * time.Second},
			ticks: append([]tick{steady(40, 3800, ms10), steady(40, 3800, ms10)}, repeat(steady(40, 1000, ms10), 7)...),
			want:  want{20, Down, ReasonDemand},
		},
		{
			name: "nothing arrives: shrink, reason idle",
			cfg:  Config{ScaleDownWindow: 3 * time.Second},
			ticks: append([]tick{steady(40, 3800, ms10), steady(40, 3800, ms10)},
				repeat(tick{workers: 40}, 4)...),
			want: want{20, Down, ReasonIdle},
		},
		{
			name: "queue still growing: no shrink",
			cfg:  Config{ScaleDownWindow: 2 * time.Second},
			ticks: []tick{
				steady(40, 1000, ms10),
				{workers: 40, arrived: 1000, done: 1000, latency: ms10, busy: 0.3, depth: 0},
				{workers: 40, arrived: 1000, done: 1000, latency: ms10, busy: 0.3, depth: 0},
				{workers: 40, arrived: 1000, done: 1000, latency: ms10, busy: 0.3, depth: 100},
				{workers: 40, arrived: 1000, done: 1000, latency: ms10, busy: 0.3, depth: 200},
				{workers: 40, arrived: 1000, done: 1000, latency: ms10, busy: 0.3, depth: 300},
			},
			want: want{40, Hold, ReasonBacklog},
		},
		{
			name:  "above the sink's declared maximum: cut",
			cfg:   Config{SinkMaxConcurrency: 8},
			ticks: []tick{steady(8, 400, ms10), steady(12, 400, ms10)},
			want:  want{8, Down, ReasonSinkLimit},
		},
		{
			name:  "never above the sink's declared maximum",
			cfg:   Config{SinkMaxConcurrency: 8},
			ticks: []tick{saturated(6, ms10), saturated(6, ms10)},
			want:  want{8, Up, ReasonSinkLimit},
		},
		{
			name:  "at Max and wanting more: hold, bounds",
			cfg:   Config{Max: 8},
			ticks: []tick{saturated(8, ms10), saturated(8, ms10)},
			want:  want{8, Hold, ReasonBounds},
		},
		{
			name:  "at the sink's maximum and wanting more: hold, sink_limit",
			cfg:   Config{SinkMaxConcurrency: 8},
			ticks: []tick{saturated(8, ms10), saturated(8, ms10)},
			want:  want{8, Hold, ReasonSinkLimit},
		},
		{
			name: "counters went backwards: warmup",
			ticks: []tick{
				steady(10, 900, ms10), steady(10, 900, ms10),
				{workers: 10, arrived: 5, done: 5, latency: ms10, resetCnts: true},
			},
			want: want{10, Hold, ReasonWarmup},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := drive(newPolicy(t, tt.cfg), tt.ticks)
			d := ds[len(ds)-1]
			if got := (want{d.Target, d.Direction, d.Reason}); got != tt.want {
				t.Errorf("last decision = %+v, want %+v\nall: %s", got, tt.want, summary(ds))
			}
		})
	}
}

func summary(ds []Decision) string {
	var b strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&b, "%s/%s→%d ", d.Direction, d.Reason, d.Target)
	}
	return b.String()
}

func TestPolicyView(t *testing.T) {
	ds := drive(newPolicy(t, Config{}), []tick{
		{workers: 10, depth: 0},
		{workers: 10, arrived: 1200, done: 1000, errs: 50, latency: 8 * time.Millisecond, busy: 0.8, depth: 100},
		{workers: 0, arrived: 1200, done: 1000, errs: 50, latency: 8 * time.Millisecond, busy: 0.8, depth: 300},
	})
	d := ds[2]
	if d.ArrivalRate != 1200 || d.CompletionRate != 1000 {
		t.Errorf("rates = %v, %v; want 1200, 1000", d.ArrivalRate, d.CompletionRate)
	}
	// SinkTime includes the failed attempts: 1050 × 8ms over 1000 completions.
	if want := 8400 * time.Microsecond; d.MeanLatency != want {
		t.Errorf("MeanLatency = %v, want %v", d.MeanLatency, want)
	}
	if want := 50.0 / 1050; d.ErrorRate != want {
		t.Errorf("ErrorRate = %v, want %v", d.ErrorRate, want)
	}
	if d.BusyRatio < 0.79 || d.BusyRatio > 0.81 {
		t.Errorf("BusyRatio = %v, want 0.8", d.BusyRatio)
	}
	if d.DepthSlope != 150 { // depths 0, 100, 300 at t = 0, 1, 2
		t.Errorf("DepthSlope = %v, want 150", d.DepthSlope)
	}
	if d.DemandRate != d.ArrivalRate {
		t.Errorf("DemandRate = %v without lag, want the arrival rate %v", d.DemandRate, d.ArrivalRate)
	}
}

// With lag reported, the demand is completions + dLag/dt, not admissions
// (which follow completions once the window is full).
func TestPolicyDemandFromLag(t *testing.T) {
	ds := drive(newPolicy(t, Config{}), []tick{
		{workers: 10, lag: 50000},
		{workers: 10, arrived: 1000, done: 1000, latency: 10 * time.Millisecond, busy: 1, depth: 5000, lag: 51000},
	})
	if got := ds[1].DemandRate; got != 2000 {
		t.Fatalf("DemandRate = %v, want 1000 completed + 1000 lag growth = 2000", got)
	}
}

func TestPolicyReversalGuard(t *testing.T) {
	ms10 := 10 * time.Millisecond
	cfg := Config{ScaleDownWindow: 3 * time.Second}
	ticks := []tick{
		steady(40, 1000, ms10),
		steady(40, 1000, ms10), // shrinks to 20
		{workers: 20, arrived: 3000, done: 2000, latency: ms10, busy: 1, depth: 600},  // wants 33: held
		{workers: 20, arrived: 3000, done: 2000, latency: ms10, busy: 1, depth: 1200}, // agrees: up
	}
	ds := drive(newPolicy(t, cfg), ticks)
	if d := ds[1]; d.Direction != Down {
		t.Fatalf("setup: %s", summary(ds))
	}
	if d := ds[2]; d.Reason != ReasonReversalGuard || d.Direction != Hold {
		t.Errorf("first sample after a shrink wanting growth: %s/%s, want hold/reversal_guard\n%s", d.Direction, d.Reason, summary(ds))
	}
	if d := ds[3]; d.Direction != Up {
		t.Errorf("second agreeing sample: %s/%s, want up\n%s", d.Direction, d.Reason, summary(ds))
	}

	// A saturated pool that should at least double is not held.
	ticks[2] = tick{workers: 20, arrived: 6000, done: 2000, latency: ms10, busy: 1, depth: 4000}
	ds = drive(newPolicy(t, cfg), ticks[:3])
	if d := ds[2]; d.Direction != Up {
		t.Errorf("urgent growth after a shrink: %s/%s, want up\n%s", d.Direction, d.Reason, summary(ds))
	}
}

// sinkAt returns the tick of a saturated pool of n on a sink whose latency is
// base while n <= c and base × n/c above (throughput flat at c/base).
func sinkAt(n, c int, base time.Duration) tick {
	lat := base
	if n > c {
		lat = time.Duration(float64(base) * float64(n) / float64(c))
	}
	return behind(n, lat)
}

func TestPolicySinkBottleneck(t *testing.T) {
	base := 5 * time.Millisecond
	const c = 16
	p := newPolicy(t, Config{BottleneckHold: 30 * time.Second})
	ticks := []tick{sinkAt(10, c, base), sinkAt(10, c, base)} // wants more: 10 → 20
	ds := drive(p, ticks)
	if d := ds[1]; d.Target != 20 {
		t.Fatalf("setup: want growth to 20, got %s", summary(ds))
	}

	// Drive the loop by hand from here, as the sink answers the size chosen.
	n := 20
	var seq []Decision
	s := lastSample(p)
	for i := 0; i < 40; i++ {
		k := sinkAt(n, c, base)
		s = next(s, k)
		d := p.Decide(s)
		seq = append(seq, d)
		n = d.Target
	}
	if d := seq[0]; d.Direction != Down || d.Reason != ReasonSinkBottleneck || d.Target != c {
		t.Fatalf("after 10 → 20 on a sink of capacity 16: %s/%s → %d; want down/sink_bottleneck → 16 (n × before/after)",
			d.Direction, d.Reason, d.Target)
	}
	if !seq[0].SinkBottleneck || seq[0].Ceiling != 19 {
		t.Errorf("SinkBottleneck = %v, Ceiling = %d; want true, 19", seq[0].SinkBottleneck, seq[0].Ceiling)
	}
	if seq[0].Pod.DesiredReplicas > 1 || !seq[0].Pod.HeldBack {
		t.Errorf("pod signal while the sink is the bottleneck = %+v; want held back at 1", seq[0].Pod)
	}
	peak := 0
	for _, d := range seq[1:] {
		peak = max(peak, d.Target)
	}
	if peak > c+1 {
		t.Errorf("after learning the ceiling the pool went to %d; want at most one probe above %d\n%s", peak, c, summary(seq))
	}
	if got := seq[len(seq)-1].Target; got != c {
		t.Errorf("settled at %d, want %d\n%s", got, c, summary(seq))
	}

	// After the hold, one probe above the ceiling; it fails and the hold doubles.
	for i := 0; i < 40; i++ {
		k := sinkAt(n, c, base)
		s = next(s, k)
		d := p.Decide(s)
		seq = append(seq, d)
		n = d.Target
	}
	probes := 0
	for _, d := range seq[1:] {
		if d.Direction == Up {
			probes++
		}
	}
	if probes < 1 || probes > 3 {
		t.Errorf("probes in 80 s with a 30 s hold = %d, want 1 to 3\n%s", probes, summary(seq))
	}
	if p.bn.hold != 60*time.Second {
		t.Errorf("hold after a failed probe = %v, want 60s", p.bn.hold)
	}
}

// A latency rise that coincides with an increase but was under way before it
// is the sink's own doing: no verdict.
func TestPolicyExogenousLatency(t *testing.T) {
	p := newPolicy(t, Config{})
	ds := drive(p, []tick{
		saturated(10, time.Millisecond),
		saturated(10, time.Millisecond),
		saturated(10, 3*time.Millisecond), // the sink slows: latency already rising
		{workers: 0, arrived: 2000, done: 2000, latency: 10 * time.Millisecond, busy: 1, depth: 5000},
	})
	for _, d := range ds {
		if d.Reason == ReasonSinkBottleneck {
			t.Fatalf("bottleneck verdict on an exogenous latency rise: %s", summary(ds))
		}
	}
}

// A step back whose pool then loses throughput in proportion shows the sink
// was not saturated: the ceiling is forgotten.
func TestPolicyStepBackNotConfirmed(t *testing.T) {
	p := newPolicy(t, Config{})
	drive(p, []tick{behind(10, 5*time.Millisecond), behind(10, 5*time.Millisecond)}) // → 20
	s := lastSample(p)
	s = next(s, behind(20, 9*time.Millisecond)) // latency jumps with the increase
	d := p.Decide(s)
	if d.Reason != ReasonSinkBottleneck {
		t.Fatalf("setup: %s/%s", d.Direction, d.Reason)
	}
	back := d.Target
	s = next(s, behind(back, 9*time.Millisecond)) // latency stays: it was the sink
	d = p.Decide(s)
	if d.SinkBottleneck {
		t.Errorf("ceiling kept after a step back that lost proportional throughput: %+v", d)
	}
	if d.Direction != Up {
		t.Errorf("after the ceiling is forgotten the pool should regrow at once: %s/%s", d.Direction, d.Reason)
	}
}

func lastSample(p *Policy) Sample { return p.prev }

func next(s Sample, k tick) Sample {
	s.At = s.At.Add(time.Second)
	s.Arrived += uint64(k.arrived)
	s.Completed += uint64(k.done)
	s.Errors += uint64(k.errs)
	s.SinkTime += time.Duration((k.done + k.errs) * float64(k.latency))
	s.BusyTime += time.Duration(k.busy * float64(k.workers) * float64(time.Second))
	s.Workers = k.workers
	s.Busy = int(k.busy * float64(k.workers))
	s.Depth = k.depth
	s.Lag = lagOf(s.Lag, k)
	return s
}

// lagOf is the lag after tick k: saturated ticks (depth 5000, lag 2000) grow
// the lag by 2000 from at least the depth; others set it.
func lagOf(prev int64, k tick) int64 {
	if k.depth == 5000 && k.lag == 2000 {
		return max(prev, int64(k.depth)) + k.lag
	}
	return k.lag
}

// A sink slows down 25x while the pool sits at its capacity. The first
// increase is no test of the sink (its latency was already rising with the
// same pool: no verdict), but the next one is: the rise before it came
// from the first increase, not from the sink. Before this was told apart,
// each increase's rise excused the next and the pool went 8 → 16 → 32 → 64
// and stayed at Max on a sink that serves 8 at once.
func TestPolicySinkSlowsAtItsCapacity(t *testing.T) {
	const c, rate = 8, 38000.0 // 8 workers at 0.2 ms keep up with 38000/s
	fast, slow := 200*time.Microsecond, 5*time.Millisecond
	p := newPolicy(t, Config{Max: 64, BottleneckHold: time.Minute})
	n := c
	s := Sample{At: t0, Workers: n}
	seq := []Decision{p.Decide(s)}
	var lag int64
	for i := range 30 {
		k := steady(n, rate, fast)
		if i >= 3 {
			lat := sinkLatency(n, c, slow)
			k = saturated(n, lat)
			lag += int64(rate - k.done) // production goes on at rate
			k.lag = lag
		}
		s = next(s, k)
		d := p.Decide(s)
		seq = append(seq, d)
		n = d.Target
	}
	if seq[3].Target != c || seq[4].Direction != Up {
		t.Fatalf("setup: want the pool at %d until the sink slows, then growth: %s", c, summary(seq))
	}
	peak, last := 0, seq[len(seq)-1]
	for _, d := range seq {
		peak = max(peak, d.Target)
	}
	if peak > 4*c {
		t.Errorf("peak %d workers on a sink of capacity %d; want at most 4x (one increase unjudged, one judged)\n%s", peak, c, summary(seq))
	}
	if last.Target < c || float64(last.Target) > 1.5*c || !last.SinkBottleneck {
		t.Errorf("settled at %d (bottleneck %v); want between %d and %.0f with the sink known as the bottleneck\n%s",
			last.Target, last.SinkBottleneck, c, 1.5*c, summary(seq))
	}
}

// sinkLatency is the latency of a sink serving c calls at once at base,
// queueing the rest: base × n/c above c.
func sinkLatency(n, c int, base time.Duration) time.Duration {
	return time.Duration(float64(base) * max(1, float64(n)/float64(c)))
}

// An increase whose extra workers the ordering lanes leave partly idle (50
// keys, 64 workers) is judged by the calls the sink saw: 34 → 50 calls
// that only raised latency are a sink bottleneck, not an increase that
// paid because the pool was no longer saturated (it then stayed at 64 on a
// sink of capacity 8).
func TestPolicyJudgesLaneCappedIncrease(t *testing.T) {
	const c, keys = 8, 50
	slow := 5 * time.Millisecond
	p := newPolicy(t, Config{Max: 64})
	k := saturated(34, sinkLatency(34, c, slow))
	k.lag = 2000
	ds := drive(p, []tick{k, k})
	if d := ds[1]; d.Direction != Up || d.Target != 64 {
		t.Fatalf("setup: want growth 34 → 64, got %s", summary(ds))
	}
	s := lastSample(p)
	after := saturated(keys, sinkLatency(keys, c, slow)) // 50 calls at once: the lanes
	after.workers, after.busy, after.lag = 64, float64(keys)/64, 2000
	d := p.Decide(next(s, after))
	if d.Direction != Down || d.Reason != ReasonSinkBottleneck || d.Target >= 64 {
		t.Errorf("after 34 → 64 with 50 calls at once and no more throughput: %s/%s → %d; want down/sink_bottleneck",
			d.Direction, d.Reason, d.Target)
	}
}

// The sink slows down 25x while bursts leave the pool short of saturated
// for two intervals: the increases 9 → 18 → 36 get no verdict, and the
// baseline is still the fast sink's. When 36 → 64 fails, 36 is no size
// known good: the pool steps back by one step down at most, and goes on
// down while the throughput holds, to the sink's limit. (It stepped back
// to 36, 4.5x the limit, and stayed there.)
func TestPolicyDescendsToTheSinkLimit(t *testing.T) {
	const c, rate = 8, 8000.0
	fast, slow := time.Millisecond, 5*time.Millisecond
	p := newPolicy(t, Config{Max: 64, BottleneckHold: time.Minute})
	n := 9
	s := Sample{At: t0, Workers: n}
	seq := []Decision{p.Decide(s)}
	var lag int64
	for i := range 25 {
		var k tick
		switch {
		case i < 2:
			k = steady(n, rate, fast)
		case i < 4: // slow, but a lull in arrivals leaves workers idle at times
			k = saturated(n, sinkLatency(n, c, slow))
			k.busy = 0.85
			k.done *= 0.85
		default:
			k = saturated(n, sinkLatency(n, c, slow))
		}
		k.arrived = k.done
		if i >= 2 {
			lag += int64(rate - k.done)
			k.lag = lag
		}
		s = next(s, k)
		d := p.Decide(s)
		seq = append(seq, d)
		n = d.Target
	}
	peak := 0
	for _, d := range seq {
		peak = max(peak, d.Target)
	}
	if peak != 64 {
		t.Fatalf("setup: want the pool to reach 64 unjudged: %s", summary(seq))
	}
	if last := seq[len(seq)-1]; last.Target < c || float64(last.Target) > 1.5*c || !last.SinkBottleneck {
		t.Errorf("settled at %d (bottleneck %v); want between %d and %.0f\n%s", last.Target, last.SinkBottleneck, c, 1.5*c, summary(seq))
	}
}

// A ceiling learned while the sink was slow is forgotten when the sink
// recovers (its latency at the same pool falls by half or more): the pool
// grows to what the recovered sink takes instead of holding the old limit
// for BottleneckHold.
func TestPolicyForgetsTheLimitWhenTheSinkRecovers(t *testing.T) {
	const rate = 38000.0
	p := newPolicy(t, Config{Max: 64, BottleneckHold: time.Minute})
	n := 8
	s := Sample{At: t0, Workers: n}
	seq := []Decision{p.Decide(s)}
	var lag int64
	recovered := 20
	for i := range 35 {
		k := steady(n, rate, 200*time.Microsecond)
		switch {
		case i >= recovered: // back, and it now serves 32 at once
			k = saturated(n, sinkLatency(n, 32, 500*time.Microsecond))
		case i >= 3:
			k = saturated(n, sinkLatency(n, 8, 5*time.Millisecond))
		}
		if i >= 3 {
			lag = max(0, lag+int64(rate-k.done))
			k.lag = lag
		}
		s = next(s, k)
		d := p.Decide(s)
		seq = append(seq, d)
		n = d.Target
	}
	if d := seq[recovered]; !d.SinkBottleneck || d.Target > 12 {
		t.Fatalf("setup: want the slow sink's limit (8) learned before it recovers: %s", summary(seq[:recovered+1]))
	}
	peak := 0
	for _, d := range seq[recovered+1:] {
		peak = max(peak, d.Target)
	}
	if peak < 24 {
		t.Errorf("after the sink recovered (32 calls at once) the pool peaked at %d; want it past 24, not held at the old limit\n%s",
			peak, summary(seq[recovered:]))
	}
}

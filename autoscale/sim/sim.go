// Package sim runs the real autoscale Policy, and simple baselines, against a
// simulated pipeline and sink in virtual time: deterministic for a seed, no
// sleeping, a few milliseconds of CPU per simulated minute.
//
// The model is a fluid one at Tick resolution (1 ms by default). Records are
// produced into a broker log at the scenario's arrival rate (Poisson per
// tick); the fetcher admits them into a bounded window (Window records,
// waiting plus in service) while it has room; up to n workers serve the
// window, so the sink's concurrency is c = min(n, records in the window); the
// sink completes c·tick/L(t,c) attempts per tick, of which a share E(t,c)
// fail and go back to the window. Per-tick latency carries multiplicative
// log-normal noise. The pool takes the controller's size at once. Every
// Interval the controller gets an autoscale.Sample built from the counters,
// exactly as the pipeline would build it.
//
// Each run also drives an oracle on the same arrivals and noise: a pool that
// always runs at the concurrency that maximises successful throughput
// (argmax over c in [1, Max] of c/L(t,c)·(1-E(t,c))). Its per-interval
// throughput is "the best achievable".
package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/sluicehq/sluice/autoscale"
)

// Scenario is offered load and a sink.
type Scenario struct {
	Name  string // short, used in file names and JSON
	Title string // one line for tables and plots

	Duration time.Duration
	// Event is the onset of the change that T90 is measured from.
	Event time.Duration
	// Steady is the length of the steady-state window at the end of the
	// run. Default 60s.
	Steady time.Duration

	// Arrival is the production rate into the log, records per second.
	Arrival func(t time.Duration) float64
	// Latency is the sink's latency at concurrency c.
	Latency func(t time.Duration, c float64) time.Duration
	// Errors is the share of sink attempts that fail; nil: none.
	Errors func(t time.Duration, c float64) float64
	// Capacity is the sink's concurrency capacity C (0: none): reported,
	// and checked by the saturation goal.
	Capacity int
	// Window is the pipeline's buffer in records. Default 20000.
	Window int
	// Partitions is passed in samples (caps the pod signal). Default 12.
	Partitions int
}

// Controller sizes the simulated pool.
type Controller interface {
	Name() string
	// Next returns the pool size wanted after seeing s.
	Next(s autoscale.Sample) int
}

// Options are the parameters of a run shared by all scenarios.
type Options struct {
	Seed  uint64        // default 1
	Tick  time.Duration // default 1ms
	Noise float64       // log-normal sigma of per-tick latency; default 0.05
	// NoLag makes samples report no broker lag, as a source that cannot
	// tell (core NATS) would: the policy then sizes on admissions.
	NoLag bool
	// Config is the adaptive controller's configuration. Its Min, Max,
	// Interval and MaxStep apply to every controller in a comparison.
	Config autoscale.Config
}

// PoolMax is the largest pool the scenarios are built for (their sinks
// saturate between 16 and about 100 workers): a Config with no Max gets
// this rather than the service's default, so that the fixed-max baseline
// overloads every scenario's sink as docs/AUTOSCALE.md measured it.
const PoolMax = 256

// sized fills in PoolMax as cfg's Max when it has none.
func sized(cfg autoscale.Config) autoscale.Config {
	if cfg.Max == 0 {
		cfg.Max = max(PoolMax, cfg.Min)
	}
	return cfg
}

func (o Options) withDefaults() (Options, error) {
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Tick == 0 {
		o.Tick = time.Millisecond
	}
	if o.Noise == 0 {
		o.Noise = 0.05
	}
	p, err := autoscale.NewPolicy(sized(o.Config))
	if err != nil {
		return o, err
	}
	o.Config = p.Config()
	if o.Config.Interval%o.Tick != 0 {
		return o, fmt.Errorf("sim: Interval %v is not a multiple of Tick %v", o.Config.Interval, o.Tick)
	}
	return o, nil
}

// Point is one interval of a run.
type Point struct {
	T        float64 // end of the interval, seconds
	Workers  int     // pool size during the interval
	Peak     float64 // highest sink concurrency in the interval
	Depth    int     // waiting records at the end
	Lag      int64   // broker lag at the end
	Arrival  float64 // offered records/s
	Done     float64 // completions/s
	Oracle   float64 // the oracle's completions/s
	Optimum  float64 // Little's-law optimum workers at the end of the interval
	Latency  float64 // the sink's no-load latency, seconds
	Reason   string  // the adaptive controller's reason, if it gives one
	Replicas float64 // the adaptive controller's pod signal, if it gives one
}

// Result is one run.
type Result struct {
	Scenario   string
	Controller string
	Points     []Point
	Summary    Summary
}

// decider is implemented by controllers that expose an autoscale.Decision.
type decider interface {
	LastDecision() autoscale.Decision
}

// Run drives controller c through scenario sc. It is deterministic for a seed.
func Run(sc Scenario, c Controller, o Options) (Result, error) {
	o, err := o.withDefaults()
	if err != nil {
		return Result{}, err
	}
	cfg := o.Config
	if sc.Window == 0 {
		sc.Window = 20000
	}
	if sc.Partitions == 0 {
		sc.Partitions = 12
	}
	if sc.Steady == 0 {
		sc.Steady = 60 * time.Second
	}
	if sc.Errors == nil {
		sc.Errors = func(time.Duration, float64) float64 { return 0 }
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x5eed))
	dt := o.Tick.Seconds()
	ticksPer := int(cfg.Interval / o.Tick)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	var (
		// the pipeline under control
		lag, q                                  float64 // broker lag (not admitted), records in the window
		arrived, completed, failed, sink, busyT float64
		n                                       = cfg.Min
		// the oracle
		lagO, qO float64
	)
	if f, ok := c.(interface{ Initial() int }); ok {
		n = f.Initial()
	}
	res := Result{Scenario: sc.Name, Controller: c.Name()}
	steps := int(sc.Duration / cfg.Interval)
	for k := 0; k < steps; k++ {
		t0 := time.Duration(k) * cfg.Interval
		best := bestConcurrency(sc, t0, cfg.Max)
		var done0, oracle0, peak float64 = completed, 0, 0
		var offered float64
		for i := 0; i < ticksPer; i++ {
			t := t0 + time.Duration(i)*o.Tick
			lam := sc.Arrival(t)
			a := poisson(rng, lam*dt)
			offered += a
			noise := math.Exp(o.Noise*rng.NormFloat64() - o.Noise*o.Noise/2)

			// pipeline
			lag += a
			adm := min(lag, max(0, float64(sc.Window)-q))
			lag -= adm
			q += adm
			arrived += adm
			b := min(float64(n), q)
			peak = max(peak, b)
			if b > 0 {
				L := sc.Latency(t, b).Seconds() * noise
				e := sc.Errors(t, b)
				att := b * dt / L
				ok := min(att*(1-e), q)
				q -= ok
				completed += ok
				failed += att * e
				sink += b * dt
				busyT += b * dt
			}

			// oracle
			lagO += a
			admO := min(lagO, max(0, float64(sc.Window)-qO))
			lagO -= admO
			qO += admO
			if bo := min(best, qO); bo > 0 {
				L := sc.Latency(t, bo).Seconds() * noise
				ok := min(bo*dt/L*(1-sc.Errors(t, bo)), qO)
				qO -= ok
				oracle0 += ok
			}
		}
		t1 := t0 + cfg.Interval
		b := min(float64(n), q)
		s := autoscale.Sample{
			At:         start.Add(t1),
			Workers:    n,
			Busy:       int(math.Round(b)),
			BusyTime:   secs(busyT),
			Depth:      int(q - b),
			Arrived:    uint64(arrived),
			Completed:  uint64(completed),
			Errors:     uint64(failed),
			SinkTime:   secs(sink),
			Lag:        int64(lag + q),
			Partitions: sc.Partitions,
		}
		if o.NoLag {
			s.Lag = 0
		}
		sec := cfg.Interval.Seconds()
		pt := Point{
			T:       t1.Seconds(),
			Workers: n,
			Peak:    peak,
			Depth:   s.Depth,
			Lag:     s.Lag,
			Arrival: offered / sec,
			Done:    (completed - done0) / sec,
			Oracle:  oracle0 / sec,
			Optimum: optimum(sc, t1-o.Tick, best),
			Latency: sc.Latency(t1-o.Tick, 1).Seconds(),
		}
		n = min(max(c.Next(s), cfg.Min), cfg.Max)
		if dc, ok := c.(decider); ok {
			d := dc.LastDecision()
			pt.Reason, pt.Replicas = d.Reason, d.Pod.DesiredReplicas
		}
		res.Points = append(res.Points, pt)
	}
	res.Summary = summarise(sc, cfg, res.Points)
	return res, nil
}

// bestConcurrency is the concurrency in [1, max] with the highest successful
// throughput at t.
func bestConcurrency(sc Scenario, t time.Duration, maxN int) float64 {
	best, bestT := 1.0, 0.0
	for c := 1; c <= maxN; c++ {
		cf := float64(c)
		tp := cf / sc.Latency(t, cf).Seconds() * (1 - sc.Errors(t, cf))
		if tp > bestT*(1+1e-9) {
			best, bestT = cf, tp
		}
	}
	return best
}

// optimum is the Little's-law optimum number of workers at t: the offered
// rate times the sink time per successful record, but no more than the best
// concurrency.
func optimum(sc Scenario, t time.Duration, best float64) float64 {
	lam := sc.Arrival(t)
	c := min(best, math.Max(1, lam*sc.Latency(t, 1).Seconds()))
	e := sc.Errors(t, c)
	if e >= 1 {
		return best
	}
	return min(best, lam*sc.Latency(t, c).Seconds()/(1-e))
}

// poisson draws a Poisson variate with mean m (normal approximation above 30).
func poisson(r *rand.Rand, m float64) float64 {
	if m <= 0 {
		return 0
	}
	if m > 30 {
		return math.Max(0, math.Round(m+math.Sqrt(m)*r.NormFloat64()))
	}
	l, k, p := math.Exp(-m), 0.0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

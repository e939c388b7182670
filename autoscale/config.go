package autoscale

import (
	"errors"
	"fmt"
	"time"
)

// ErrInvalidConfig is wrapped by every error that Config.Validate returns:
// the caller should fix the configuration, not retry.
var ErrInvalidConfig = errors.New("autoscale: invalid config")

// Config tunes the Policy and the Controller. The zero value of every field
// means its documented default, so Config{} is a working configuration.
// Fractions are plain ratios (0.1 = 10 %).
type Config struct {
	// Min is the fewest workers the pool is sized to. Default 1.
	Min int

	// Max is the most workers the pool is sized to. It is also what one pod
	// can run, so the pod signal counts a pod's capacity as Max workers.
	// Default 64.
	Max int

	// Interval is how often the Controller samples the pipeline and decides.
	// Shorter reacts faster; longer gives each sample more completions to
	// average over (the bottleneck test compares one interval with the next,
	// so a noisy sink wants a longer interval). Default 1s.
	Interval time.Duration

	// MaxStep is the most workers added or removed by one decision.
	// Zero means an adaptive step as the Kubernetes HPA uses by default:
	// up by at most max(4, n) (doubling) and down by at most max(4, n/2)
	// (halving), where n is the current size. A fixed step bounds how far
	// past a sink's capacity one decision can go, at the cost of a slower
	// climb after a large change in demand.
	MaxStep int

	// DeadBand is the tolerance around the current size inside which the
	// policy holds: a recommendation within DeadBand*n of n is ignored. The
	// band is never narrower than the sampling noise of the interval's
	// counts (2/sqrt(records counted)), so a slow pipeline does not flap on
	// Poisson noise. Headroom and DeadBand together bound the steady state:
	// the pool settles between rate×latency and that times
	// (1+Headroom)(1+DeadBand). Default 0.05.
	DeadBand float64

	// ScaleDownWindow is the scale-down stabilisation window: the policy
	// shrinks only to the highest recommendation made within this window,
	// as the Kubernetes HPA does. It does not delay growth. Default 30s.
	ScaleDownWindow time.Duration

	// SlopeWindow is how far back the queue-depth and lag slopes are
	// fitted (least squares over the samples in the window). Default 5s.
	SlopeWindow time.Duration

	// LatencyTolerance is how much sink latency may rise after an increase
	// before the rise counts against the increase. Default 0.2.
	LatencyTolerance float64

	// ErrorThreshold is the share of failed sink attempts at or above which
	// the policy adds no workers (a failing sink is not a slow one; more
	// calls would only add failures), and the pod signal is held back.
	// After an increase, a rise of the share by more than half of it counts
	// against the increase. Default 0.1.
	ErrorThreshold float64

	// SinkMaxConcurrency is the sink's own declared maximum concurrency, if
	// it has one. The policy never sizes the pool above it. Zero: none.
	SinkMaxConcurrency int

	// Headroom is the spare capacity kept above the Little's-law estimate
	// (workers = rate × latency × (1+Headroom)) so that the pool does not
	// run at 100 % utilisation, where a queue grows on any jitter (and the
	// backlog term then adds what is missing). Default 0.05.
	Headroom float64

	// DrainTime is the horizon over which the workers should clear records
	// already waiting: a queue of depth d adds d/DrainTime to the rate the
	// pool is sized for. Default 10s.
	DrainTime time.Duration

	// PodDrainTime is the horizon over which the pods should clear broker
	// lag; the pod signal adds Lag/PodDrainTime to the rate it sizes for.
	// It is longer than DrainTime because pods take far longer to start
	// than workers. Default 60s.
	PodDrainTime time.Duration

	// BottleneckHold is how long the policy keeps a learned sink ceiling
	// before probing one worker above it. Each probe that finds the sink
	// still saturated doubles the hold, up to 8 × BottleneckHold; a probe
	// that succeeds resets it. Default 2m.
	BottleneckHold time.Duration
}

// Defaults.
const (
	DefaultMin              = 1
	DefaultMax              = 64
	DefaultInterval         = time.Second
	DefaultDeadBand         = 0.05
	DefaultScaleDownWindow  = 30 * time.Second
	DefaultSlopeWindow      = 5 * time.Second
	DefaultLatencyTolerance = 0.2
	DefaultErrorThreshold   = 0.1
	DefaultHeadroom         = 0.05
	DefaultDrainTime        = 10 * time.Second
	DefaultPodDrainTime     = 60 * time.Second
	DefaultBottleneckHold   = 2 * time.Minute
)

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Min == 0 {
		c.Min = DefaultMin
	}
	if c.Max == 0 {
		c.Max = max(DefaultMax, c.Min)
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.DeadBand == 0 {
		c.DeadBand = DefaultDeadBand
	}
	if c.ScaleDownWindow == 0 {
		c.ScaleDownWindow = DefaultScaleDownWindow
	}
	if c.SlopeWindow == 0 {
		c.SlopeWindow = DefaultSlopeWindow
	}
	if c.LatencyTolerance == 0 {
		c.LatencyTolerance = DefaultLatencyTolerance
	}
	if c.ErrorThreshold == 0 {
		c.ErrorThreshold = DefaultErrorThreshold
	}
	if c.Headroom == 0 {
		c.Headroom = DefaultHeadroom
	}
	if c.DrainTime == 0 {
		c.DrainTime = DefaultDrainTime
	}
	if c.PodDrainTime == 0 {
		c.PodDrainTime = DefaultPodDrainTime
	}
	if c.BottleneckHold == 0 {
		c.BottleneckHold = DefaultBottleneckHold
	}
	return c
}

// Validate reports every field with a bad value, naming the field, the value
// and what is expected. Zero values are valid (they mean the default).
// The error wraps ErrInvalidConfig.
func (c Config) Validate() error {
	var errs []error
	bad := func(field string, v any, want string) {
		errs = append(errs, fmt.Errorf("%w: %s = %v: %s", ErrInvalidConfig, field, v, want))
	}
	if c.Min < 0 {
		bad("Min", c.Min, "want >= 1 (0 means 1)")
	}
	if c.Max < 0 {
		bad("Max", c.Max, "want >= Min (0 means 64)")
	}
	if c.Interval < 0 {
		bad("Interval", c.Interval, "want > 0 (0 means 1s)")
	}
	if c.MaxStep < 0 {
		bad("MaxStep", c.MaxStep, "want >= 1 (0 means adaptive)")
	}
	if c.DeadBand < 0 || c.DeadBand >= 1 {
		bad("DeadBand", c.DeadBand, "want a fraction in [0, 1)")
	}
	if c.ScaleDownWindow < 0 {
		bad("ScaleDownWindow", c.ScaleDownWindow, "want >= 0 (0 means 30s)")
	}
	if c.SlopeWindow < 0 {
		bad("SlopeWindow", c.SlopeWindow, "want >= 0 (0 means 5s)")
	}
	if c.LatencyTolerance < 0 {
		bad("LatencyTolerance", c.LatencyTolerance, "want a fraction >= 0")
	}
	if c.ErrorThreshold < 0 || c.ErrorThreshold > 1 {
		bad("ErrorThreshold", c.ErrorThreshold, "want a fraction in [0, 1]")
	}
	if c.SinkMaxConcurrency < 0 {
		bad("SinkMaxConcurrency", c.SinkMaxConcurrency, "want >= 0 (0 means none)")
	}
	if c.Headroom < 0 {
		bad("Headroom", c.Headroom, "want a fraction >= 0")
	}
	if c.DrainTime < 0 {
		bad("DrainTime", c.DrainTime, "want >= 0 (0 means 10s)")
	}
	if c.PodDrainTime < 0 {
		bad("PodDrainTime", c.PodDrainTime, "want >= 0 (0 means 60s)")
	}
	if c.BottleneckHold < 0 {
		bad("BottleneckHold", c.BottleneckHold, "want >= 0 (0 means 2m)")
	}
	if len(errs) == 0 {
		d := c.withDefaults()
		if d.Max < d.Min {
			bad("Max", c.Max, fmt.Sprintf("want >= Min (%d)", d.Min))
		}
		if d.SlopeWindow < d.Interval {
			bad("SlopeWindow", d.SlopeWindow, fmt.Sprintf("want >= Interval (%v): a slope needs two samples", d.Interval))
		}
	}
	return errors.Join(errs...)
}

// bounds are the lowest and highest sizes the configuration allows. A sink's
// declared maximum wins over Min: the policy never goes above it.
func (c Config) bounds() (lo, hi int) {
	hi = c.Max
	if c.SinkMaxConcurrency > 0 && c.SinkMaxConcurrency < hi {
		hi = c.SinkMaxConcurrency
	}
	return min(c.Min, hi), hi
}

// stepUp and stepDown are the largest changes one decision may make from n.
func (c Config) stepUp(n int) int {
	if c.MaxStep > 0 {
		return c.MaxStep
	}
	return max(4, n)
}

func (c Config) stepDown(n int) int {
	if c.MaxStep > 0 {
		return c.MaxStep
	}
	return max(4, n/2)
}

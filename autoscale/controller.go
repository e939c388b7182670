package autoscale

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrRunning is returned by Run when the Controller is already running.
var ErrRunning = errors.New("autoscale: controller already running")

// Option configures a Controller's collaborators.
type Option func(*options)

type options struct {
	log *slog.Logger
	reg prometheus.Registerer
}

// WithLogger sets the logger for resize lines. Default: discard.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// WithRegisterer registers the Controller's metrics with r. Default: the
// metrics exist but are registered nowhere (never the global registry).
func WithRegisterer(r prometheus.Registerer) Option {
	return func(o *options) { o.reg = r }
}

// Controller is the thin loop around a Policy: every Interval it takes a
// Sample, asks the Policy, resizes the Pool when the target changes, counts
// the decision and exports the Policy's view.
//
// New starts nothing; Run blocks until its context is done. View and the
// metrics are safe to read from any goroutine at any time.
type Controller struct {
	cfg    Config
	policy *Policy
	pool   Pool
	sample func() Sample
	log    *slog.Logger
	m      *metrics

	running atomic.Bool
	view    atomic.Pointer[Decision]
}

// New returns a Controller that sizes pool from the samples that sample
// returns. sample is called from Run's goroutine only; if it leaves At zero
// the Controller stamps it with time.Now, and if it leaves Workers zero it
// fills it from pool.Size(). It returns cfg.Validate's error, or the error
// of registering the metrics.
func New(cfg Config, pool Pool, sample func() Sample, opts ...Option) (*Controller, error) {
	if pool == nil || sample == nil {
		return nil, errors.New("autoscale: New needs a pool and a sample func")
	}
	p, err := NewPolicy(cfg)
	if err != nil {
		return nil, err
	}
	o := options{log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	c := &Controller{cfg: p.Config(), policy: p, pool: pool, sample: sample, log: o.log}
	c.m = newMetrics(c.loadView)
	if o.reg != nil {
		if err := c.m.register(o.reg); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Run samples every Interval until ctx is done, then returns nil. The first
// sample is taken at once (it only sets the baseline); the first decision
// that can change the size comes one Interval later. A second concurrent
// Run returns ErrRunning. Run may be called again after it returned; the
// policy keeps its history.
func (c *Controller) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer c.running.Store(false)

	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	c.step()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			c.step()
		}
	}
}

// View returns the latest Decision (the zero Decision before the first
// sample). For a debug endpoint.
func (c *Controller) View() Decision { return c.loadView() }

func (c *Controller) loadView() Decision {
	if d := c.view.Load(); d != nil {
		return *d
	}
	return Decision{}
}

// step takes one sample and acts on the decision.
func (c *Controller) step() {
	s := c.sample()
	if s.At.IsZero() {
		s.At = time.Now()
	}
	if s.Workers == 0 {
		s.Workers = c.pool.Size()
	}
	d := c.policy.Decide(s)
	c.view.Store(&d)
	c.m.decisions.WithLabelValues(d.Direction, d.Reason).Inc()
	if d.Target == c.pool.Size() {
		return
	}
	c.pool.Resize(d.Target)
	c.log.Info("autoscale resize",
		"from", d.Current,
		"to", d.Target,
		"direction", d.Direction,
		"reason", d.Reason,
		"sink_latency_seconds", d.MeanLatency.Seconds(),
		"demand_rate", d.DemandRate,
		"completion_rate", d.CompletionRate,
		"depth", d.Depth,
		"depth_slope", d.DepthSlope,
		"busy_ratio", d.BusyRatio,
		"error_rate", d.ErrorRate,
		"sink_bottleneck", d.SinkBottleneck,
		"ceiling", d.Ceiling,
	)
}

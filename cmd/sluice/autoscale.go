package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/autoscale"
	"github.com/sluicehq/sluice/consumer"
)

// AutoscaleEnv holds the worker controller's variables.
type AutoscaleEnv struct {
	Autoscale                bool          `env:"AUTOSCALE" envDefault:"true" help:"size the worker pool between SLUICE_WORKERS_MIN and _MAX from what the pipeline measures; false: a fixed pool of SLUICE_WORKERS_MAX"`
	AutoscaleInterval        time.Duration `env:"AUTOSCALE_INTERVAL" envDefault:"1s" help:"how often the controller samples the pipeline and decides"`
	AutoscaleMaxStep         int           `env:"AUTOSCALE_MAX_STEP" envDefault:"0" help:"most workers added or removed by one decision (0: adaptive, max(4, n) up and max(4, n/2) down)"`
	AutoscaleScaleDownWindow time.Duration `env:"AUTOSCALE_SCALE_DOWN_WINDOW" envDefault:"30s" help:"scale down only to the highest target seen over this window (as the Kubernetes HPA)"`
	SinkMaxConcurrency       int           `env:"SINK_MAX_CONCURRENCY" envDefault:"0" help:"most concurrent deliveries the sink can take (0: no limit beyond what the sink itself declares)"`
}

// checkAutoscale adds the controller's problems, named by variable.
func (c *envConfig) checkAutoscale(bad func(name, want string)) {
	if c.AutoscaleInterval <= 0 {
		bad("AUTOSCALE_INTERVAL", "want a positive duration such as 1s")
	}
	if c.AutoscaleMaxStep < 0 {
		bad("AUTOSCALE_MAX_STEP", "want 0 (adaptive) or more")
	}
	if c.AutoscaleScaleDownWindow < 0 {
		bad("AUTOSCALE_SCALE_DOWN_WINDOW", "want 0 or a positive duration")
	}
	if c.SinkMaxConcurrency < 0 {
		bad("SINK_MAX_CONCURRENCY", "want 0 (no limit) or more")
	}
}

// initialWorkers is the pool size to start with: the minimum when the
// controller will grow it, else the fixed maximum.
func (c *envConfig) initialWorkers() int {
	if c.Autoscale {
		return c.WorkersMin
	}
	return c.WorkersMax
}

// maxConcurrencySink is an optional sink capability: the most concurrent
// deliveries it can take. The controller never sizes the pool above it.
type maxConcurrencySink interface {
	MaxConcurrency() int
}

func (c *envConfig) autoscaleConfig(sink consumer.Sink) autoscale.Config {
	limit := c.SinkMaxConcurrency
	if m, ok := sink.(maxConcurrencySink); ok && m.MaxConcurrency() > 0 {
		if limit == 0 || m.MaxConcurrency() < limit {
			limit = m.MaxConcurrency()
		}
	}
	return autoscale.Config{
		Min: c.WorkersMin, Max: c.WorkersMax, Interval: c.AutoscaleInterval,
		MaxStep: c.AutoscaleMaxStep, ScaleDownWindow: c.AutoscaleScaleDownWindow,
		SinkMaxConcurrency: limit,
	}
}

// sampler reads the consumer for the controller. Partitions caps the pod
// signal: for Kafka a member cannot usefully spread its work over more pods
// than it has partitions; a JetStream consumer or a core NATS queue group
// shares messages one by one, so there is no cap (0).
func sampler(c *consumer.Consumer, kafka bool) func() autoscale.Sample {
	return func() autoscale.Sample {
		st := c.Stats()
		s := autoscale.Sample{
			At: time.Now(), Workers: st.Workers, Busy: st.Busy, BusyTime: st.BusyTime,
			Depth: st.Depth, Arrived: st.Arrived, Completed: st.Completed, Errors: st.Errors,
			SinkTime: st.SinkTime, Lag: st.Lag,
		}
		if kafka {
			s.Partitions = st.Partitions
		}
		return s
	}
}

// newController builds the worker controller for c, or nil when disabled.
func newController(cfg autoscale.Config, c *consumer.Consumer, kafka bool, log *slog.Logger, reg prometheus.Registerer) (*autoscale.Controller, error) {
	ctl, err := autoscale.New(cfg, c, sampler(c, kafka), autoscale.WithLogger(log), autoscale.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("autoscale: %w", err)
	}
	return ctl, nil
}

// runController runs ctl until the consumer has stopped or ctx ends, and
// returns when ctl has stopped.
func runController(ctx context.Context, ctl *autoscale.Controller, c *consumer.Consumer) (wait func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		go func() {
			select {
			case <-c.Done():
			case <-ctx.Done():
			}
			cancel()
		}()
		_ = ctl.Run(ctx) // returns nil when ctx ends
	}()
	return func() { cancel(); <-done }
}

// autoscaleView is the controller's latest decision for /debug/flow.
type autoscaleView struct {
	At              time.Time `json:"at"`
	Target          int       `json:"target_workers"`
	Current         int       `json:"current_workers"`
	Direction       string    `json:"direction"`
	Reason          string    `json:"reason"`
	Busy            int       `json:"busy_workers"`
	Depth           int       `json:"depth"`
	MeanLatency     float64   `json:"sink_latency_seconds"`
	DepthSlope      float64   `json:"depth_slope_per_second"`
	ArrivalRate     float64   `json:"arrival_rate"`
	CompletionRate  float64   `json:"completion_rate"`
	BusyRatio       float64   `json:"busy_ratio"`
	ErrorRate       float64   `json:"error_rate"`
	SinkBottleneck  bool      `json:"sink_bottleneck"`
	DesiredReplicas float64   `json:"desired_replicas"`
	DrainSeconds    float64   `json:"drain_seconds"`
}

func viewOf(d autoscale.Decision) autoscaleView {
	return autoscaleView{
		At: d.At, Target: d.Target, Current: d.Current, Direction: d.Direction, Reason: d.Reason,
		Busy: d.Busy, Depth: d.Depth, MeanLatency: d.MeanLatency.Seconds(), DepthSlope: d.DepthSlope,
		ArrivalRate: d.ArrivalRate, CompletionRate: d.CompletionRate, BusyRatio: d.BusyRatio,
		ErrorRate: d.ErrorRate, SinkBottleneck: d.SinkBottleneck,
		DesiredReplicas: d.Pod.DesiredReplicas, DrainSeconds: d.Pod.DrainSeconds,
	}
}

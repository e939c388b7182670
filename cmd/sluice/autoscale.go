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

// Package control wires the autoscale controller to a consumer: the
// sampler that reads the pipeline's counters for it, and a run helper that
// stops the controller with the consumer. The service, the demo and the
// benchmarks share it.
//
//	ctl, err := control.New(cfg.Autoscale, c, kafka, log, reg)
//	stop := control.Start(ctx, ctl, c) // runs until the consumer stops or ctx ends
//	err = c.Run(ctx)
//	stop() // returns once ctl has stopped
package control

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

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

// New builds the worker controller for c, registering its metrics with reg.
// kafka says whether c reads Kafka (the pod signal is capped at its
// partitions).
func New(cfg autoscale.Config, c *consumer.Consumer, kafka bool, log *slog.Logger, reg prometheus.Registerer) (*autoscale.Controller, error) {
	ctl, err := autoscale.New(cfg, c, sampler(c, kafka), autoscale.WithLogger(log), autoscale.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("autoscale: %w", err)
	}
	return ctl, nil
}

// Run runs ctl until the consumer has stopped or ctx ends, and returns
// when ctl has stopped. It returns nil: the controller has no error of its
// own to report once it was built.
func Run(ctx context.Context, ctl *autoscale.Controller, c *consumer.Consumer) error {
	ctx, cancel := context.WithCancel(ctx)
	var g errgroup.Group
	g.Go(func() error {
		defer cancel()
		select {
		case <-c.Done():
		case <-ctx.Done():
		}
		return nil
	})
	g.Go(func() error {
		defer cancel()
		return ctl.Run(ctx) // nil when ctx ends
	})
	return g.Wait()
}

// Start runs Run in the background; stop ends it and returns once ctl has
// stopped.
func Start(ctx context.Context, ctl *autoscale.Controller, c *consumer.Consumer) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = Run(ctx, ctl, c)
	}()
	return func() { cancel(); <-done }
}

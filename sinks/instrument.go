package sinks

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/sluicehq/sluice/consumer"
)

// Instrumented measures a sink: how long each call takes and how each
// record fared. Put it inside a Breaker so that it measures the sink, not the
// breaker's fast failures:
//
//	sink := sinks.Instrument(httpSink, "http", sinks.WithRegisterer(reg))
//	breaker, err := sinks.NewBreaker(sink, "http", sinks.BreakerConfig{}, sinks.WithRegisterer(reg))
//
// Metrics, all labelled with the sink's name:
//
//	sluice_sink_call_duration_seconds  histogram of one call (a message, or a batch)
//	sluice_sink_call_records           histogram of records per call
//	sluice_sink_results_total{result}  records by result: ok, or the ErrorKind
//
// Safe for concurrent use; Close closes the sink.
type Instrumented struct {
	next    consumer.Sink
	latency prometheus.Observer
	size    prometheus.Observer
	results map[string]prometheus.Counter
}

var (
	_ consumer.Sink      = (*Instrumented)(nil)
	_ consumer.BatchSink = (*Instrumented)(nil)
)

// Instrument wraps next so that its calls are measured under the label
// sink=name.
func Instrument(next consumer.Sink, name string, opts ...Option) *Instrumented {
	o := newOptions(opts)
	f := promauto.With(o.reg)
	labels := prometheus.Labels{"sink": name}
	s := &Instrumented{
		next: next,
		latency: f.NewHistogram(prometheus.HistogramOpts{
			Name:        "sluice_sink_call_duration_seconds",
			Help:        "Time of one sink call (one message, or one batch).",
			ConstLabels: labels,
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05,
				.1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		size: f.NewHistogram(prometheus.HistogramOpts{
			Name:        "sluice_sink_call_records",
			Help:        "Records handed to the sink in one call.",
			ConstLabels: labels,
			Buckets:     []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512},
		}),
		results: make(map[string]prometheus.Counter, len(errorKinds)),
	}
	vec := f.NewCounterVec(prometheus.CounterOpts{
		Name:        "sluice_sink_results_total",
		Help:        "Records handed to the sink, by result: ok, permanent, throttled, unavailable, timeout, canceled or error.",
		ConstLabels: labels,
	}, []string{"result"})
	for _, k := range errorKinds {
		s.results[k] = vec.WithLabelValues(k)
	}
	return s
}

// Deliver delivers m and measures it.
func (s *Instrumented) Deliver(ctx context.Context, m *consumer.Message) error {
	start := time.Now()
	err := s.next.Deliver(ctx, m)
	s.latency.Observe(time.Since(start).Seconds())
	s.size.Observe(1)
	s.results[ErrorKind(err)].Inc()
	return err
}

// DeliverBatch delivers msgs in one call and measures it.
func (s *Instrumented) DeliverBatch(ctx context.Context, msgs []*consumer.Message) (int, error) {
	start := time.Now()
	n, err := consumer.DeliverBatch(ctx, s.next, msgs)
	s.latency.Observe(time.Since(start).Seconds())
	s.size.Observe(float64(len(msgs)))
	if n > 0 {
		s.results["ok"].Add(float64(n))
	}
	if n < len(msgs) {
		s.results[ErrorKind(err)].Inc()
	}
	return n, err
}

// Ping pings the sink when it can be pinged.
func (s *Instrumented) Ping(ctx context.Context) error {
	if p, ok := s.next.(consumer.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

// Close closes the sink.
func (s *Instrumented) Close(ctx context.Context) error { return Close(ctx, s.next) }

package sinks_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluicehq/sluice/consumer"
	"github.com/sluicehq/sluice/sinks"
	"github.com/sluicehq/sluice/sinks/sinktest"
)

// flaky is a sink that fails while down is set, counting its calls.
type flaky struct {
	down  atomic.Bool
	calls atomic.Int64
}

func (f *flaky) Deliver(context.Context, *consumer.Message) error {
	f.calls.Add(1)
	if f.down.Load() {
		return errors.New("500")
	}
	return nil
}

func TestBreakerOpensFailsFastProbesAndCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		sink := &flaky{}
		b, err := sinks.NewBreaker(sink, "test", sinks.BreakerConfig{Failures: 3, OpenTimeout: 10 * time.Second},
			sinks.WithRegisterer(reg), sinks.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		m := sinktest.Messages(1)[0]
		gauge := func() float64 {
			return testutil.ToFloat64(gaugeOf(t, reg, "sluice_sink_breaker_state"))
		}

		sink.down.Store(true)
		for i := range 3 {
			err := b.Deliver(ctx, m)
			if err == nil || consumer.IsUnavailable(err) {
				t.Fatalf("failure %d: %v, want the sink's own error", i+1, err)
			}
		}
		if b.State() != sinks.BreakerOpen || gauge() != 2 {
			t.Fatalf("after 3 failures: state %v, gauge %v; want open, 2", b.State(), gauge())
		}
		// Open: fail fast, without calling the sink, telling how long to wait.
		calls := sink.calls.Load()
		time.Sleep(4 * time.Second)
		err = b.Deliver(ctx, m)
		d, ok := consumer.RetryDelay(err)
		if !errors.Is(err, sinks.ErrBreakerOpen) || !consumer.IsUnavailable(err) || !ok || d != 6*time.Second {
			t.Fatalf("open: %v (retry after %v), want ErrBreakerOpen, unavailable, retry after 6s", err, d)
		}
		if sink.calls.Load() != calls {
			t.Fatal("an open breaker called the sink")
		}
		// After the timeout one probe goes; it fails: open again, and the
		// probe's failure does not count against the record.
		time.Sleep(6 * time.Second)
		if err := b.Deliver(ctx, m); !consumer.IsUnavailable(err) || errors.Is(err, sinks.ErrBreakerOpen) {
			t.Fatalf("failed probe: %v, want the sink's error marked unavailable", err)
		}
		if b.State() != sinks.BreakerOpen {
			t.Fatalf("after a failed probe: %v, want open", b.State())
		}
		// The sink recovers; the next probe closes the breaker.
		sink.down.Store(false)
		time.Sleep(10 * time.Second)
		if err := b.Deliver(ctx, m); err != nil {
			t.Fatalf("probe: %v", err)
		}
		if b.State() != sinks.BreakerClosed || gauge() != 0 {
			t.Fatalf("after a good probe: %v, gauge %v; want closed, 0", b.State(), gauge())
		}
		if got := testutil.ToFloat64(gaugeOf(t, reg, "sluice_sink_breaker_opens_total")); got != 2 {
			t.Errorf("opens = %v, want 2", got)
		}
	})
}

func TestBreakerLetsOneProbeThroughAtATime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var calls atomic.Int64
		failing := true
		sink := consumer.SinkFunc(func(ctx context.Context, _ *consumer.Message) error {
			calls.Add(1)
			if failing {
				return errors.New("500")
			}
			<-release
			return nil
		})
		b, err := sinks.NewBreaker(sink, "test", sinks.BreakerConfig{Failures: 1, OpenTimeout: time.Second},
			sinks.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
		if err != nil {
			t.Fatal(err)
		}
		m := sinktest.Messages(1)[0]
		_ = b.Deliver(context.Background(), m)
		failing = false
		time.Sleep(time.Second)
		done := make(chan error)
		go func() { done <- b.Deliver(context.Background(), m) }()
		synctest.Wait() // the probe is inside the sink
		if b.State() != sinks.BreakerHalfOpen {
			t.Fatalf("state %v, want half-open", b.State())
		}
		err = b.Deliver(context.Background(), m)
		if !errors.Is(err, sinks.ErrBreakerOpen) {
			t.Fatalf("second delivery during the probe: %v, want ErrBreakerOpen", err)
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if calls.Load() != 2 || b.State() != sinks.BreakerClosed {
			t.Errorf("calls %d, state %v; want 2, closed", calls.Load(), b.State())
		}
	})
}

func TestBreakerIgnoresPermanentErrors(t *testing.T) {
	sink := consumer.SinkFunc(func(context.Context, *consumer.Message) error {
		return consumer.Permanent(errors.New("400"))
	})
	b, err := sinks.NewBreaker(sink, "test", sinks.BreakerConfig{Failures: 2})
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		_ = b.Deliver(context.Background(), sinktest.Messages(1)[0])
	}
	if b.State() != sinks.BreakerClosed {
		t.Errorf("state %v after permanent errors, want closed: a bad record says nothing of the sink", b.State())
	}
}

func TestInstrumentCountsResultsByKind(t *testing.T) {
	reg := prometheus.NewRegistry()
	errs := []error{nil, consumer.Permanent(errors.New("400")), consumer.RetryAfter(errors.New("429"), time.Second),
		consumer.Unavailable(errors.New("refused")), context.DeadlineExceeded, errors.New("500"), nil}
	i := 0
	s := sinks.Instrument(consumer.SinkFunc(func(context.Context, *consumer.Message) error {
		err := errs[i]
		i++
		return err
	}), "test", sinks.WithRegisterer(reg))
	for range errs {
		_ = s.Deliver(context.Background(), sinktest.Messages(1)[0])
	}
	want := `
# HELP sluice_sink_results_total Records handed to the sink, by result: ok, permanent, throttled, unavailable, timeout, canceled or error.
# TYPE sluice_sink_results_total counter
sluice_sink_results_total{result="canceled",sink="test"} 0
sluice_sink_results_total{result="error",sink="test"} 1
sluice_sink_results_total{result="ok",sink="test"} 2
sluice_sink_results_total{result="permanent",sink="test"} 1
sluice_sink_results_total{result="throttled",sink="test"} 1
sluice_sink_results_total{result="timeout",sink="test"} 1
sluice_sink_results_total{result="unavailable",sink="test"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "sluice_sink_results_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(reg, "sluice_sink_call_duration_seconds"); n != 1 {
		t.Errorf("latency histogram series = %d, want 1", n)
	}
}

// gaugeOf returns the one metric named name as a collector.
func gaugeOf(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	return collectorFunc(func(ch chan<- prometheus.Metric) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				v := m.GetGauge().GetValue()
				if m.GetCounter() != nil {
					v = m.GetCounter().GetValue()
				}
				ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(name, "", nil, nil), prometheus.GaugeValue, v)
			}
		}
	})
}

type collectorFunc func(ch chan<- prometheus.Metric)

func (f collectorFunc) Describe(chan<- *prometheus.Desc)    {}
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }

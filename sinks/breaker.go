package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/sluicehq/sluice/consumer"
)

// BreakerState is the state of a circuit breaker.
type BreakerState int32

const (
	// BreakerClosed: deliveries go through.
	BreakerClosed BreakerState = iota
	// BreakerHalfOpen: one probe delivery goes through; the rest fail fast.
	BreakerHalfOpen
	// BreakerOpen: every delivery fails fast, without calling the sink.
	BreakerOpen
)

func (s BreakerState) String() string {
	return [...]string{"closed", "half_open", "open"}[s]
}

// ErrBreakerOpen is returned, marked Unavailable and RetryAfter, by a
// Breaker that does not let a delivery through.
var ErrBreakerOpen = errors.New("circuit breaker open")

// BreakerConfig configures a Breaker. The zero value of each field means its
// documented default.
type BreakerConfig struct {
	// Failures is how many deliveries in a row must fail to open the
	// breaker (default 5). Permanent errors and cancellations do not count:
	// they say nothing about the sink's health.
	Failures int
	// OpenTimeout is how long the breaker stays open before it lets one
	// probe through (default 5 s). Shorter finds a recovered sink sooner;
	// longer leaves a struggling one more room.
	OpenTimeout time.Duration
}

func (c *BreakerConfig) setDefaults() {
	if c.Failures == 0 {
		c.Failures = 5
	}
	if c.OpenTimeout == 0 {
		c.OpenTimeout = 5 * time.Second
	}
}

// Validate fills in defaults and reports every invalid field.
func (c *BreakerConfig) Validate() error {
	c.setDefaults()
	var errs []error
	if c.Failures < 1 {
		errs = append(errs, &consumer.FieldError{Field: "Breaker.Failures", Value: c.Failures, Want: "want at least 1"})
	}
	if c.OpenTimeout < time.Millisecond {
		errs = append(errs, &consumer.FieldError{Field: "Breaker.OpenTimeout", Value: c.OpenTimeout, Want: "want at least 1ms"})
	}
	return errors.Join(errs...)
}

// Breaker is a circuit breaker around a sink. After Failures failed
// deliveries in a row it opens: deliveries fail fast with ErrBreakerOpen,
// marked consumer.Unavailable and consumer.RetryAfter (the time left until
// the next probe), so the pipeline holds the lanes without using up the
// records' attempts, the window fills and fetching pauses; nothing is lost
// and the sink is left alone. After OpenTimeout one delivery goes through
// as a probe (half-open): if it succeeds the breaker closes, else it opens
// again. A failed probe's error is marked Unavailable too.
//
// It passes batches through when the sink takes them. Safe for concurrent
// use; Close closes the sink.
type Breaker struct {
	next      consumer.Sink
	name      string
	cfg       BreakerConfig
	log       *slog.Logger
	probeWait time.Duration // what a delivery is told to wait while a probe runs

	state atomic.Int32 // BreakerState, for the gauge and State

	fails atomic.Int32 // consecutive failures

	mu      sync.Mutex
	probeAt time.Time // when the next probe may go (open)
	probing bool      // a probe is in flight (half-open)
	opens   prometheus.Counter
}

var (
	_ consumer.Sink      = (*Breaker)(nil)
	_ consumer.BatchSink = (*Breaker)(nil)
)

// NewBreaker wraps next in a circuit breaker. name labels its metrics
// (sluice_sink_breaker_state, sluice_sink_breaker_opens_total) and logs.
func NewBreaker(next consumer.Sink, name string, cfg BreakerConfig, opts ...Option) (*Breaker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := newOptions(opts)
	b := &Breaker{
		next: next, name: name, cfg: cfg, log: o.log,
		probeWait: max(min(cfg.OpenTimeout/10, time.Second), 10*time.Millisecond),
	}
	f := promauto.With(o.reg)
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "sluice_sink_breaker_state",
		Help:        "Circuit breaker state: 0 closed, 1 half-open (probing), 2 open (failing fast).",
		ConstLabels: prometheus.Labels{"sink": name},
	}, func() float64 { return float64(b.state.Load()) })
	b.opens = f.NewCounter(prometheus.CounterOpts{
		Name:        "sluice_sink_breaker_opens_total",
		Help:        "Times the circuit breaker opened (including after a failed probe).",
		ConstLabels: prometheus.Labels{"sink": name},
	})
	return b, nil
}

// State returns the breaker's state now.
func (b *Breaker) State() BreakerState { return BreakerState(b.state.Load()) }

// Deliver delivers m through the breaker.
func (b *Breaker) Deliver(ctx context.Context, m *consumer.Message) error {
	probe, err := b.allow()
	if err != nil {
		return err
	}
	err = b.next.Deliver(ctx, m)
	return b.record(probe, err)
}

// DeliverBatch delivers msgs through the breaker as one call.
func (b *Breaker) DeliverBatch(ctx context.Context, msgs []*consumer.Message) (int, error) {
	probe, err := b.allow()
	if err != nil {
		return 0, err
	}
	n, err := consumer.DeliverBatch(ctx, b.next, msgs)
	return n, b.record(probe, err)
}

// Ping pings the sink when it can be pinged.
func (b *Breaker) Ping(ctx context.Context) error {
	if p, ok := b.next.(consumer.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

// Close closes the sink.
func (b *Breaker) Close(ctx context.Context) error { return Close(ctx, b.next) }

// allow says whether a delivery may go through now, and whether it is the probe.
func (b *Breaker) allow() (probe bool, err error) {
	if BreakerState(b.state.Load()) == BreakerClosed {
		return false, nil // the hot path: no lock
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch BreakerState(b.state.Load()) {
	case BreakerClosed:
		return false, nil
	case BreakerOpen:
		if wait := time.Until(b.probeAt); wait > 0 {
			return false, b.rejected(wait)
		}
		b.state.Store(int32(BreakerHalfOpen))
		b.probing = true
		b.log.Info("sink circuit breaker half-open: probing", "sink", b.name, "reason", "open_timeout")
		return true, nil
	default: // half-open
		if b.probing {
			return false, b.rejected(b.probeWait)
		}
		b.probing = true
		return true, nil
	}
}

func (b *Breaker) rejected(wait time.Duration) error {
	return consumer.RetryAfter(consumer.Unavailable(fmt.Errorf("%s: %w", b.name, ErrBreakerOpen)), wait)
}

// record notes a delivery's outcome and returns the error to pass on.
func (b *Breaker) record(probe bool, err error) error {
	failed := err != nil && !consumer.IsPermanent(err) && !errors.Is(err, context.Canceled)
	if !probe {
		if !failed {
			if err == nil && b.fails.Load() != 0 {
				b.fails.Store(0)
			}
			return err // the hot path: no lock
		}
		if b.fails.Add(1) >= int32(b.cfg.Failures) {
			b.mu.Lock()
			if BreakerState(b.state.Load()) == BreakerClosed {
				b.open("consecutive_failures", err)
			}
			b.mu.Unlock()
		}
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.probing = false
	switch {
	case failed:
		b.open("probe_failed", err)
		return consumer.Unavailable(err)
	case err == nil:
		b.fails.Store(0)
		b.state.Store(int32(BreakerClosed))
		b.log.Info("sink circuit breaker closed", "sink", b.name, "reason", "probe_succeeded")
	}
	return err // permanent or canceled: no verdict, the next delivery probes
}

// open opens the breaker. Called with b.mu held.
func (b *Breaker) open(reason string, err error) {
	b.state.Store(int32(BreakerOpen))
	b.probing = false
	b.fails.Store(0)
	b.probeAt = time.Now().Add(b.cfg.OpenTimeout)
	b.opens.Inc()
	b.log.Warn("sink circuit breaker open: failing fast", "sink", b.name, "reason", reason,
		"retry_in", b.cfg.OpenTimeout, "error", err)
}

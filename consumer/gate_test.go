package consumer_test

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/consumer"
)

// gate is a sink that lets deliveries through to the sink behind it up to
// a limit the test sets, and holds every further one inside Deliver until
// the limit is raised (or the delivery's context ends). It stops the
// pipeline at a known point, whatever the scheduling: exactly limit
// deliveries made, and the next ones in flight, so a stop, a join or a
// revoke always lands in the middle of the stream.
type gate struct {
	sink consumer.Sink

	mu      sync.Mutex
	limit   int
	passed  int           // deliveries let through
	held    int           // deliveries waiting inside Deliver now
	changed chan struct{} // closed and replaced at every change of the above
}

func newGate(sink consumer.Sink, limit int) *gate {
	return &gate{sink: sink, limit: limit, changed: make(chan struct{})}
}

// signal wakes the waiters; g.mu is held.
func (g *gate) signal() {
	close(g.changed)
	g.changed = make(chan struct{})
}

func (g *gate) Deliver(ctx context.Context, m *consumer.Message) error {
	g.mu.Lock()
	for g.passed >= g.limit {
		g.held++
		g.signal()
		ch := g.changed
		g.mu.Unlock()
		var err error
		select {
		case <-ch:
		case <-ctx.Done():
			err = ctx.Err()
		}
		g.mu.Lock()
		g.held--
		g.signal()
		if err != nil {
			g.mu.Unlock()
			return err
		}
	}
	g.passed++
	g.signal()
	g.mu.Unlock()
	return g.sink.Deliver(ctx, m)
}

// setLimit lets deliveries through until n have passed in all.
func (g *gate) setLimit(n int) {
	g.mu.Lock()
	g.limit = n
	g.signal()
	g.mu.Unlock()
}

// raise lets d more deliveries through.
func (g *gate) raise(d int) {
	g.mu.Lock()
	g.limit += d
	g.signal()
	g.mu.Unlock()
}

// open lets everything through from now on.
func (g *gate) open() { g.setLimit(math.MaxInt) }

func (g *gate) state() (passed, held, limit int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.passed, g.held, g.limit
}

// waitHeld blocks until the limit is reached and at least one more
// delivery is waiting at the gate (so the stream has not ended there), or
// fails the test after timeout.
func (g *gate) waitHeld(t *testing.T, timeout time.Duration) {
	t.Helper()
	g.waitUntil(t, "deliveries to stop at the gate", timeout, func(passed, held int) bool {
		return passed >= g.limit && held > 0
	})
}

// waitUntil blocks until cond(passed, held) holds, or fails the test.
func (g *gate) waitUntil(t *testing.T, what string, timeout time.Duration, cond func(passed, held int) bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		g.mu.Lock()
		ok, ch := cond(g.passed, g.held), g.changed
		passed, held, limit := g.passed, g.held, g.limit
		g.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s: %d passed (limit %d), %d held", what, passed, limit, held)
		}
	}
}

// counterWith returns the value of the series of a counter family whose
// one label has the given value.
func counterWith(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if ls := m.GetLabel(); len(ls) == 1 && ls[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
		t.Fatalf("metric %s has no series %q", name, label)
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

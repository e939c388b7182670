package autoscale

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// fakePool records resizes.
type fakePool struct {
	mu      sync.Mutex
	n       int
	resizes []int
}

func (p *fakePool) Size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

func (p *fakePool) Resize(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n = n
	p.resizes = append(p.resizes, n)
}

func (p *fakePool) history() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int(nil), p.resizes...)
}

// fluid is a pipeline in the test's clock: rate records/s arrive, the pool
// serves them at lat each.
type fluid struct {
	pool  *fakePool
	rate  float64
	lat   time.Duration
	last  time.Time
	depth float64
	s     Sample
	calls int
}

func (f *fluid) sample() Sample {
	now := time.Now()
	f.calls++
	if !f.last.IsZero() {
		dt := now.Sub(f.last).Seconds()
		n := float64(f.pool.Size())
		f.depth += f.rate * dt
		done := min(f.depth, n/f.lat.Seconds()*dt)
		f.depth -= done
		f.s.Arrived += uint64(f.rate * dt)
		f.s.Completed += uint64(done)
		f.s.SinkTime += time.Duration(done * float64(f.lat))
		f.s.BusyTime += time.Duration(done * float64(f.lat))
		f.s.Busy = int(min(n, done*f.lat.Seconds()/dt+0.5))
	}
	f.last = now
	f.s.At = time.Time{} // let the Controller stamp it
	f.s.Workers = 0      // and fill it from the pool
	f.s.Depth = int(f.depth)
	return f.s
}

func TestControllerRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pool := &fakePool{n: 1}
		load := &fluid{pool: pool, rate: 1000, lat: 10 * time.Millisecond}
		reg := prometheus.NewRegistry()
		var logs bytes.Buffer
		log := slog.New(slog.NewJSONHandler(&logs, nil))
		c, err := New(Config{}, pool, load.sample, WithLogger(log), WithRegisterer(reg))
		if err != nil {
			t.Fatal(err)
		}
		if d := c.View(); d.Target != 0 {
			t.Errorf("View before Run = %+v, want the zero Decision", d)
		}

		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()

		synctest.Wait()
		if err := c.Run(ctx); !errors.Is(err, ErrRunning) {
			t.Errorf("second Run = %v, want ErrRunning", err)
		}

		time.Sleep(10 * time.Second)
		synctest.Wait()
		// The ramp from 1 drains a backlog: it overshoots 10.5 a little.
		if got := pool.Size(); got < 11 || got > 13 {
			t.Errorf("pool size after 10 s = %d, want 11 to 13 (resizes %v)", got, pool.history())
		}
		time.Sleep(35 * time.Second)
		synctest.Wait()

		// After the scale-down window: 1000 rec/s × 10 ms × 1.05 = 10.5.
		if got := pool.Size(); got != 11 {
			t.Errorf("pool size after 45 s = %d, want 11 (resizes %v)", got, pool.history())
		}
		if load.calls != 46 {
			t.Errorf("samples in 45 s = %d, want 46 (one at start, one per Interval)", load.calls)
		}
		v := c.View()
		if v.Target != pool.Size() || v.MeanLatency != 10*time.Millisecond {
			t.Errorf("View = %+v", v)
		}

		// Metrics: every (direction, reason) series exists; the decisions add up.
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		series := 0
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				switch {
				case mf.GetName() == MetricDecisions:
					series++
					got[mf.GetName()] += m.GetCounter().GetValue()
				default:
					got[mf.GetName()] = m.GetGauge().GetValue()
				}
			}
		}
		if want := len(directions) * len(reasons); series != want {
			t.Errorf("%s series = %d, want %d pre-created", MetricDecisions, series, want)
		}
		if got[MetricDecisions] != 46 {
			t.Errorf("decisions counted = %v, want 46", got[MetricDecisions])
		}
		if got[MetricTargetWorkers] != 11 || got[MetricSinkLatency] != 0.01 {
			t.Errorf("gauges = %v", got)
		}
		for _, name := range []string{MetricCurrentWorkers, MetricBusyWorkers, MetricDepthSlope,
			MetricSinkBottleneck, MetricDesiredReplicas, MetricDrainSeconds} {
			if _, ok := got[name]; !ok {
				t.Errorf("metric %s not exported", name)
			}
		}

		// One log line per resize, each with a reason.
		lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
		if len(lines) != len(pool.history()) {
			t.Errorf("%d log lines for %d resizes:\n%s", len(lines), len(pool.history()), logs.String())
		}
		for _, l := range lines {
			var rec map[string]any
			if err := json.Unmarshal([]byte(l), &rec); err != nil {
				t.Fatal(err)
			}
			if rec["msg"] != "autoscale resize" || rec["reason"] == nil || rec["from"] == nil || rec["to"] == nil {
				t.Errorf("log line %s", l)
			}
		}

		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run after cancel = %v, want nil", err)
		}
		// synctest.Test fails if any goroutine started in the bubble is
		// still running when this function returns.
	})
}

func TestControllerRunAgainAfterStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pool := &fakePool{n: 4}
		load := &fluid{pool: pool, rate: 100, lat: time.Millisecond}
		c, err := New(Config{}, pool, load.sample)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			ctx, cancel := context.WithTimeout(t.Context(), 3500*time.Millisecond)
			if err := c.Run(ctx); err != nil {
				t.Fatal(err)
			}
			cancel()
		}
		if load.calls != 8 {
			t.Errorf("samples = %d, want 4 per run", load.calls)
		}
	})
}

func TestNewErrors(t *testing.T) {
	pool := &fakePool{n: 1}
	sample := func() Sample { return Sample{} }
	if _, err := New(Config{Min: -1}, pool, sample); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("bad config: %v", err)
	}
	if _, err := New(Config{}, nil, sample); err == nil {
		t.Error("nil pool accepted")
	}
	reg := prometheus.NewRegistry()
	if _, err := New(Config{}, pool, sample, WithRegisterer(reg)); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{}, pool, sample, WithRegisterer(reg)); err == nil {
		t.Error("registering twice on one registry should fail")
	}
}

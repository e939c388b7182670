package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/autoscale"
	"github.com/sluicehq/sluice/consumer"
	"github.com/sluicehq/sluice/internal/control"
)

// demoSink stands in for a downstream service whose speed changes: fast,
// then slow (so the window fills and partitions pause), then fast again.
// Like a real service it has a capacity: up to demoSinkCapacity calls at
// once take the base latency, more queue and take proportionally longer,
// so more workers past that only raise the latency (what the controller
// has to find). It records every record id it sees, to count lost and
// duplicate records, and how long each call took, by phase.
type demoSink struct {
	start    time.Time
	duration time.Duration
	inflight atomic.Int64
	mu       sync.Mutex
	seen     map[uint64]int
	calls    [3][]time.Duration // call durations in each phase (fast, slow, fast again)
}

// demoSinkCapacity is how many calls the demo sink serves at once at its
// base latency.
const demoSinkCapacity = 8

// latency is the base latency of the moment: 0.2ms, then 5ms from 20 % of
// the run to 65 %, then 0.5ms.
func (s *demoSink) latency() time.Duration {
	return [...]time.Duration{200 * time.Microsecond, 5 * time.Millisecond, 500 * time.Microsecond}[s.phase()]
}

// phase is 0 before 20 % of the run, 1 (slow) until 65 %, then 2.
func (s *demoSink) phase() int {
	switch f := float64(time.Since(s.start)) / float64(s.duration); {
	case f < 0.2:
		return 0
	case f < 0.65:
		return 1
	default:
		return 2
	}
}

func (s *demoSink) Deliver(ctx context.Context, m *consumer.Message) error {
	n := s.inflight.Add(1)
	defer s.inflight.Add(-1)
	start, phase := time.Now(), s.phase()
	d := time.Duration(float64(s.latency()) * max(1, float64(n)/demoSinkCapacity))
	t := time.NewTimer(d)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
		return ctx.Err()
	}
	id := binary.BigEndian.Uint64(m.Value)
	took := time.Since(start)
	s.mu.Lock()
	s.seen[id]++
	s.calls[phase] = append(s.calls[phase], took)
	s.mu.Unlock()
	return nil
}

// tally checks every produced id against what the sink saw.
func (s *demoSink) tally(res *demoResult) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range uint64(res.Produced) {
		n := s.seen[id]
		if n == 0 {
			res.Lost++
		}
		if n > 1 {
			res.Duplicates += n - 1
		}
	}
	for _, n := range s.seen {
		res.Delivered += n
	}
	for i, calls := range s.calls {
		if len(calls) > 0 {
			slices.Sort(calls)
			res.Phases[i].SinkP99Ms = float64(calls[len(calls)*99/100].Microseconds()) / 1000
		}
	}
}

// runDemo runs the consumer and the producer, calls status every second
// until the duration has passed (the producer runs until then, so there is
// load to the end), lets the pipeline catch up with everything produced
// (30 s at most), and shuts the consumer down the way SIGTERM does.
func runDemo(ctx context.Context, c *consumer.Consumer, duration time.Duration, produced *atomic.Int64,
	produce func(context.Context) error, status func(), stderr io.Writer) {
	cctx, stopConsumer := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(cctx) }()
	prodCtx, stopProd := context.WithTimeout(ctx, duration)
	defer stopProd()
	prodDone := make(chan error, 1)
	go func() { prodDone <- produce(prodCtx) }()

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	deadline := time.After(duration)
loop:
	for {
		select {
		case <-tick.C:
			status()
		case <-deadline:
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	stopProd()
	if err := <-prodDone; err != nil {
		fmt.Fprintln(stderr, "demo: producer:", err)
	}
	catchUp := time.After(30 * time.Second)
wait:
	for int64(c.Stats().Completed) < produced.Load() {
		select {
		case <-tick.C:
			status()
		case <-catchUp:
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	stopConsumer()
	if err := <-runErr; err != nil {
		fmt.Fprintln(stderr, "demo: consumer:", err)
	}
	status()
}

type demoResult struct {
	Produced   int64  `json:"produced"`
	Delivered  int    `json:"delivered"`
	Lost       int    `json:"lost"`
	Duplicates int    `json:"duplicates"`
	Pauses     uint64 `json:"pauses"`
	Resumes    uint64 `json:"resumes"`
	WorkersMin int    `json:"workers_min"`
	WorkersMax int    `json:"workers_max"`
	// Phases: the sink fast (0.2ms), slow (5ms), fast again (0.5ms).
	Phases            [3]demoPhase `json:"phases"`
	PeakWindowBytes   int64        `json:"peak_window_bytes"`
	BudgetBytes       int64        `json:"budget_bytes"`
	PeakWindowRecords int64        `json:"peak_window_records"`
	BudgetRecords     int64        `json:"budget_records"`
}

// demoPhase sums up one phase of the demo sink from the status lines (one a
// second) and its calls.
type demoPhase struct {
	Seconds     int     `json:"seconds"`
	Rate        float64 `json:"rate"`         // records delivered per second
	WorkersMean float64 `json:"workers_mean"` // pool size, mean of the seconds
	WorkersMax  int     `json:"workers_max"`
	SinkP99Ms   float64 `json:"sink_p99_ms"` // 99th percentile of the sink's call time
	SinkLimit   int     `json:"sink_limit"`  // the controller's last ceiling in the phase (the sink takes at most this many); 0: none
	workers     int
}

// demo runs the real pipeline against an embedded Kafka cluster, a bursty
// producer and a sink whose speed changes, printing a status line a second
// and, last, a JSON summary checked against every produced record.
func demo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	duration := fs.Duration("duration", 30*time.Second, "how long to produce and consume")
	partitions := fs.Int("partitions", 6, "partitions of the demo topic")
	rate := fs.Int("rate", 1500, "base produce rate, records/s (bursts are 10x)")
	workersMin := fs.Int("workers-min", 1, "fewest workers")
	workersMax := fs.Int("workers-max", 64, "most workers")
	fixed := fs.Bool("fixed", false, "a fixed pool of --workers-max instead of the autoscale controller")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(*partitions), "demo"))
	if err != nil {
		fmt.Fprintln(stderr, "demo: embedded kafka:", err)
		return 1
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()

	cfg := consumer.Config{
		MaxRecords: 20_000, MaxBytes: 2 << 20, Workers: *workersMin,
		CommitInterval: 200 * time.Millisecond,
		Kafka: consumer.KafkaConfig{Brokers: brokers, Topics: []string{"demo"}, Group: "demo",
			FetchMaxWait: 100 * time.Millisecond},
	}
	if *fixed {
		cfg.Workers = *workersMax
	}
	sink := &demoSink{start: time.Now(), duration: *duration, seen: map[uint64]int{}}
	c, err := consumer.New(cfg, sink, consumer.WithLogger(log))
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	pool := fmt.Sprintf("a fixed pool of %d workers", *workersMax)
	stopController := func() {}
	var ctl *autoscale.Controller
	if !*fixed {
		ctl, err = control.New(autoscale.Config{Min: *workersMin, Max: *workersMax, ScaleDownWindow: 5 * time.Second}, c, true, log, prometheus.NewRegistry())
		if err != nil {
			fmt.Fprintln(stderr, "demo:", err)
			return 2
		}
		stopController = control.Start(ctx, ctl, c)
		defer stopController()
		pool = fmt.Sprintf("%d to %d workers sized by the autoscale controller", *workersMin, *workersMax)
	}
	fmt.Fprintf(stdout, "sluice-dev demo: embedded Kafka at %s, topic demo (%d partitions), budget %d records / %s, %s\n",
		brokers[0], *partitions, cfg.MaxRecords, humanize.IBytes(uint64(cfg.MaxBytes)), pool)
	fmt.Fprintf(stdout, "sink: %d calls at once at its base latency, slower beyond (more workers do not help past its limit); "+
		"base 0.2ms, then 5ms from 20%% of the run (watch the window fill and partitions pause), then 0.5ms from 65%% (watch them resume)\n",
		demoSinkCapacity)

	var produced atomic.Int64
	var last uint64
	start := time.Now()
	minW, maxW := cfg.Workers, cfg.Workers
	var phases [3]demoPhase
	status := func() {
		st := c.Stats()
		minW, maxW = min(minW, st.Workers), max(maxW, st.Workers)
		ph := &phases[sink.phase()]
		if time.Since(start) <= *duration { // the run proper, not the catch-up after it
			ph.Seconds++
			ph.Rate += float64(st.Completed - last)
			ph.workers += st.Workers
			ph.WorkersMax = max(ph.WorkersMax, st.Workers)
		}
		fl := c.FlowState()
		scale := ""
		if ctl != nil {
			v := ctl.View()
			scale = " " + v.Reason
			if v.SinkBottleneck {
				ph.SinkLimit = v.Ceiling
				scale += fmt.Sprintf(", sink limit <= %d", v.Ceiling)
			}
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms) // once a second: the stop is negligible
		fmt.Fprintf(stdout, "%4.0fs  produced=%-7d delivered=%-7d rate=%5d/s  window=%3.0f%% (%d rec, %s)  paused=%d/%d%s  workers=%d busy=%d%s  sink=%s  heap=%s\n",
			time.Since(start).Seconds(), produced.Load(), st.Completed, st.Completed-last,
			fl.Window.Fill*100, fl.Window.Records, humanize.IBytes(uint64(fl.Window.Bytes)),
			fl.Paused, len(fl.Partitions), pauseReasons(fl), st.Workers, st.Busy, scale, sink.latency(), humanize.IBytes(ms.HeapInuse))
		last = st.Completed
	}
	runDemo(ctx, c, *duration, &produced, func(ctx context.Context) error {
		return produceBursty(ctx, brokers, *rate, &produced)
	}, status, stderr)

	st := c.Stats()
	res := demoResult{
		Produced: produced.Load(), Pauses: st.Pauses, Resumes: st.Resumes,
		WorkersMin: minW, WorkersMax: maxW,
		PeakWindowBytes: c.Window().PeakBytes(), BudgetBytes: c.Window().MaxBytes(),
		PeakWindowRecords: c.Window().PeakRecords(), BudgetRecords: c.Window().MaxRecords(),
	}
	for i, ph := range phases {
		if ph.Seconds > 0 {
			ph.Rate = math.Round(ph.Rate / float64(ph.Seconds))
			ph.WorkersMean = math.Round(float64(ph.workers)/float64(ph.Seconds)*10) / 10
		}
		res.Phases[i] = ph
	}
	sink.tally(&res)
	b, _ := json.Marshal(res)
	fmt.Fprintln(stdout, string(b))
	if res.Lost > 0 {
		return 1
	}
	return 0
}

// pauseReasons says why the paused partitions are paused, and for how long
// the longest has been: " (window_full 6, 7s)"; "" when none is.
func pauseReasons(fl consumer.FlowState) string {
	counts := map[string]int{}
	var reasons []string
	var since time.Time
	for _, p := range fl.Partitions {
		if !p.Paused {
			continue
		}
		if counts[p.PauseReason] == 0 {
			reasons = append(reasons, p.PauseReason)
		}
		counts[p.PauseReason]++
		if p.PausedSince != nil && (since.IsZero() || p.PausedSince.Before(since)) {
			since = *p.PausedSince
		}
	}
	if len(reasons) == 0 {
		return ""
	}
	slices.Sort(reasons)
	var b strings.Builder
	b.WriteString(" (")
	for i, r := range reasons {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", r, counts[r])
	}
	if !since.IsZero() {
		fmt.Fprintf(&b, ", %.0fs", time.Since(since).Seconds())
	}
	b.WriteString(")")
	return b.String()
}

// produceBursty produces numbered 100-byte records to the demo topic (see
// bursty).
func produceBursty(ctx context.Context, brokers []string, rate int, produced *atomic.Int64) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("demo"),
		kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	var pending sync.WaitGroup
	bursty(ctx, rate, produced, func(id uint64, value []byte, stored func()) {
		pending.Add(1)
		cl.Produce(context.Background(), &kgo.Record{Key: fmt.Appendf(nil, "k%d", id%50), Value: value},
			func(_ *kgo.Record, err error) {
				defer pending.Done()
				if err == nil {
					stored()
				}
			})
	})
	pending.Wait()
	return nil
}

// bursty hands send numbered 100-byte values (the id in the first 8 bytes)
// at the base rate per second, with a burst of 10x for one second in every
// four, until ctx ends. send calls stored once the broker has the value;
// produced follows the contiguous prefix of stored ids, so the ids
// 0..produced-1 were all stored and the demo can check each of them.
func bursty(ctx context.Context, rate int, produced *atomic.Int64, send func(id uint64, value []byte, stored func())) {
	var mu sync.Mutex
	done := map[uint64]bool{}
	var contiguous, next uint64
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
		r := rate
		if int(time.Since(start).Seconds())%4 == 1 {
			r *= 10
		}
		for range r / 100 {
			v := make([]byte, 100)
			binary.BigEndian.PutUint64(v, next)
			id := next
			next++
			send(id, v, func() {
				mu.Lock()
				defer mu.Unlock()
				done[id] = true
				for done[contiguous] {
					delete(done, contiguous)
					contiguous++
				}
				produced.Store(int64(contiguous))
			})
		}
	}
}

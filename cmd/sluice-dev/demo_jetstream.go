package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/autoscale"
	"github.com/sluicehq/sluice/consumer"
	"github.com/sluicehq/sluice/internal/control"
)

// demoJetStreamResult is the demo's summary: demoResult plus what the
// JetStream source did.
type demoJetStreamResult struct {
	demoResult
	Pulls           int64   `json:"pulls"`
	AvgPullRecords  float64 `json:"avg_pull_records"`
	InProgress      int64   `json:"in_progress_sent"`
	ServerRedeliver int     `json:"server_redelivered"`
	MaxLag          int64   `json:"max_lag"`
}

// demoJetStream is `sluice-dev demo --source jetstream`: the real pipeline
// against an embedded nats-server with JetStream (file store in a temp
// dir), a bursty publisher and the demo's sink whose speed changes, with a
// status line a second and, last, a JSON summary checked against every
// published message. AckWait is short (5 s) so that the slow phase, when
// messages wait in the window longer than half of it, shows InProgress at
// work: no message is redelivered.
func demoJetStream(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo --source jetstream", flag.ContinueOnError)
	fs.SetOutput(stderr)
	source := fs.String("source", "jetstream", "the source: jetstream")
	duration := fs.Duration("duration", 30*time.Second, "how long to publish and consume")
	subjects := fs.Int("subjects", 50, "subjects the messages are spread over (each an ordering key)")
	rate := fs.Int("rate", 1500, "base publish rate, messages/s (bursts are 10x)")
	workersMin := fs.Int("workers-min", 1, "fewest workers")
	workersMax := fs.Int("workers-max", 64, "most workers")
	fixed := fs.Bool("fixed", false, "a fixed pool of --workers-max instead of the autoscale controller")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *source != "jetstream" {
		fmt.Fprintf(stderr, "demo: --source %q: this demo runs jetstream\n", *source)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	dir, err := os.MkdirTemp("", "sluice-demo-jetstream-")
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		fmt.Fprintln(stderr, "demo: embedded nats-server:", err)
		return 1
	}
	go srv.Start()
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	if !srv.ReadyForConnections(10 * time.Second) {
		fmt.Fprintln(stderr, "demo: embedded nats-server did not start")
		return 1
	}
	url := srv.ClientURL()
	nc, err := nats.Connect(url)
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "DEMO", Subjects: []string{"demo.>"}}); err != nil {
		fmt.Fprintln(stderr, "demo: create stream:", err)
		return 1
	}

	cfg := consumer.Config{
		Source: consumer.SourceJetStream, MaxRecords: 20_000, MaxBytes: 2 << 20, Workers: *workersMin,
		NATS: consumer.NATSConfig{URL: url, Stream: "DEMO", Consumer: "demo", AckWait: 5 * time.Second,
			InfoInterval: time.Second},
	}
	if *fixed {
		cfg.Workers = *workersMax
	}
	reg := prometheus.NewRegistry()
	sink := &demoSink{start: time.Now(), duration: *duration, seen: map[uint64]int{}}
	c, err := consumer.New(cfg, sink, consumer.WithLogger(log), consumer.WithRegisterer(reg))
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	pool := fmt.Sprintf("a fixed pool of %d workers", *workersMax)
	if !*fixed {
		ctl, err := control.New(autoscale.Config{Min: *workersMin, Max: *workersMax, ScaleDownWindow: 5 * time.Second},
			c, false, log, prometheus.NewRegistry())
		if err != nil {
			fmt.Fprintln(stderr, "demo:", err)
			return 2
		}
		stopController := control.Start(ctx, ctl, c)
		defer stopController()
		pool = fmt.Sprintf("%d to %d workers sized by the autoscale controller", *workersMin, *workersMax)
	}
	fmt.Fprintf(stdout, "sluice-dev demo: embedded nats-server (JetStream) at %s, stream DEMO (%d subjects), durable pull consumer \"demo\", AckWait 5s, budget %d records / %s, %s\n",
		url, *subjects, cfg.MaxRecords, humanize.IBytes(uint64(cfg.MaxBytes)), pool)
	fmt.Fprintln(stdout, "sink latency: 0.2ms, then 5ms from 25% of the run (watch pulls stop and shrink, InProgress keep held messages alive), then 0.5ms from 60%")

	var produced atomic.Int64
	var last uint64
	var maxLag int64
	start := time.Now()
	minW, maxW := cfg.Workers, cfg.Workers
	status := func() {
		st := c.Stats()
		minW, maxW = min(minW, st.Workers), max(maxW, st.Workers)
		maxLag = max(maxLag, st.Lag)
		fl := c.FlowState()
		m := gatherDemoMetrics(reg)
		paused := "pulling"
		if fl.Paused > 0 {
			paused = "paused "
		}
		fmt.Fprintf(stdout, "%4.0fs  published=%-7d delivered=%-7d rate=%5d/s  lag=%-6d window=%3.0f%% (%d msg, %s)  %s pulls=%-5d avg_pull=%-6.0f in_progress=%-6d workers=%d busy=%d  sink=%s\n",
			time.Since(start).Seconds(), produced.Load(), st.Completed, st.Completed-last, st.Lag,
			fl.Window.Fill*100, fl.Window.Records, humanize.IBytes(uint64(fl.Window.Bytes)), paused,
			m.pulls, m.avgPull(), m.inProgress, st.Workers, st.Busy, sink.latency())
		last = st.Completed
	}
	runDemo(ctx, c, *duration, &produced, func(ctx context.Context) error {
		return publishBursty(ctx, js, *rate, *subjects, &produced)
	}, status, stderr)

	st := c.Stats()
	m := gatherDemoMetrics(reg)
	res := demoJetStreamResult{demoResult: demoResult{
		Produced: produced.Load(), Pauses: st.Pauses, Resumes: st.Resumes,
		WorkersMin: minW, WorkersMax: maxW,
		PeakWindowBytes: c.Window().PeakBytes(), BudgetBytes: c.Window().MaxBytes(),
		PeakWindowRecords: c.Window().PeakRecords(), BudgetRecords: c.Window().MaxRecords(),
	}, Pulls: m.pulls, AvgPullRecords: float64(int(m.avgPull()*10)) / 10, InProgress: m.inProgress, MaxLag: maxLag}
	if cons, err := js.Consumer(context.Background(), "DEMO", "demo"); err == nil {
		if info, err := cons.Info(context.Background()); err == nil {
			res.ServerRedeliver = info.NumRedelivered
		}
	}
	sink.tally(&res.demoResult)
	b, _ := json.Marshal(res)
	fmt.Fprintln(stdout, string(b))
	if res.Lost > 0 {
		return 1
	}
	return 0
}

// publishBursty publishes numbered 100-byte messages over the subjects: the
// base rate, with a burst of 10x for one second in every four. The counter
// moves only when the stream acknowledged a message, so the ids
// 0..produced-1 were all stored.
func publishBursty(ctx context.Context, js jetstream.JetStream, rate, subjects int, produced *atomic.Int64) error {
	var pending sync.WaitGroup
	var firstErr atomic.Pointer[error]
	bursty(ctx, rate, produced, func(id uint64, value []byte, stored func()) {
		f, err := js.PublishAsync(fmt.Sprintf("demo.k%d", id%uint64(subjects)), value,
			jetstream.WithStallWait(5*time.Second))
		if err != nil {
			firstErr.CompareAndSwap(nil, &err)
			return
		}
		pending.Go(func() {
			select {
			case <-f.Ok():
				stored()
			case <-f.Err():
			}
		})
	})
	pending.Wait()
	if p := firstErr.Load(); p != nil {
		return *p
	}
	return nil
}

// demoMetrics is what the status line reads from the JetStream source's
// metrics.
type demoMetrics struct {
	pulls, inProgress int64
	pulled            float64
}

func (m demoMetrics) avgPull() float64 {
	if m.pulls == 0 {
		return 0
	}
	return m.pulled / float64(m.pulls)
}

func gatherDemoMetrics(reg *prometheus.Registry) demoMetrics {
	var m demoMetrics
	mfs, err := reg.Gather()
	if err != nil {
		return m
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case "sluice_nats_pull_records":
			h := mf.GetMetric()[0].GetHistogram()
			m.pulls, m.pulled = int64(h.GetSampleCount()), h.GetSampleSum()
		case "sluice_nats_acks_total":
			for _, s := range mf.GetMetric() {
				for _, l := range s.GetLabel() {
					if l.GetName() == "kind" && l.GetValue() == "in_progress" {
						m.inProgress = int64(s.GetCounter().GetValue())
					}
				}
			}
		}
	}
	return m
}

// demoSource returns the value of a --source (or -source) flag in args,
// "" when there is none, so that `sluice-dev demo` can hand a jetstream demo
// to demoJetStream before parsing its own flags.
func demoSource(args []string) string {
	for i, a := range args {
		if a == "--" {
			break
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "source" {
			continue
		}
		if hasVal {
			return val
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

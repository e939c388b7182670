package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sluicehq/sluice/autoscale"
	"github.com/sluicehq/sluice/autoscale/sim"
	"github.com/sluicehq/sluice/consumer"
	"github.com/sluicehq/sluice/internal/control"
)

// benchWorkers runs the real pipeline on an embedded broker with a sink of
// fixed latency, once with the autoscale controller and once with a large
// fixed pool, and reports the throughput each reaches as a share of the
// bound workers / latency. It writes the controller's run as an SVG plot.
func benchWorkers(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench workers", flag.ContinueOnError)
	fs.SetOutput(stderr)
	duration := fs.Duration("duration", 30*time.Second, "length of each run")
	latency := fs.Duration("latency", time.Millisecond, "sink latency per message")
	records := fs.Int("records", 1_500_000, "records to preload (each run stops early if it consumes them all)")
	partitions := fs.Int("partitions", 16, "partitions")
	keys := fs.Int("keys", 4096, "distinct keys")
	maxWorkers := fs.Int("max", 1024, "most workers (the controller's bound, and the fixed pool's size)")
	svg := fs.String("svg", "", "write the controller's run as an SVG plot to this file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	type result struct {
		Mode            string  `json:"mode"`
		Workers         float64 `json:"workers_steady"`
		Throughput      float64 `json:"throughput_rps"`
		MeasuredLatency float64 `json:"sink_latency_measured_ms"`
		ShareNominal    float64 `json:"share_of_bound"`
		ShareMeasured   float64 `json:"share_of_bound_measured_latency"`
		Delivered       uint64  `json:"delivered"`
	}
	var results []result
	for _, mode := range []string{"adaptive", "fixed"} {
		topic := "workers"
		cl, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(*partitions), topic))
		if err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		brokers := cl.ListenAddrs()
		if err := preload(ctx, brokers, topic, *records, 100, *keys, false); err != nil {
			cl.Close()
			fmt.Fprintln(stderr, "bench: preload:", err)
			return 1
		}
		sink := consumer.SinkFunc(func(ctx context.Context, _ *consumer.Message) error {
			t := time.NewTimer(*latency)
			defer t.Stop()
			select {
			case <-t.C:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		cfg := consumer.Config{Workers: 1, Kafka: consumer.KafkaConfig{Brokers: brokers, Topics: []string{topic}, Group: "workers"}}
		if mode == "fixed" {
			cfg.Workers = *maxWorkers
		}
		c, err := consumer.New(cfg, sink, consumer.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			cl.Close()
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		rctx, stop := context.WithCancel(ctx)
		runErr := make(chan error, 1)
		go func() { runErr <- c.Run(rctx) }()
		stopCtl := func() {}
		if mode == "adaptive" {
			ctl, err := control.New(autoscale.Config{Min: 1, Max: *maxWorkers}, c, true, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
			if err != nil {
				stop()
				cl.Close()
				fmt.Fprintln(stderr, "bench:", err)
				return 2
			}
			stopCtl = control.Start(rctx, ctl, c)
		}
		var points []sim.Point
		start := time.Now()
		prev := c.Stats()
		tick := time.NewTicker(time.Second)
		for time.Since(start) < *duration && prev.Completed < uint64(*records) && ctx.Err() == nil {
			<-tick.C
			st := c.Stats()
			done := float64(st.Completed - prev.Completed)
			lat := 0.0
			if done > 0 {
				lat = (st.SinkTime - prev.SinkTime).Seconds() / done
			}
			points = append(points, sim.Point{
				T: time.Since(start).Seconds(), Workers: st.Workers, Depth: st.Depth, Lag: st.Lag,
				Done: done, Oracle: float64(st.Workers) / latency.Seconds(), Latency: lat,
				Optimum: done * latency.Seconds(),
			})
			fmt.Fprintf(stdout, "%-8s %3.0fs  workers=%-5d throughput=%7.0f/s  sink=%.2fms  depth=%d\n",
				mode, time.Since(start).Seconds(), st.Workers, done, lat*1000, st.Depth)
			prev = st
		}
		tick.Stop()
		stopCtl()
		stop()
		<-runErr
		cl.Close()
		// Steady state: the second half of the run.
		half := points[len(points)/2:]
		var w, thr, lat float64
		for _, p := range half {
			w += float64(p.Workers)
			thr += p.Done
			lat += p.Latency
		}
		n := float64(len(half))
		w, thr, lat = w/n, thr/n, lat/n
		results = append(results, result{
			Mode: mode, Workers: round1(w), Throughput: round1(thr), MeasuredLatency: round3(lat * 1000),
			ShareNominal: round3(thr * latency.Seconds() / w), ShareMeasured: round3(thr * lat / w),
			Delivered: prev.Completed,
		})
		if mode == "adaptive" && *svg != "" {
			f, err := os.Create(*svg)
			if err == nil {
				cmp := sim.Comparison{
					Scenario: sim.Scenario{Name: "real-1ms", Title: fmt.Sprintf("real pipeline, embedded broker, %s sink, %d partitions", *latency, *partitions)},
					Results:  []sim.Result{{Scenario: "real-1ms", Controller: "adaptive", Points: points}},
				}
				err = sim.WriteSVG(f, cmp, *maxWorkers)
				f.Close()
			}
			if err != nil {
				fmt.Fprintln(stderr, "bench: svg:", err)
			}
		}
	}
	fmt.Fprintf(stdout, "\n%-9s %10s %12s %12s %10s\n", "pool", "workers", "records/s", "sink ms", "of bound")
	for _, r := range results {
		fmt.Fprintf(stdout, "%-9s %10.1f %12.0f %12.3f %9.1f%%\n", r.Mode, r.Workers, r.Throughput, r.MeasuredLatency, r.ShareNominal*100)
	}
	b, _ := json.Marshal(map[string]any{"latency_ms": latency.Seconds() * 1000, "max_workers": *maxWorkers, "runs": results})
	fmt.Fprintln(stdout, string(b))
	return 0
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }
func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

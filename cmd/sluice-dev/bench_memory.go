package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/testutil"
)

// benchMemory measures the service's resident memory while its sink is far
// slower than the producer: an embedded broker in a child process, the real
// the service binary (`sluice run`) in another, a producer and a slow HTTP sink in this one. It
// samples the service's RSS every second and reports the peak and how much
// the second half of the run grew over the first.
func benchMemory(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench memory", flag.ContinueOnError)
	fs.SetOutput(stderr)
	duration := fs.Duration("duration", 60*time.Second, "how long to produce and sample")
	budget := fs.String("budget", "32MiB", "SLUICE_BUFFER_MAX_BYTES for the service")
	rate := fs.Int("rate", 10000, "records produced per second")
	size := fs.Int("size", 1024, "record size in bytes")
	sinkDelay := fs.Duration("sink-delay", 10*time.Millisecond, "time the sink takes per request (one worker: 100/s at 10ms)")
	service := fs.String("sluice", "", "the service binary to measure (default: sluice beside this program, else bin/sluice; `make build` makes it)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	fail := func(err error) int { fmt.Fprintln(stderr, "bench memory:", err); return 1 }
	if *service == "" {
		*service = filepath.Join(filepath.Dir(self), "sluice")
		if _, err := os.Stat(*service); err != nil {
			*service = filepath.Join("bin", "sluice")
		}
	}
	if _, err := os.Stat(*service); err != nil {
		return fail(fmt.Errorf("no service binary (build it with `make build` or pass --sluice): %w", err))
	}

	port, err := testutil.FreePort()
	if err != nil {
		return fail(err)
	}
	broker := exec.CommandContext(ctx, self, "bench", "broker", "--port", strconv.Itoa(port), "--topic", "memory")
	broker.Stderr = stderr
	if err := broker.Start(); err != nil {
		return fail(err)
	}
	defer func() { _ = broker.Process.Kill(); _ = broker.Wait() }()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := waitPort(ctx, addr, 30*time.Second); err != nil {
		return fail(err)
	}

	var delivered atomic.Int64
	sink := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(*sinkDelay)
		delivered.Add(1)
	}), ReadHeaderTimeout: 5 * time.Second}
	sinkLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	go func() { _ = sink.Serve(sinkLn) }()
	defer sink.Close()

	httpPort, err := testutil.FreePort()
	if err != nil {
		return fail(err)
	}
	svc := exec.CommandContext(ctx, *service, "run")
	svc.Env = append(cleanEnv(),
		"SLUICE_KAFKA_BROKERS="+addr, "SLUICE_KAFKA_TOPICS=memory", "SLUICE_KAFKA_GROUP=memory",
		"SLUICE_SINK=http", "SLUICE_SINK_HTTP_URL=http://"+sinkLn.Addr().String(),
		"SLUICE_BUFFER_MAX_BYTES="+*budget, "SLUICE_BUFFER_MAX_RECORDS=10000000",
		"SLUICE_AUTOSCALE=false", "SLUICE_WORKERS_MAX=1", "SLUICE_SINK_BREAKER_FAILURES=0", "SLUICE_SHUTDOWN_TIMEOUT=2s",
		fmt.Sprintf("SLUICE_HTTP_ADDR=127.0.0.1:%d", httpPort), "SLUICE_LOG_LEVEL=warn")
	svc.Stderr = stderr
	if err := svc.Start(); err != nil {
		return fail(err)
	}
	defer func() { _ = svc.Process.Signal(os.Interrupt); _ = svc.Wait() }()

	pctx, stopProd := context.WithCancel(ctx)
	defer stopProd()
	var produced atomic.Int64
	go produceAt(pctx, addr, "memory", *rate, *size, &produced)

	fmt.Fprintf(stdout, "service pid %d, budget %s, producing %d x %d B/s, sink %s per record (one worker)\n",
		svc.Process.Pid, *budget, *rate, *size, *sinkDelay)
	type sample struct {
		T                     float64
		RSS, Window, Produced int64
		Delivered             int64
	}
	var samples []sample
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for time.Since(start) < *duration && ctx.Err() == nil {
		<-tick.C
		s := sample{T: time.Since(start).Seconds(), RSS: rssOf(svc.Process.Pid),
			Window:   scrapeGauge(fmt.Sprintf("http://127.0.0.1:%d/metrics", httpPort), "sluice_window_bytes"),
			Produced: produced.Load(), Delivered: delivered.Load()}
		samples = append(samples, s)
		fmt.Fprintf(stdout, "%4.0fs  rss=%6.1f MiB  window=%6.1f MiB  produced=%d delivered=%d\n",
			s.T, float64(s.RSS)/(1<<20), float64(s.Window)/(1<<20), s.Produced, s.Delivered)
	}
	if len(samples) < 4 {
		return fail(fmt.Errorf("only %d samples", len(samples)))
	}
	var peak, peakWindow int64
	for _, s := range samples {
		peak = max(peak, s.RSS)
		peakWindow = max(peakWindow, s.Window)
	}
	// Flatness: mean RSS over the second half against the first half,
	// after the window filled (the first quarter is the fill).
	q := len(samples) / 4
	mean := func(ss []sample) float64 {
		var t float64
		for _, s := range ss {
			t += float64(s.RSS)
		}
		return t / float64(len(ss))
	}
	mid := q + (len(samples)-q)/2
	first, second := mean(samples[q:mid]), mean(samples[mid:])
	b, _ := json.Marshal(map[string]any{
		"budget": *budget, "duration_s": duration.Seconds(), "produced": produced.Load(), "delivered": delivered.Load(),
		"peak_rss_bytes": peak, "peak_window_bytes": peakWindow,
		"rss_first_half_mib": round1(first / (1 << 20)), "rss_second_half_mib": round1(second / (1 << 20)),
	})
	fmt.Fprintln(stdout, string(b))
	return 0
}

// benchBroker runs an embedded Kafka cluster on a port until killed: the
// memory bench keeps the broker's data out of the service's process.
func benchBroker(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Int("port", 0, "port to listen on (127.0.0.1)")
	topic := fs.String("topic", "bench", "topic to create")
	partitions := fs.Int("partitions", 8, "its partitions")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cl, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(*port), kfake.SeedTopics(int32(*partitions), *topic))
	if err != nil {
		fmt.Fprintln(stderr, "bench broker:", err)
		return 1
	}
	defer cl.Close()
	<-ctx.Done()
	return 0
}

func produceAt(ctx context.Context, addr, topic string, rate, size int, produced *atomic.Int64) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return
	}
	defer cl.Close()
	value := make([]byte, size)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for range rate / 100 {
			cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
				if err == nil {
					produced.Add(1)
				}
			})
		}
	}
}

func waitPort(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s did not open: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cleanEnv is this process's environment without SLUICE_ variables, which
// the service would reject or obey.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLUICE_") {
			out = append(out, kv)
		}
	}
	return out
}

// rssOf reads a process's resident set size from /proc.
func rssOf(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// scrapeGauge reads one unlabelled gauge from a Prometheus text endpoint.
func scrapeGauge(url, name string) int64 {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return int64(f)
		}
	}
	return 0
}

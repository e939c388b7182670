package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/consumer"
	"github.com/sluicehq/sluice/sinks"
)

// benchNATS preloads a JetStream stream, then consumes it alternately with
// the Sluice pipeline (jetstream source, noop sink) and a plain nats.go
// Consume+Ack loop, each round on a fresh durable consumer with the same
// configuration, and reports the medians and their ratio. Both are timed
// from connecting to the last message acked. The server is embedded (file
// store in a temp dir) unless SLUICE_NATS_URL names one.
func benchNATS(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench nats-overhead", flag.ContinueOnError)
	fs.SetOutput(stderr)
	records := fs.Int("records", 500_000, "messages to preload and consume per round")
	size := fs.Int("size", 100, "message size in bytes")
	subjects := fs.Int("subjects", 8, "subjects the messages are spread over (the default ordering key)")
	rounds := fs.Int("rounds", 5, "rounds (each runs both, alternating which goes first)")
	ordering := fs.String("ordering", "key", "Sluice ordering: key, partition or none")
	workers := fs.Int("workers", 4, "Sluice workers")
	maxRecords := fs.Int("buffer", 100_000, "Sluice window in records (also the consumers' MaxAckPending)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the rounds to this file")
	only := fs.String("only", "", "run only raw or sluice rounds (with -cpuprofile, to profile one side)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	url := ""
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "SLUICE_NATS_URL="); ok {
			url = v
		}
	}
	where := url
	if url == "" {
		dir, err := os.MkdirTemp("", "sluice-bench-nats-")
		if err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
			StoreDir: dir, NoLog: true, NoSigs: true})
		if err != nil {
			fmt.Fprintln(stderr, "bench: nats-server:", err)
			return 1
		}
		go srv.Start()
		defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
		if !srv.ReadyForConnections(10 * time.Second) {
			fmt.Fprintln(stderr, "bench: nats-server did not start")
			return 1
		}
		url, where = srv.ClientURL(), "embedded nats-server"
	}
	stream := fmt.Sprintf("BENCH_%d", time.Now().UnixNano())
	fmt.Fprintf(stdout, "preloading %d messages of %d bytes over %d subjects into stream %s on %s\n",
		*records, *size, *subjects, stream, where)
	if err := preloadJetStream(ctx, url, stream, *records, *size, *subjects); err != nil {
		fmt.Fprintln(stderr, "bench: preload:", err)
		return 1
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	cc := jetstream.ConsumerConfig{
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second,
		MaxAckPending: *maxRecords, MaxDeliver: -1,
	}
	res, err := alternate(*rounds, *records, *only, stdout, "messages", map[string]func(int) (float64, error){
		"raw": func(r int) (float64, error) {
			return rawJetStreamRound(ctx, url, stream, fmt.Sprintf("raw_%d", r), cc, *records)
		},
		"sluice": func(r int) (float64, error) {
			return sluiceJetStreamRound(ctx, url, stream, fmt.Sprintf("sluice_%d", r), *records, *maxRecords,
				consumer.Ordering(*ordering), *workers)
		},
	})
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	raw, slu := res["raw"].rps, res["sluice"].rps
	mr, ms := median(raw), median(slu)
	ratio := 0.0
	if mr > 0 {
		ratio = float64(int(ms/mr*1000)) / 1000
	}
	out, _ := json.Marshal(map[string]any{
		"bench": "nats-overhead", "records": *records, "size": *size, "subjects": *subjects,
		"rounds": *rounds, "ordering": *ordering, "workers": *workers, "buffer": *maxRecords,
		"server": where, "raw_rps": int64(mr), "sluice_rps": int64(ms),
		"ratio": ratio,
	})
	fmt.Fprintln(stdout, string(out))
	return 0
}

func preloadJetStream(ctx context.Context, url, stream string, n, size, subjects int) error {
	nc, err := nats.Connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return err
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{stream + ".>"}}); err != nil {
		return err
	}
	subj := make([]string, subjects)
	for i := range subj {
		subj[i] = stream + "." + strconv.Itoa(i)
	}
	value := make([]byte, size)
	for i := range n {
		if _, err := js.PublishAsync(subj[i%subjects], value, jetstream.WithStallWait(time.Minute)); err != nil {
			return err
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return ctx.Err()
	}
	info, err := js.Stream(ctx, stream)
	if err != nil {
		return err
	}
	if got := info.CachedInfo().State.Msgs; got != uint64(n) {
		return fmt.Errorf("stream holds %d messages, want %d", got, n)
	}
	return nil
}

// rawJetStreamRound is the baseline: nats.go's Consume with its defaults,
// acking each message in the callback.
func rawJetStreamRound(ctx context.Context, url, stream, name string, cc jetstream.ConsumerConfig, n int) (float64, error) {
	start := time.Now()
	nc, err := nats.Connect(url)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, err
	}
	cc.Durable = name
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, cc)
	if err != nil {
		return 0, err
	}
	var count atomic.Int64
	done := make(chan struct{})
	cctx, err := cons.Consume(func(m jetstream.Msg) {
		_ = m.Ack()
		if count.Add(1) == int64(n) {
			close(done)
		}
	})
	if err != nil {
		return 0, err
	}
	defer cctx.Stop()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		return 0, fmt.Errorf("timed out at %d of %d messages", count.Load(), n)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

func sluiceJetStreamRound(ctx context.Context, url, stream, name string, n, maxRecords int,
	ord consumer.Ordering, workers int) (float64, error) {
	cfg := consumer.Config{
		Source: consumer.SourceJetStream, Ordering: ord, Workers: workers, MaxRecords: maxRecords,
		NATS: consumer.NATSConfig{URL: url, Stream: stream, Consumer: name},
	}
	c, err := consumer.New(cfg, sinks.Noop{}, consumer.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return 0, err
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- c.Run(rctx) }()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		st := c.Stats()
		if st.Completed >= uint64(n) {
			break
		}
		select {
		case err := <-done:
			if err == nil {
				err = errors.New("stopped early")
			}
			return 0, err
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			<-done
			return 0, fmt.Errorf("timed out at %d of %d messages", st.Completed, n)
		}
		time.Sleep(time.Millisecond)
	}
	rps := float64(n) / time.Since(start).Seconds()
	stop()
	return rps, <-done
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sluicehq/sluice/consumer"
	"github.com/sluicehq/sluice/sinks"
)

// benchSinks preloads records into an embedded Kafka cluster, then consumes
// them with the Sluice pipeline into each sink in turn (noop, HTTP to a local
// server, PostgreSQL when a DSN is given), alternating the order over the
// rounds, and reports each sink's median throughput. The rate is taken from
// the first record delivered to the last, so joining the group is left out
// but fetching is in.
func benchSinks(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench sinks", flag.ContinueOnError)
	fs.SetOutput(stderr)
	records := fs.Int("records", 200_000, "records to preload and consume per round")
	size := fs.Int("size", 200, "value size in bytes")
	partitions := fs.Int("partitions", 8, "partitions of the bench topic")
	keys := fs.Int("keys", 64, "distinct keys (0: no keys)")
	rounds := fs.Int("rounds", 3, "rounds (each runs every sink, rotating which goes first)")
	workers := fs.Int("workers", 8, "Sluice workers")
	ordering := fs.String("ordering", "key", "Sluice ordering: key, partition or none")
	httpBatch := fs.Int("http-batch", 100, "messages per HTTP request (SLUICE_SINK_HTTP_BATCH_MAX)")
	list := fs.String("sinks", "noop,http,postgres", "sinks to run, comma separated")
	dsn := fs.String("postgres-dsn", "", "PostgreSQL DSN (default: SLUICEDEV_TEST_POSTGRES_DSN; postgres is skipped without one)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dsn == "" {
		for _, kv := range environ {
			if v, ok := strings.CutPrefix(kv, "SLUICEDEV_TEST_POSTGRES_DSN="); ok {
				*dsn = v
			}
		}
	}
	topic := fmt.Sprintf("bench-sinks-%d", time.Now().UnixNano())
	cl, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(*partitions), topic))
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	defer cl.Close()
	brokers := cl.ListenAddrs()
	fmt.Fprintf(stdout, "preloading %d records of %d bytes (%d keys) into %s (%d partitions)\n",
		*records, *size, *keys, topic, *partitions)
	if err := preload(ctx, brokers, topic, *records, *size, *keys, false); err != nil {
		fmt.Fprintln(stderr, "bench: preload:", err)
		return 1
	}

	// The local HTTP endpoint: decodes every body, as a real receiver would.
	var httpRecords atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var lines []sinks.Line
		body, _ := io.ReadAll(r.Body)
		if len(body) > 0 && body[0] == '[' {
			_ = json.Unmarshal(body, &lines)
		} else {
			lines = make([]sinks.Line, 1)
			_ = json.Unmarshal(body, &lines[0])
		}
		httpRecords.Add(int64(len(lines)))
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	var names []string
	for _, n := range strings.Split(*list, ",") {
		n = strings.TrimSpace(n)
		if n == "postgres" && *dsn == "" {
			fmt.Fprintln(stdout, "postgres: skipped (no -postgres-dsn or SLUICEDEV_TEST_POSTGRES_DSN; scripts/postgres.sh start prints one)")
			continue
		}
		if n != "" {
			names = append(names, n)
		}
	}
	newSink := func(name string, round int) (consumer.Sink, func(), error) {
		switch name {
		case "noop":
			return sinks.Noop{}, func() {}, nil
		case "http":
			s, err := sinks.NewHTTP(sinks.HTTPConfig{URL: "http://" + ln.Addr().String() + "/", BatchMax: *httpBatch})
			if err != nil {
				return nil, nil, err
			}
			return s, func() { s.Close(ctx) }, nil
		case "postgres":
			table := fmt.Sprintf("bench_sinks_%d_%d", time.Now().Unix(), round)
			s, err := sinks.NewPostgres(sinks.PostgresConfig{DSN: *dsn, Table: table, CreateTable: true, MaxConns: *workers})
			if err != nil {
				return nil, nil, err
			}
			if err := s.Setup(ctx); err != nil {
				s.Close(ctx)
				return nil, nil, err
			}
			return s, func() { s.Close(ctx) }, nil
		}
		return nil, nil, fmt.Errorf("unknown sink %q (want noop, http or postgres)", name)
	}
	results := map[string][]float64{}
	for r := range *rounds {
		for i := range names {
			name := names[(i+r)%len(names)]
			sink, done, err := newSink(name, r)
			if err != nil {
				fmt.Fprintf(stderr, "bench: %s: %v\n", name, err)
				return 1
			}
			group := fmt.Sprintf("%s-%s-%d", topic, name, r)
			rps, err := sinkRound(ctx, brokers, topic, group, *records, consumer.Ordering(*ordering), *workers, sink)
			done()
			if err != nil {
				fmt.Fprintf(stderr, "bench: %s round %d: %v\n", name, r+1, err)
				return 1
			}
			results[name] = append(results[name], rps)
			fmt.Fprintf(stdout, "round %d  %-9s %10.0f records/s\n", r+1, name, rps)
		}
	}
	summary := map[string]any{"records": *records, "size": *size, "partitions": *partitions, "keys": *keys,
		"workers": *workers, "ordering": *ordering, "http_batch": *httpBatch, "rounds": *rounds}
	for name, xs := range results {
		summary[name+"_rps"] = int64(median(xs))
	}
	out, _ := json.Marshal(summary)
	fmt.Fprintln(stdout, string(out))
	return 0
}

// sinkRound consumes n records into sink and returns the rate from the
// first record delivered to the last.
func sinkRound(ctx context.Context, brokers []string, topic, group string, n int, ord consumer.Ordering, workers int, sink consumer.Sink) (float64, error) {
	cfg := consumer.Config{Ordering: ord, Workers: workers, Kafka: consumer.KafkaConfig{
		Brokers: brokers, Topics: []string{topic}, Group: group}}
	c, err := consumer.New(cfg, sink, consumer.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return 0, err
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- c.Run(rctx) }()
	deadline := time.Now().Add(10 * time.Minute)
	const from = 1
	var t0 time.Time
	for {
		got := c.Stats().Completed
		if t0.IsZero() && got >= from {
			t0 = time.Now()
		}
		if got >= uint64(n) {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			<-done
			return 0, fmt.Errorf("timed out at %d of %d records", got, n)
		}
		time.Sleep(time.Millisecond)
	}
	rps := float64(n-from) / time.Since(t0).Seconds()
	stop()
	return rps, <-done
}

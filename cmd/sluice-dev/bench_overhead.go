package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/consumer"
	"github.com/sluicehq/sluice/sinks"
)

// benchOverhead preloads records, then consumes them alternately with the
// Sluice pipeline (noop sink) and a plain franz-go poll loop, and reports
// the medians and their ratio. Both are timed from creating the client to
// the last record done, so both include joining the group.
func benchOverhead(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench overhead", flag.ContinueOnError)
	fs.SetOutput(stderr)
	records := fs.Int("records", 1_000_000, "records to preload and consume per round")
	size := fs.Int("size", 100, "value size in bytes")
	partitions := fs.Int("partitions", 8, "partitions of the bench topic")
	rounds := fs.Int("rounds", 5, "rounds (each runs both, alternating which goes first)")
	ordering := fs.String("ordering", "key", "Sluice ordering: key, partition or none")
	keys := fs.Int("keys", 0, "distinct keys (0: records have no key)")
	workers := fs.Int("workers", 4, "Sluice workers")
	maxRecords := fs.Int("max-records", 0, "Sluice window budget in records (0: the default)")
	fetchMaxBytes := fs.Int64("fetch-max-bytes", 0, "Sluice fetch size (0: derived from the budget)")
	highWater := fs.Float64("high-water", 0, "Sluice high-water mark (0: the default)")
	only := fs.String("only", "", "run only raw or sluice rounds (for profiling)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	if err := fs.Parse(args); err != nil {
		return 2
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
	var brokers []string
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "SLUICE_KAFKA_BROKERS="); ok && v != "" {
			brokers = strings.Split(v, ",")
		}
	}
	topic := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	where := "embedded kfake"
	if brokers == nil {
		cl, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(*partitions), topic))
		if err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		defer cl.Close()
		brokers = cl.ListenAddrs()
	} else {
		where = strings.Join(brokers, ",")
		if err := createTopic(ctx, brokers, topic, *partitions); err != nil {
			fmt.Fprintln(stderr, "bench: create topic:", err)
			return 1
		}
	}
	fmt.Fprintf(stdout, "preloading %d records of %d bytes into %s (%d partitions) on %s\n",
		*records, *size, topic, *partitions, where)
	if err := preload(ctx, brokers, topic, *records, *size, *keys); err != nil {
		fmt.Fprintln(stderr, "bench: preload:", err)
		return 1
	}
	res, err := alternate(*rounds, *records, *only, stdout, "records", map[string]func(int) (float64, error){
		"raw": func(r int) (float64, error) {
			return rawRound(ctx, brokers, topic, fmt.Sprintf("%s-raw-%d", topic, r), *records)
		},
		"sluice": func(r int) (float64, error) {
			cfg := consumer.Config{Ordering: consumer.Ordering(*ordering), Workers: *workers, MaxRecords: *maxRecords, HighWater: *highWater,
				Kafka: consumer.KafkaConfig{Brokers: brokers, Topics: []string{topic}, Group: fmt.Sprintf("%s-sluice-%d", topic, r),
					FetchMaxBytes: *fetchMaxBytes}}
			return sluiceRound(ctx, cfg, *records)
		},
	})
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	raw, slu := res["raw"].rps, res["sluice"].rps
	rawCPU, sluCPU := res["raw"].cpuNs, res["sluice"].cpuNs
	mr, ms := median(raw), median(slu)
	if mr == 0 {
		mr = 1
	}
	out, _ := json.Marshal(map[string]any{
		"records": *records, "size": *size, "partitions": *partitions, "rounds": *rounds,
		"ordering": *ordering, "keys": *keys, "workers": *workers, "brokers": where,
		"raw_rps": int64(mr), "sluice_rps": int64(ms), "ratio": float64(int(ms/mr*1000)) / 1000,
		"raw_cpu_ns_per_record": int64(median(rawCPU)), "sluice_cpu_ns_per_record": int64(median(sluCPU)),
	})
	fmt.Fprintln(stdout, string(out))
	return 0
}

func createTopic(ctx context.Context, brokers []string, topic string, partitions int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	req := kmsgCreateTopic(topic, partitions)
	_, err = req.RequestWith(ctx, cl)
	return err
}

func preload(ctx context.Context, brokers []string, topic string, n, size, keys int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic),
		kgo.ProducerLinger(5*time.Millisecond), kgo.ProducerBatchMaxBytes(1<<20),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		return err
	}
	defer cl.Close()
	value := make([]byte, size)
	var first error
	for i := range n {
		r := &kgo.Record{Value: value}
		if keys > 0 {
			r.Key = fmt.Appendf(nil, "k%d", i%keys)
		}
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil && first == nil {
				first = err
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	return first
}

func rawRound(ctx context.Context, brokers []string, topic, group string, n int) (float64, error) {
	start := time.Now()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	count := 0
	for count < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		fs.EachRecord(func(*kgo.Record) { count++ })
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

func sluiceRound(ctx context.Context, cfg consumer.Config, n int) (float64, error) {
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
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			<-done
			return 0, fmt.Errorf("timed out at %d of %d records", st.Completed, n)
		}
		time.Sleep(time.Millisecond)
	}
	rps := float64(n) / time.Since(start).Seconds()
	stop()
	return rps, <-done
}

// sideResults are one side's rates and process CPU time per item, by round.
type sideResults struct{ rps, cpuNs []float64 }

// alternate runs the "raw" and "sluice" sides once a round, alternating
// which goes first (only, if set, runs just that side), and records each
// round's rate and the process's CPU time per item, printing a line a
// round. Both sides run in this process, so their CPU figures compare.
func alternate(rounds, items int, only string, stdout io.Writer, unit string,
	sides map[string]func(round int) (float64, error)) (map[string]*sideResults, error) {
	res := map[string]*sideResults{"raw": {}, "sluice": {}}
	for r := range rounds {
		order := []string{"raw", "sluice"}
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, which := range order {
			if only != "" && which != only {
				continue
			}
			cpu0 := cpuTime()
			rps, err := sides[which](r)
			if err != nil {
				return nil, fmt.Errorf("%s round %d: %w", which, r+1, err)
			}
			cpuNs := float64(cpuTime()-cpu0) / float64(items)
			res[which].rps = append(res[which].rps, rps)
			res[which].cpuNs = append(res[which].cpuNs, cpuNs)
			fmt.Fprintf(stdout, "round %d  %-6s %10.0f %s/s  %6.0f ns CPU per item\n", r+1, which, rps, unit, cpuNs)
		}
	}
	return res, nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func kmsgCreateTopic(topic string, partitions int) *kmsg.CreateTopicsRequest {
	req := kmsg.NewPtrCreateTopicsRequest()
	t := kmsg.NewCreateTopicsRequestTopic()
	t.Topic = topic
	t.NumPartitions = int32(partitions)
	t.ReplicationFactor = -1
	req.Topics = append(req.Topics, t)
	req.TimeoutMillis = 30000
	return req
}

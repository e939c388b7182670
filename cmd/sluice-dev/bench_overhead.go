package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/metrics"
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

// benchOverhead preloads records, then consumes them alternately with a
// plain franz-go poll loop and with the Sluice pipeline (noop sink) in each
// of the given orderings, and reports the medians and the ratios against the
// loop. Every side is timed from creating the client to the last record
// done, so each includes joining the group. Besides the rate it reports, per
// record, the process's CPU time and the heap allocations (objects and
// bytes), and the share of the runtime's CPU estimate spent in garbage
// collection. With the embedded broker those include kfake's own work, which
// is the same for every side.
func benchOverhead(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench overhead", flag.ContinueOnError)
	fs.SetOutput(stderr)
	records := fs.Int("records", 1_000_000, "records to preload and consume per round")
	size := fs.Int("size", 100, "value size in bytes")
	random := fs.Bool("random", false, "values of random bytes, which do not compress (default: zeros, which compress to almost nothing)")
	partitions := fs.Int("partitions", 8, "partitions of the bench topic")
	rounds := fs.Int("rounds", 5, "rounds (each runs every side, alternating the order)")
	orderings := fs.String("ordering", "none,partition,key", "Sluice orderings to run, comma-separated: key, partition, none")
	keys := fs.Int("keys", 4096, "distinct keys (0: records have no key)")
	workers := fs.Int("workers", 4, "Sluice workers")
	maxRecords := fs.Int("max-records", 0, "Sluice window budget in records (0: the default)")
	fetchMaxBytes := fs.Int64("fetch-max-bytes", 0, "Sluice fetch size (0: derived from the budget)")
	highWater := fs.Float64("high-water", 0, "Sluice high-water mark (0: the default)")
	only := fs.String("only", "", "run only this side: raw, or one ordering (for profiling)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var ords []string
	for _, o := range strings.Split(*orderings, ",") {
		switch o = strings.TrimSpace(o); o {
		case "key", "partition", "none":
			ords = append(ords, o)
		case "":
		default:
			fmt.Fprintf(stderr, "bench: ordering %q: want key, partition or none\n", o)
			return 2
		}
	}
	if len(ords) == 0 {
		fmt.Fprintln(stderr, "bench: no ordering to run")
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
	fmt.Fprintf(stdout, "preloading %d records of %d bytes (%d keys) into %s (%d partitions) on %s\n",
		*records, *size, *keys, topic, *partitions, where)
	if err := preload(ctx, brokers, topic, *records, *size, *keys, *random); err != nil {
		fmt.Fprintln(stderr, "bench: preload:", err)
		return 1
	}
	sides := map[string]func(int) (float64, error){
		"raw": func(r int) (float64, error) {
			return rawRound(ctx, brokers, topic, fmt.Sprintf("%s-raw-%d", topic, r), *records)
		},
	}
	names := []string{"raw"}
	pauses := map[string][]float64{} // partition pauses by ordering, by round
	for _, o := range ords {
		names = append(names, o)
		sides[o] = func(r int) (float64, error) {
			cfg := consumer.Config{Ordering: consumer.Ordering(o), Workers: *workers, MaxRecords: *maxRecords, HighWater: *highWater,
				Kafka: consumer.KafkaConfig{Brokers: brokers, Topics: []string{topic}, Group: fmt.Sprintf("%s-%s-%d", topic, o, r),
					FetchMaxBytes: *fetchMaxBytes}}
			rps, st, err := sluiceRoundStats(ctx, cfg, *records)
			pauses[o] = append(pauses[o], float64(st.Pauses))
			return rps, err
		}
	}
	res, err := alternateSides(*rounds, *records, *only, stdout, "records", names, sides)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	summary := func(r *sideResults) map[string]any {
		return map[string]any{
			"rps": int64(median(r.rps)), "cpu_ns_per_record": int64(median(r.cpuNs)),
			"allocs_per_record": round3(median(r.allocs)), "alloc_bytes_per_record": int64(median(r.allocBytes)),
			"gc_share": round3(median(r.gcShare)),
		}
	}
	raw := res["raw"]
	mr := median(raw.rps)
	if mr == 0 {
		mr = 1
	}
	out := map[string]any{
		"records": *records, "size": *size, "random": *random, "partitions": *partitions, "rounds": *rounds,
		"keys": *keys, "workers": *workers, "brokers": where, "raw": summary(raw),
	}
	fmt.Fprintf(stdout, "\nmedians of %d rounds, %d records of %d bytes, %d keys, %d partitions, %d workers, %s\n",
		*rounds, *records, *size, *keys, *partitions, *workers, where)
	fmt.Fprintf(stdout, "%-10s %12s %7s %12s %14s %14s %9s %7s\n", "side", "records/s", "ratio", "CPU ns/rec", "allocs/rec", "bytes/rec", "GC share", "pauses")
	line := func(name string, r *sideResults) {
		fmt.Fprintf(stdout, "%-10s %12.0f %7.3f %12.0f %14.3f %14.0f %8.1f%% %7.0f\n", name, median(r.rps), median(r.rps)/mr,
			median(r.cpuNs), median(r.allocs), median(r.allocBytes), 100*median(r.gcShare), median(pauses[name]))
	}
	line("raw", raw)
	for _, o := range ords {
		r := res[o]
		if len(r.rps) == 0 {
			continue
		}
		line(o, r)
		s := summary(r)
		s["ratio"] = round3(median(r.rps) / mr)
		s["cpu_ratio"] = round3(median(r.cpuNs) / max(1, median(raw.cpuNs)))
		s["pauses"] = median(pauses[o])
		out[o] = s
	}
	js, _ := json.Marshal(out)
	fmt.Fprintln(stdout, string(js))
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

func preload(ctx context.Context, brokers []string, topic string, n, size, keys int, random bool) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic),
		kgo.ProducerLinger(5*time.Millisecond), kgo.ProducerBatchMaxBytes(1<<20),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		return err
	}
	defer cl.Close()
	// Random values come from 4 096 different ones, 400 KiB at the default
	// size: more than a compressor's window, so a batch does not compress.
	values := [][]byte{make([]byte, size)}
	if random {
		values = make([][]byte, 4096)
		for i := range values {
			values[i] = make([]byte, size)
			rand.Read(values[i])
		}
	}
	var first error
	for i := range n {
		r := &kgo.Record{Value: values[i%len(values)]}
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
	rps, _, err := sluiceRoundStats(ctx, cfg, n)
	return rps, err
}

// sluiceRoundStats is sluiceRound, also returning the consumer's Stats at
// the end of the round (its pauses, say).
func sluiceRoundStats(ctx context.Context, cfg consumer.Config, n int) (float64, consumer.Stats, error) {
	var st consumer.Stats
	c, err := consumer.New(cfg, sinks.Noop{}, consumer.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return 0, st, err
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- c.Run(rctx) }()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		st = c.Stats()
		if st.Completed >= uint64(n) {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			<-done
			return 0, st, fmt.Errorf("timed out at %d of %d records", st.Completed, n)
		}
		time.Sleep(time.Millisecond)
	}
	rps := float64(n) / time.Since(start).Seconds()
	stop()
	return rps, st, <-done
}

// sideResults are one side's figures by round: the rate, and per item the
// process's CPU time and heap allocations (objects, bytes), and the share of
// the runtime's CPU estimate that went to garbage collection.
type sideResults struct{ rps, cpuNs, allocs, allocBytes, gcShare []float64 }

// alternate runs the "raw" and "sluice" sides once a round; see
// alternateSides.
func alternate(rounds, items int, only string, stdout io.Writer, unit string,
	sides map[string]func(round int) (float64, error)) (map[string]*sideResults, error) {
	return alternateSides(rounds, items, only, stdout, unit, []string{"raw", "sluice"}, sides)
}

// alternateSides runs each named side once a round, rotating which goes
// first and reversing the order every other round, so that no side always
// follows the same one (only, if set, runs just that side), and records each
// round's figures, printing a line a round. All sides run in this process,
// so their CPU and allocation figures compare.
func alternateSides(rounds, items int, only string, stdout io.Writer, unit string, names []string,
	sides map[string]func(round int) (float64, error)) (map[string]*sideResults, error) {
	res := make(map[string]*sideResults, len(names))
	for _, n := range names {
		res[n] = &sideResults{}
	}
	for r := range rounds {
		order := slices.Clone(names)
		k := (r / 2) % len(order)
		order = append(order[k:], order[:k]...)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, which := range order {
			if only != "" && which != only {
				continue
			}
			runtime.GC()
			before := readRuntime()
			rps, err := sides[which](r)
			if err != nil {
				return nil, fmt.Errorf("%s round %d: %w", which, r+1, err)
			}
			after := readRuntime()
			d := after.sub(before)
			n := float64(items)
			sr := res[which]
			sr.rps = append(sr.rps, rps)
			sr.cpuNs = append(sr.cpuNs, float64(d.cpu)/n)
			sr.allocs = append(sr.allocs, float64(d.objects)/n)
			sr.allocBytes = append(sr.allocBytes, float64(d.bytes)/n)
			share := 0.0
			if d.used > 0 {
				share = d.gc / d.used
			}
			sr.gcShare = append(sr.gcShare, share)
			fmt.Fprintf(stdout, "round %d  %-9s %10.0f %s/s  %6.0f ns CPU  %7.3f allocs  %5.0f B per item  GC %4.1f%%\n",
				r+1, which, rps, unit, float64(d.cpu)/n, float64(d.objects)/n, float64(d.bytes)/n, 100*share)
		}
	}
	return res, nil
}

// runtimeSample is the process's CPU time, its cumulative heap allocations
// and the runtime's estimate of CPU seconds used in all and by the GC.
type runtimeSample struct {
	cpu      time.Duration
	objects  uint64
	bytes    uint64
	gc, used float64
}

var runtimeMetrics = []string{
	"/gc/heap/allocs:objects", "/gc/heap/allocs:bytes",
	"/cpu/classes/gc/total:cpu-seconds", "/cpu/classes/total:cpu-seconds", "/cpu/classes/idle:cpu-seconds",
}

// readRuntime samples the figures alternateSides reports. The runtime's CPU
// classes are estimates (only comparable with each other), so the GC share
// is GC seconds over the seconds not idle, both from them.
func readRuntime() runtimeSample {
	ms := make([]metrics.Sample, len(runtimeMetrics))
	for i, n := range runtimeMetrics {
		ms[i].Name = n
	}
	metrics.Read(ms)
	f := func(i int) float64 {
		if ms[i].Value.Kind() == metrics.KindFloat64 {
			return ms[i].Value.Float64()
		}
		return 0
	}
	u := func(i int) uint64 {
		if ms[i].Value.Kind() == metrics.KindUint64 {
			return ms[i].Value.Uint64()
		}
		return 0
	}
	return runtimeSample{cpu: cpuTime(), objects: u(0), bytes: u(1), gc: f(2), used: f(3) - f(4)}
}

func (a runtimeSample) sub(b runtimeSample) runtimeSample {
	return runtimeSample{cpu: a.cpu - b.cpu, objects: a.objects - b.objects, bytes: a.bytes - b.bytes,
		gc: a.gc - b.gc, used: a.used - b.used}
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

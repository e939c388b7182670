package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/consumer"
)

// benchShare compares a Kafka share group with a consumer group, and
// Sluice's share-group source with a plain franz-go share-group loop:
//
//   - slow sink: a topic with few partitions, more members than partitions,
//     a sink that takes -sink-delay per record. A consumer group can use
//     only as many members as there are partitions; a share group uses all
//     of them. Reported: throughput, and how many members delivered.
//   - overhead: one member, a noop sink, the same preloaded records, Sluice
//     against a plain loop (PollRecords, then accept every record), in
//     alternating rounds, each on a fresh share group.
//
// The broker is embedded kfake unless SLUICE_KAFKA_BROKERS names one.
func benchShare(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench share", flag.ContinueOnError)
	fs.SetOutput(stderr)
	partitions := fs.Int("partitions", 2, "partitions of the slow-sink topic")
	members := fs.Int("members", 8, "members in the slow-sink comparison")
	workers := fs.Int("workers", 4, "workers per member in the slow-sink comparison")
	delay := fs.Duration("sink-delay", 5*time.Millisecond, "time the slow sink takes per record")
	slowRecords := fs.Int("slow-records", 20000, "records in the slow-sink comparison")
	buffer := fs.Int("buffer", 100, "SLUICE_BUFFER_MAX_RECORDS of each share-group member in the slow-sink comparison: the most it takes at once (the consumer group keeps the default)")
	records := fs.Int("records", 200_000, "records per overhead round")
	size := fs.Int("size", 100, "record size in bytes")
	rounds := fs.Int("rounds", 5, "overhead rounds (each runs both sides, alternating which goes first)")
	only := fs.String("only", "", "slow or overhead: run only that part")
	mode := fs.String("acquire-mode", consumer.ShareRecordLimit, "SLUICE_KAFKA_SHARE_ACQUIRE_MODE of the Sluice side: record_limit or batch_optimized")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var brokers []string
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "SLUICE_KAFKA_BROKERS="); ok && v != "" {
			brokers = strings.Split(v, ",")
		}
	}
	where := "Apache Kafka at " + strings.Join(brokers, ",")
	if brokers == nil {
		cl, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			fmt.Fprintln(stderr, "bench: kfake:", err)
			return 1
		}
		defer cl.Close()
		brokers, where = cl.ListenAddrs(), "embedded kfake"
	}
	out := map[string]any{"broker": where}
	if *only != "overhead" {
		res, err := shareSlowSink(ctx, brokers, *partitions, *members, *workers, *buffer, *delay, *slowRecords, *size, *mode, stdout)
		if err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		out["slow_sink"] = res
	}
	if *only != "slow" {
		res, err := shareOverhead(ctx, brokers, *records, *size, *rounds, *mode, stdout)
		if err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		out["overhead"] = res
	}
	js, _ := json.Marshal(out)
	fmt.Fprintln(stdout, string(js))
	return 0
}

// shareSlowSink runs the slow-sink comparison: a consumer group, then a
// share group, each with the same members on the same records.
func shareSlowSink(ctx context.Context, brokers []string, partitions, members, workers, buffer int,
	delay time.Duration, n, size int, mode string, stdout io.Writer) (map[string]any, error) {
	topic := fmt.Sprintf("bench-share-slow-%d", time.Now().UnixNano())
	if err := createTopic(ctx, brokers, topic, partitions); err != nil {
		return nil, fmt.Errorf("create topic: %w", err)
	}
	if err := preload(ctx, brokers, topic, n, size, 0, false); err != nil {
		return nil, fmt.Errorf("preload: %w", err)
	}
	fmt.Fprintf(stdout, "slow sink: %d records of %d bytes in %d partitions, %d members x %d workers, window %d records, %v per record\n",
		n, size, partitions, members, workers, buffer, delay)
	out := map[string]any{"partitions": partitions, "members": members, "workers_per_member": workers, "buffer_records": buffer,
		"sink_delay_ms": delay.Seconds() * 1000, "records": n}
	for _, source := range []string{consumer.SourceKafka, consumer.SourceKafkaShare} {
		rps, worked, err := slowRound(ctx, brokers, topic, source, members, workers, buffer, delay, n, mode)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		bound := float64(min(members, partitionsOr(source, partitions, members))*workers) / delay.Seconds()
		fmt.Fprintf(stdout, "  %-12s %8.0f records/s  %d of %d members delivered  (%d workers' bound: %.0f/s)\n",
			source, rps, worked, members, min(members, partitionsOr(source, partitions, members))*workers, bound)
		out[source] = map[string]any{"rps": int64(rps), "members_that_delivered": worked}
	}
	return out, nil
}

// partitionsOr is how many members can work: the partitions for a
// consumer group, every member for a share group.
func partitionsOr(source string, partitions, members int) int {
	if source == consumer.SourceKafkaShare {
		return members
	}
	return partitions
}

// slowRound starts the members, waits until they have delivered n records
// between them, and reports the rate from the first start to the last
// record, and how many members delivered any.
func slowRound(ctx context.Context, brokers []string, topic, source string, members, workers, buffer int,
	delay time.Duration, n int, mode string) (float64, int, error) {
	group := fmt.Sprintf("bench-%s-%d", source, time.Now().UnixNano())
	counts := make([]atomic.Int64, members)
	var total atomic.Int64
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, members)
	start := time.Now()
	for i := range members {
		cfg := consumer.Config{
			Source: source, Workers: workers, Ordering: consumer.OrderNone,
			Kafka: consumer.KafkaConfig{Brokers: brokers, Topics: []string{topic}, Group: group,
				FetchMaxWait: 100 * time.Millisecond, SessionTimeout: 10 * time.Second},
		}
		if source == consumer.SourceKafkaShare {
			// What a member takes at once; a consumer group keeps the
			// default window (commits bound it there, not the broker).
			cfg.MaxRecords = buffer
			cfg.Kafka.ShareAcquireMode = mode
		}
		sink := consumer.SinkFunc(func(ctx context.Context, m *consumer.Message) error {
			t := time.NewTimer(delay)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				return ctx.Err()
			}
			counts[i].Add(1)
			total.Add(1)
			return nil
		})
		c, err := consumer.New(cfg, sink, consumer.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			return 0, 0, err
		}
		wg.Go(func() {
			if err := c.Run(rctx); err != nil {
				errs <- err
			}
		})
	}
	deadline := time.Now().Add(5 * time.Minute)
	for total.Load() < int64(n) {
		select {
		case err := <-errs:
			cancel()
			wg.Wait()
			return 0, 0, err
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			cancel()
			wg.Wait()
			return 0, 0, fmt.Errorf("timed out at %d of %d records", total.Load(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	rps := float64(n) / time.Since(start).Seconds()
	cancel()
	wg.Wait()
	worked := 0
	for i := range counts {
		if counts[i].Load() > 0 {
			worked++
		}
	}
	return rps, worked, nil
}

// shareOverhead runs the overhead comparison on one preloaded topic, each
// round of each side on a share group of its own.
func shareOverhead(ctx context.Context, brokers []string, n, size, rounds int, mode string, stdout io.Writer) (map[string]any, error) {
	topic := fmt.Sprintf("bench-share-overhead-%d", time.Now().UnixNano())
	if err := createTopic(ctx, brokers, topic, 8); err != nil {
		return nil, fmt.Errorf("create topic: %w", err)
	}
	if err := preload(ctx, brokers, topic, n, size, 0, false); err != nil {
		return nil, fmt.Errorf("preload: %w", err)
	}
	fmt.Fprintf(stdout, "overhead: %d records of %d bytes in 8 partitions, one member, noop sink, Sluice in %s mode\n", n, size, mode)
	var raw, sl []float64
	for r := range rounds {
		sides := []string{"raw", "sluice"}
		if r%2 == 1 {
			sides[0], sides[1] = sides[1], sides[0]
		}
		for _, side := range sides {
			group := fmt.Sprintf("bench-share-%s-%d", side, time.Now().UnixNano())
			var rps float64
			var err error
			if side == "raw" {
				rps, err = rawShareRound(ctx, brokers, topic, group, n)
				raw = append(raw, rps)
			} else {
				cfg := consumer.Config{Source: consumer.SourceKafkaShare, Workers: 4,
					Kafka: consumer.KafkaConfig{Brokers: brokers, Topics: []string{topic}, Group: group,
						FetchMaxWait: 100 * time.Millisecond, ShareAcquireMode: mode}}
				rps, err = sluiceRound(ctx, cfg, n)
				sl = append(sl, rps)
			}
			if err != nil {
				return nil, fmt.Errorf("%s round %d: %w", side, r+1, err)
			}
			fmt.Fprintf(stdout, "  round %d %-7s %10.0f records/s\n", r+1, side, rps)
		}
	}
	mr, ms := median(raw), median(sl)
	fmt.Fprintf(stdout, "  medians of %d rounds: plain share loop %.0f records/s, Sluice %.0f records/s, ratio %.2f\n",
		rounds, mr, ms, ms/mr)
	return map[string]any{"raw_rps": int64(mr), "sluice_rps": int64(ms), "ratio": float64(int(ms/mr*1000)) / 1000,
		"rounds": rounds, "records": n, "acquire_mode": mode}, nil
}

// rawShareRound is the plain franz-go share-group loop: set the group to
// start at the earliest offset, poll, accept every record, until n.
func rawShareRound(ctx context.Context, brokers []string, topic, group string, n int) (float64, error) {
	start := time.Now()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ShareGroup(group), kgo.ConsumeTopics(topic),
		kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := setShareEarliest(ctx, cl, group); err != nil {
		return 0, err
	}
	count := 0
	for count < n {
		fs := cl.PollRecords(ctx, 500)
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("timed out at %d of %d records", count, n)
		}
		fs.EachRecord(func(r *kgo.Record) {
			r.Ack(kgo.AckAccept)
			count++
		})
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// setShareEarliest sets share.auto.offset.reset=earliest on group and
// waits until the broker applies it (as Sluice does at start).
func setShareEarliest(ctx context.Context, cl *kgo.Client, group string) error {
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeGroupConfig, group
	rc := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	rc.Name, rc.Value = "share.auto.offset.reset", kmsg.StringPtr("earliest")
	res.Configs = append(res.Configs, rc)
	req.Resources = append(req.Resources, res)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	if err := kerr.ErrorForCode(resp.Resources[0].ErrorCode); err != nil {
		return err
	}
	for {
		d := kmsg.NewPtrDescribeConfigsRequest()
		dr := kmsg.NewDescribeConfigsRequestResource()
		dr.ResourceType, dr.ResourceName = kmsg.ConfigResourceTypeGroupConfig, group
		dr.ConfigNames = []string{"share.auto.offset.reset"}
		d.Resources = append(d.Resources, dr)
		resp, err := d.RequestWith(ctx, cl)
		if err == nil && len(resp.Resources) == 1 {
			for _, c := range resp.Resources[0].Configs {
				if c.Value != nil && *c.Value == "earliest" {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return errors.New("share.auto.offset.reset not applied")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

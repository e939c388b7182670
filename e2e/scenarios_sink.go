package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/consumer"
	"github.com/sluicehq/sluice/sinks"
)

// httpEnv points a process at the suite's HTTP sink.
func httpEnv(sink *HTTPSink, extra map[string]string) map[string]string {
	e := map[string]string{
		"SLUICE_SINK":                "http",
		"SLUICE_SINK_HTTP_URL":       sink.URL(),
		"SLUICE_SINK_HTTP_TIMEOUT":   "2s",
		"SLUICE_SINK_HTTP_MAX_CONNS": "8",
		"SLUICE_RETRY_MAX_BACKOFF":   "1s",
	}
	for k, v := range extra {
		e[k] = v
	}
	return e
}

// 5. The HTTP sink goes away (its port refuses connections) for
// Size.SinkDown while records keep arriving: the window fills, fetching
// pauses, the process's memory stays flat, and when the sink is back
// everything is delivered.
func runSinkDown(ctx context.Context, s *Suite, r *scenarioRun) error {
	r.maxDup = 0
	sink, err := NewHTTPSink(filepath.Join(r.dir, "http-sink.jsonl"))
	if err != nil {
		return err
	}
	defer sink.Close()
	r.sinkPhases = []Phase{{Name: "http", Ledger: filepath.Join(r.dir, "http-sink.jsonl")}}
	a, err := r.start("a", httpEnv(sink, nil))
	if err != nil {
		return err
	}
	// Records keep arriving through the whole outage.
	n := s.Size.Records + int(s.Size.SinkDown.Seconds())*s.Size.Rate/4
	if err := r.produce(ctx, n); err != nil {
		return err
	}
	if err := r.waitLines(ctx, s.Size.Records/5); err != nil {
		return err
	}
	sink.Down()
	down := time.Now()
	atDown := countLines(r.ledgers()...)
	// Let the window fill, then watch memory and the pause state.
	settle := min(5*time.Second, s.Size.SinkDown/4)
	if err := sleep(ctx, settle); err != nil {
		return err
	}
	rss0 := a.RSS()
	rssMax, paused, fill := rss0, 0, 0.0
	var samples int
	for time.Since(down) < s.Size.SinkDown {
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
		rssMax = max(rssMax, a.RSS())
		samples++
		if f, err := a.Flow(ctx); err == nil {
			paused = max(paused, f.Paused)
			fill = max(fill, f.Window.Fill)
		}
	}
	during := countLines(r.ledgers()...) - atDown
	acked := r.prod.Acked()
	if err := sink.Up(); err != nil {
		return err
	}
	up := time.Now()
	atUp := countLines(r.ledgers()...)
	if err := r.poll(ctx, "deliveries after the sink came back", func() bool {
		return countLines(r.ledgers()...) > atUp
	}); err != nil {
		return err
	}
	growth := rssMax - rss0
	r.note("sink down %s at %d deliveries: %d delivered meanwhile, %d produced by then; window fill up to %.2f, %d/%d partitions paused; RSS %.1f MiB -> max %.1f MiB over %d samples (+%.1f MiB); delivering again %s after the sink came back",
		s.Size.SinkDown, atDown, during, acked, fill, paused, s.Size.Partitions,
		mib(rss0), mib(rssMax), samples, mib(growth), time.Since(up).Round(100*time.Millisecond))
	if during != 0 {
		return fmt.Errorf("%d deliveries recorded while the sink was down", during)
	}
	if paused == 0 {
		return fmt.Errorf("no partition paused while the sink was down (window fill %.2f)", fill)
	}
	// Flat: a bounded window means a bounded heap; allow GC noise.
	if limit := rss0/4 + 16<<20; growth > limit {
		return fmt.Errorf("RSS grew %.1f MiB while the sink was down (limit %.1f MiB)", mib(growth), mib(limit))
	}
	r.res.Bound = fmt.Sprintf("lost=0 dup=0 paused rss+<=%.0fMiB", mib(rss0/4+16<<20))
	if err := r.waitDone(ctx); err != nil {
		return err
	}
	return a.Stop(45 * time.Second)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// 6. Some records are poison: the HTTP sink refuses them for good (400).
// They go to the dead-letter topic with headers saying where they came
// from, and their partitions keep flowing.
func runPoison(ctx context.Context, s *Suite, r *scenarioRun) error {
	r.maxDup = 0
	const every = 500
	poison := func(seq int) bool { return seq%every == every/2 }
	dlqTopic := r.topic + "-dlq"
	if err := createTopic(ctx, s.Broker, dlqTopic, 1); err != nil {
		return err
	}
	sink, err := NewHTTPSink(filepath.Join(r.dir, "http-sink.jsonl"))
	if err != nil {
		return err
	}
	defer sink.Close()
	dlqLedger := filepath.Join(r.dir, "dlq.jsonl")
	r.sinkPhases = []Phase{{Name: "http", Ledger: filepath.Join(r.dir, "http-sink.jsonl")}}
	a, err := r.start("a", httpEnv(sink, map[string]string{"SLUICE_DLQ_TOPIC": dlqTopic}))
	if err != nil {
		return err
	}
	start := time.Now()
	if err := r.producePoison(ctx, s.Size.Records, poison); err != nil {
		return err
	}
	want := 0
	for i := range s.Size.Records {
		if poison(i) {
			want++
		}
	}
	if err := r.waitDone(ctx); err != nil {
		return err
	}
	took := time.Since(start)
	if err := a.Stop(45 * time.Second); err != nil {
		return err
	}
	// The dead-letter topic is the second ledger: each entry stands for the
	// record its headers name.
	dl, bad, err := readDLQ(ctx, s.Broker, dlqTopic, r.topic)
	if err != nil {
		return err
	}
	if err := writeLedger(dlqLedger, dl); err != nil {
		return err
	}
	r.sinkPhases = append(r.sinkPhases, Phase{Name: "dlq", Ledger: dlqLedger})
	notPoison := 0
	for _, d := range dl {
		if !strings.HasSuffix(string(d.Value), PoisonMark) {
			notPoison++
		}
	}
	r.note("%d poison records of %d: %d dead-lettered (the sink refused %d times, at most %d times for one record), %d healthy records dead-lettered, %d with bad headers; all delivered or dead-lettered in %s",
		want, s.Size.Records, len(dl), sink.refused.Load(), sink.MostRefusals(), notPoison, bad, took.Round(100*time.Millisecond))
	r.res.Bound = fmt.Sprintf("lost=0 dup=0 dlq=%d", want)
	switch {
	case bad > 0:
		return fmt.Errorf("%d dead-lettered records lack sluice-dlq-* headers", bad)
	case notPoison > 0:
		return fmt.Errorf("%d healthy records were dead-lettered", notPoison)
	case len(dl) < want:
		return fmt.Errorf("%d of %d poison records reached the dead-letter topic", len(dl), want)
	}
	return nil
}

// readDLQ reads the dead-letter topic and turns each record back into the
// delivery its sluice-dlq-* headers name. bad counts records without them.
func readDLQ(ctx context.Context, b Broker, dlqTopic, source string) (ds []Delivery, bad int, err error) {
	cl, err := b.Client()
	if err != nil {
		return nil, 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, dlqTopic)
	cl.Close()
	if err != nil {
		return nil, 0, err
	}
	var end int64
	ends.Each(func(o kadm.ListedOffset) { end += o.Offset })
	if end == 0 {
		return nil, 0, nil
	}
	rd, err := b.Client(kgo.ConsumeTopics(dlqTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		return nil, 0, err
	}
	defer rd.Close()
	var n int64
	for n < end {
		fs := rd.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, 0, fmt.Errorf("read %s: %d of %d records", dlqTopic, n, end)
		}
		fs.EachRecord(func(rec *kgo.Record) {
			n++
			h := map[string]string{}
			for _, x := range rec.Headers {
				h[x.Key] = string(x.Value)
			}
			part, perr := strconv.ParseInt(h[consumer.HeaderDLQPartition], 10, 32)
			off, oerr := strconv.ParseInt(h[consumer.HeaderDLQOffset], 10, 64)
			if perr != nil || oerr != nil || h[consumer.HeaderDLQTopic] != source || h[consumer.HeaderDLQReason] == "" {
				bad++
				return
			}
			ds = append(ds, Delivery{Topic: source, Partition: int32(part), Offset: off, Key: rec.Key, Value: rec.Value})
		})
	}
	return ds, bad, nil
}

// writeLedger writes deliveries as the stdout sink would.
func writeLedger(path string, ds []Delivery) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := sinks.NewStdout(f)
	for _, d := range ds {
		m := &consumer.Message{Source: "kafka", Topic: d.Topic, Partition: d.Partition, Offset: d.Offset, Key: d.Key, Value: d.Value}
		if err := w.Deliver(context.Background(), m); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

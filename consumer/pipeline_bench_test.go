package consumer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkPipeline measures the pipeline's own cost per record, with no
// broker: admit batches of 1000 records from 8 partitions, deliver them to
// a sink that does nothing, commit and release as the Kafka source does.
func BenchmarkPipeline(b *testing.B) {
	for _, ord := range []Ordering{OrderKey, OrderPartition, OrderNone} {
		for _, keys := range []int{0, 64, 4096} {
			b.Run(fmt.Sprintf("%s/keys=%d", ord, keys), func(b *testing.B) {
				benchPipeline(b, ord, keys, false)
			})
		}
	}
}

// BenchmarkPipelineFenced is BenchmarkPipeline with the Kafka source's
// liveness fence in place, as the service runs: the price of checking the
// session before every sink call.
func BenchmarkPipelineFenced(b *testing.B) {
	for _, live := range []bool{false, true} {
		b.Run(fmt.Sprintf("fence=%v", live), func(b *testing.B) { benchPipeline(b, OrderKey, 64, live) })
	}
}

func benchPipeline(b *testing.B, ord Ordering, keys int, fenced bool) {
	cfg := Config{Ordering: ord, Workers: 4, Kafka: KafkaConfig{Brokers: []string{"x:1"}, Topics: []string{"t"}}}
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	win := NewWindow(cfg.MaxRecords, cfg.MaxBytes, cfg.HighWater, cfg.LowWater)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	p := newPipeline(&cfg, SinkFunc(func(_ context.Context, m *Message) error { return nil }), win, log, newMetrics(prometheus.NewRegistry()))
	if fenced {
		p.live = newLiveness(time.Hour, log)
	}
	const parts, batch = 8, 1000
	tps := make([]topicPartition, parts)
	for i := range tps {
		tps[i] = topicPartition{"t", int32(i)}
	}
	p.assign(tps)
	p.resize(cfg.Workers)
	defer p.stop()
	value := make([]byte, 100)
	keyBytes := make([][]byte, keys)
	for i := range keyBytes {
		keyBytes[i] = []byte(fmt.Sprintf("key-%d", i))
	}
	offsets := make([]int64, parts)
	var waiting []fetched
	b.ReportAllocs()
	b.ResetTimer()
	done := 0
	for done < b.N {
		for win.Room() == 0 || len(waiting) > 0 {
			waiting = admitFitting(p, waiting)
			if cps := p.commitPoints(nil); len(cps) > 0 {
				p.committed(cps)
			} else {
				runtime.Gosched() // the workers are still delivering
			}
		}
		part := done / batch % parts
		// As the Kafka source does: pooled blocks of at most blockMax,
		// each Message written whole.
		for off := 0; off < batch; off += blockMax {
			ptrs := newMessages(min(batch-off, blockMax))
			for i, m := range ptrs {
				var key []byte
				if keys > 0 {
					key = keyBytes[(off+i)%keys]
				}
				*m = Message{Topic: "t", Partition: int32(part), Offset: offsets[part], Key: key, Value: value,
					size: int64(len(key) + len(value)), blk: m.blk}
				offsets[part]++
			}
			waiting = append(waiting, fetched{part: p.partition(tps[part]), msgs: ptrs, hwm: -1})
		}
		win.SawRecords(1, 110)
		waiting = admitFitting(p, waiting)
		done += batch
	}
	for p.completed.Load() < uint64(done) {
		// The last batch may not all have fitted: admit the rest as
		// room comes back (without this the loop could spin forever).
		waiting = admitFitting(p, waiting)
		if cps := p.commitPoints(nil); len(cps) > 0 {
			p.committed(cps)
		} else {
			runtime.Gosched()
		}
	}
	b.StopTimer()
}

// admitFitting admits, in order, as much of the waiting batches as the
// window has room for, as a source does through intake's Admit, and
// returns what is left.
func admitFitting(p *pipeline, waiting []fetched) []fetched {
	for len(waiting) > 0 {
		b := &waiting[0]
		n, bytes := p.win.fit(b.msgs)
		if n == 0 {
			break
		}
		p.win.Add(n, bytes)
		p.admit(b.part, b.msgs[:n], bytes, b.hwm)
		if b.msgs = b.msgs[n:]; len(b.msgs) == 0 {
			waiting = waiting[1:]
		}
	}
	return waiting
}

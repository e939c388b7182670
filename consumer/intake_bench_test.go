package consumer_test

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/consumer"
	"github.com/sluicehq/sluice/internal/kafkatest"
)

// BenchmarkIntake measures the whole intake path as the service runs it, per
// record: the Kafka source's fetch loop on a broker (kfake in this process,
// or the one SLUICEDEV_TEST_KAFKA_BROKERS names), the window, the tracker,
// the lanes, 4 workers, a sink that does nothing, and the commits. "raw" is a
// plain franz-go PollFetches loop over the same records, for comparison: the
// difference between the two is Sluice's own cost. One op is one record, so
// -benchmem's allocs/op and B/op are per record (the embedded broker's
// allocations included, on both sides alike); cpu-ns/record is the process's
// CPU time. Each run preloads b.N records of 100 bytes with 4 096 keys into
// 8 partitions, then consumes them from a new group (joining it included):
//
//	go test -run '^$' -bench BenchmarkIntake -benchmem -benchtime 300000x ./consumer/
func BenchmarkIntake(b *testing.B) {
	b.Run("raw", func(b *testing.B) {
		benchIntake(b, func(brokers []string, topic, group string, n int, mark func(int)) error {
			cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
			if err != nil {
				return err
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			count := 0
			for count < n {
				fs := cl.PollFetches(ctx)
				if err := ctx.Err(); err != nil {
					return err
				}
				fs.EachRecord(func(*kgo.Record) {
					switch count++; count {
					case n / 2:
						mark(0)
					case n:
						mark(1)
					}
				})
			}
			return nil
		})
	})
	for _, ord := range []consumer.Ordering{consumer.OrderNone, consumer.OrderPartition, consumer.OrderKey} {
		b.Run(string(ord), func(b *testing.B) {
			benchIntake(b, func(brokers []string, topic, group string, n int, mark func(int)) error {
				return consumeAll(brokers, topic, group, ord, n, mark)
			})
		})
	}
}

// consumeAll runs a consumer with a noop sink until n records were
// delivered, then stops it; it calls mark(0) when n/2 were and mark(1)
// when all were.
func consumeAll(brokers []string, topic, group string, ord consumer.Ordering, n int, mark func(int)) error {
	var delivered atomic.Int64
	all := make(chan struct{})
	sink := consumer.SinkFunc(func(context.Context, *consumer.Message) error {
		switch delivered.Add(1) {
		case int64(n / 2):
			mark(0)
		case int64(n):
			mark(1)
			close(all)
		}
		return nil
	})
	cfg := consumer.Config{Ordering: ord, Workers: 4,
		Kafka: consumer.KafkaConfig{Brokers: brokers, Topics: []string{topic}, Group: group}}
	c, err := consumer.New(cfg, sink, consumer.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return err
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	select {
	case <-all:
	case err := <-done:
		return fmt.Errorf("consumer stopped after %d of %d records: %v", delivered.Load(), n, err)
	case <-time.After(5 * time.Minute):
		stop()
		<-done
		return fmt.Errorf("timed out after %d of %d records", delivered.Load(), n)
	}
	stop()
	return <-done
}

var intakeRound atomic.Int64

func benchIntake(b *testing.B, consume func(brokers []string, topic, group string, n int, mark func(int)) error) {
	const partitions, keys = 8, 4096
	cl, topics := kafkatest.New(b, partitions, "intake")
	value := make([]byte, 100)
	keyBytes := make([][]byte, keys)
	for i := range keyBytes {
		keyBytes[i] = fmt.Appendf(nil, "k%d", i)
	}
	cl.ProduceEven(topics[0], partitions, b.N, func(i int) ([]byte, []byte) { return keyBytes[i%keys], value })
	group := fmt.Sprintf("%s-%d", topics[0], intakeRound.Add(1))
	b.ReportAllocs()
	var m0, m1 runtime.MemStats
	// Memory statistics when half the records were consumed, and all: the
	// sink takes them on two different workers.
	var marks [2]runtime.MemStats
	var marked [2]bool
	var marksMu sync.Mutex
	runtime.ReadMemStats(&m0)
	cpu0 := cpuTime()
	b.ResetTimer()
	mark := func(i int) {
		marksMu.Lock()
		defer marksMu.Unlock()
		runtime.ReadMemStats(&marks[i])
		marked[i] = true
	}
	if err := consume(cl.Brokers, topics[0], group, b.N, mark); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&m1)
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/record")
	// allocs/op rounds down to a whole number; this keeps the fraction.
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(b.N), "allocs/record")
	// The second half alone: past the start (joining the group, filling the
	// pools, a lane for each new key), what a running service allocates.
	if b.N < 2 {
		return // the framework's first probe: no halves
	}
	marksMu.Lock()
	defer marksMu.Unlock()
	if !marked[0] || !marked[1] {
		b.Fatalf("memory statistics taken at half and at the end: %v, want both", marked)
	}
	b.ReportMetric(float64(marks[1].Mallocs-marks[0].Mallocs)/float64(b.N-b.N/2), "allocs/record-2nd-half")
	b.ReportMetric(float64(m1.PauseTotalNs-m0.PauseTotalNs)/float64(b.N), "gc-pause-ns/record")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

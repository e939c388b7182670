package e2e

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// PO names one record: partition and offset.
type PO struct {
	Partition int32
	Offset    int64
}

// Producer writes numbered records to a topic at a steady rate: key
// "k<seq mod 64>", value "<topic>#<seq>". It remembers every record the
// broker acknowledged, by partition and offset.
type Producer struct {
	cl      *kgo.Client
	topic   string
	n, rate int
	poison  func(seq int) bool

	sent, acked, failed atomic.Int64
	mu                  sync.Mutex
	ack                 map[PO]string
	firstErr            error
	done                chan struct{}
	abort               context.CancelFunc
}

// Value is the value the producer gives record seq of topic.
func Value(topic string, seq int) string { return fmt.Sprintf("%s#%d", topic, seq) }

// StartProducer produces n records at rate per second (0: as fast as
// possible) until done or ctx ends. Wait returns when every record was
// acknowledged or failed.
func StartProducer(ctx context.Context, b Broker, topic string, n, rate int) (*Producer, error) {
	return startProducer(ctx, b, topic, n, rate, nil)
}

// startProducer is StartProducer; records for which poison is true get
// PoisonMark appended to their value.
func startProducer(ctx context.Context, b Broker, topic string, n, rate int, poison func(int) bool) (*Producer, error) {
	cl, err := b.Client(
		kgo.DefaultProduceTopic(topic),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.RecordDeliveryTimeout(2*time.Minute),
		kgo.RequestTimeoutOverhead(5*time.Second),
	)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &Producer{cl: cl, topic: topic, n: n, rate: rate, poison: poison, ack: make(map[PO]string, n), done: make(chan struct{}), abort: cancel}
	go p.run(ctx)
	return p, nil
}

func (p *Producer) run(ctx context.Context) {
	defer close(p.done)
	defer p.cl.Close()
	const tick = 10 * time.Millisecond
	start := time.Now()
	for seq := 0; seq < p.n && ctx.Err() == nil; seq++ {
		if p.rate > 0 {
			due := start.Add(time.Duration(float64(seq) / float64(p.rate) * float64(time.Second)))
			if d := time.Until(due); d > tick {
				select {
				case <-time.After(d):
				case <-ctx.Done():
				}
			}
		}
		r := &kgo.Record{Key: fmt.Appendf(nil, "k%d", seq%64), Value: []byte(Value(p.topic, seq))}
		if p.poison != nil && p.poison(seq) {
			r.Value = append(r.Value, PoisonMark...)
		}
		p.sent.Add(1)
		p.cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			if err != nil {
				p.failed.Add(1)
				p.mu.Lock()
				if p.firstErr == nil {
					p.firstErr = err
				}
				p.mu.Unlock()
				return
			}
			p.acked.Add(1)
			p.mu.Lock()
			p.ack[PO{r.Partition, r.Offset}] = string(r.Value)
			p.mu.Unlock()
		})
	}
	fctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	_ = p.cl.Flush(fctx)
	p.abort()
}

// Abort stops producing and gives up on records not yet acknowledged.
func (p *Producer) Abort() { p.abort() }

// Acked is how many records the broker acknowledged so far.
func (p *Producer) Acked() int64 { return p.acked.Load() }

// Done is closed when every record was acknowledged or failed.
func (p *Producer) Done() <-chan struct{} { return p.done }

// Wait waits for the producer to finish and returns what was acknowledged,
// how many records failed, and the first failure.
func (p *Producer) Wait() (map[PO]string, int64, error) {
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ack, p.failed.Load(), p.firstErr
}

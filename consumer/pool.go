package consumer

import (
	"context"
	"math"
	"time"
)

// resize sets the number of workers. Extra workers exit after their current
// batch; new ones start at once.
func (p *pipeline) resize(n int) {
	n = max(1, n)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	p.target = n
	for p.running < p.target {
		p.running++
		p.wg.Add(1)
		go p.worker()
	}
	if p.running > p.target {
		p.work.Broadcast()
	}
}

func (p *pipeline) size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.target
}

// worker takes a batch from a ready lane, delivers it, and marks it done.
func (p *pipeline) worker() {
	defer p.wg.Done()
	p.mu.Lock()
	var held *lane
	batch := make([]*Message, 0, p.batchMax) // the worker's own, reused
	var delivered int
	for {
		if held != nil {
			p.finish(held, batch, delivered)
			held = nil
			clear(batch)
			batch = batch[:0]
		}
		if p.stopped || p.running > p.target {
			p.running--
			p.mu.Unlock()
			return
		}
		l := p.popReady()
		if l == nil {
			p.work.Wait()
			continue
		}
		batch = l.take(batch, p.batchMax)
		l.active = true
		held = l
		n := len(batch)
		l.part.takenEnd = max(l.part.takenEnd, batch[n-1].Offset+1)
		l.part.queued -= n
		l.part.inflight += n
		p.queued -= n
		p.infl += n
		p.mu.Unlock()

		delivered = p.deliver(l.part, batch)
		if delivered > 0 && p.untracked {
			p.settled(batch[:delivered])
		}
		p.mu.Lock()
	}
}

// settled hands an untracked source's done messages to its acker, if any,
// then gives their places in the window back. Called without the lock.
func (p *pipeline) settled(done []*Message) {
	if p.acker != nil {
		p.acker.ack(done)
	}
	var bytes int64
	for _, m := range done {
		bytes += m.size
	}
	p.win.Release(len(done), bytes)
	p.released()
}

// BatchSink is an optional Sink capability: DeliverBatch stores several
// messages at once (one HTTP request, one INSERT). It returns how many of
// msgs, from the front, are stored; when that is fewer than len(msgs), err
// says why the next one was not. The pipeline hands it the messages a worker
// took from one lane (so they keep their order), and after an error it
// delivers the rest one by one with Deliver, so that a failure is pinned on
// the message that caused it and retried, dead-lettered or blocked alone. A
// failed batch is not counted as an attempt of any of its messages.
type BatchSink interface {
	DeliverBatch(ctx context.Context, msgs []*Message) (int, error)
}

// DeliverBatch hands msgs to s: in one call when s is a BatchSink, else one
// by one, stopping at the first error. It returns how many, from the front,
// were delivered. Sink decorators use it to pass batches through.
func DeliverBatch(ctx context.Context, s Sink, msgs []*Message) (int, error) {
	if b, ok := s.(BatchSink); ok {
		return b.DeliverBatch(ctx, msgs)
	}
	for i, m := range msgs {
		if err := s.Deliver(ctx, m); err != nil {
			return i, err
		}
	}
	return len(msgs), nil
}

// deliver hands a batch of one partition to the sink in order, each
// message until it is delivered, dead-lettered or dropped. It stops early
// when the partition is leaving (the rest is the next owner's) and when the
// partition's context ends. It returns how many messages of the batch (a
// prefix) are done.
func (p *pipeline) deliver(part *partition, batch []*Message) int {
	ctx := part.ctx
	last := lastOffset(batch)
	p.busy.Add(1)
	start := time.Now()
	done := 0
	if p.batch != nil && len(batch) > 1 && last < part.leaveFrom.Load() && p.mayDeliver(ctx) {
		done = p.deliverBatch(ctx, batch)
		p.completed.Add(uint64(done))
	}
	// Completions are counted in groups so that workers do not all write
	// one shared counter for every record, and often enough for the
	// autoscaler to see a slow sink's progress. The sink time of a group is
	// counted with it: counted only at the end of a batch, the time of a
	// batch of 256 slow records (seconds) would land in one sampling
	// interval and its completions in the ones before, and the autoscaler
	// would read a sink time per record and a busy ratio that swing by
	// tens of times from one interval to the next.
	counted := done
	mark := start
	for i, m := range batch[done:] {
		// The fence: the clock is read before the first record, every
		// 16th after it, and whenever the liveness timer has marked the
		// session suspect (a clock reading per record would cost several
		// per cent of a fast sink's throughput).
		if part.stops(m) || ((i&15 == 0 || p.suspect()) && !p.mayDeliver(ctx)) {
			break
		}
		if !p.deliverOne(ctx, m) {
			break
		}
		done++
		if done-counted == 16 {
			now := time.Now()
			p.busyNanos.Add(int64(now.Sub(mark)))
			p.sinkNanos.Add(int64(now.Sub(mark)))
			p.completed.Add(16)
			counted, mark = done, now
		}
	}
	now := time.Now()
	p.completed.Add(uint64(done - counted))
	p.busy.Add(-1)
	p.busyNanos.Add(int64(now.Sub(mark)))
	p.sinkNanos.Add(int64(now.Sub(mark)))
	if done > 0 {
		p.met.observeDelivery(now.Sub(start), done)
	}
	return done
}

// lastOffset returns the highest offset in batch, reading the first cache
// line of every message in one tight loop before the first delivery. Those
// loads do not depend on each other, so the CPU overlaps their cache
// misses, where the delivery loop, a sink call apart, would take them one
// after another: with key ordering a batch's messages are scattered over a
// poll's blocks, and this halved the workers' share of the CPU (measured).
func lastOffset(batch []*Message) int64 {
	last := int64(math.MinInt64)
	for _, m := range batch {
		last = max(last, m.Offset)
	}
	return last
}

// suspect reports whether the liveness timer has marked the session
// suspect (see liveness.suspect).
func (p *pipeline) suspect() bool { return p.live != nil && p.live.suspect.Load() }

// mayDeliver waits while the member is fenced (see liveness) and reports
// whether it may call the sink: false once ctx (the partition's) ends.
func (p *pipeline) mayDeliver(ctx context.Context) bool {
	if p.live == nil || !p.live.closed() {
		return true
	}
	return p.live.wait(ctx)
}

// deliverOne is the hot path: one call to the sink. A failure goes to the
// failure policy (retry.go): retries with backoff and jitter, then the
// dead-letter destination, or blocking (the lane holds, the partition's
// commits stop, the window fills and pauses intake; nothing is lost) or
// dropping, as configured. ctx is the partition's.
func (p *pipeline) deliverOne(ctx context.Context, m *Message) bool {
	m.Attempt++
	err := p.sink.Deliver(ctx, m)
	if err == nil {
		return true
	}
	return p.retry(ctx, m, err)
}

// deliverBatch offers the whole batch to a BatchSink and returns how many
// messages, from the front, it stored. Those it did not store get their
// attempt back: deliverOne tries them one by one.
func (p *pipeline) deliverBatch(ctx context.Context, batch []*Message) int {
	for _, m := range batch {
		m.Attempt++
	}
	n, err := p.batch.DeliverBatch(ctx, batch)
	if n >= len(batch) {
		return len(batch)
	}
	p.errs.Add(1)
	p.met.deliveryErrors.Inc()
	for _, m := range batch[n:] {
		m.Attempt--
	}
	p.log.Debug("batch delivery failed, delivering one by one", "topic", batch[n].Topic,
		"partition", batch[n].Partition, "offset", batch[n].Offset, "messages", len(batch)-n, errAttr(err))
	return n
}

// stop ends the workers: those inside the sink see their context cancelled.
// It waits for them to return.
func (p *pipeline) stop() {
	p.mu.Lock()
	p.stopped = true
	p.work.Broadcast()
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
}

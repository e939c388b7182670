package consumer

import (
	"context"
	"log/slog"
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// lane is a queue of messages that must be delivered one after another: all
// messages with one key (key ordering), all of one partition (partition
// ordering), or a chunk of messages with no order between them (no ordering,
// or records without a key). At most one worker holds a lane at a time.
type lane struct {
	part   *partition
	key    string // map key in part.keys; "" for partition lanes and chunks
	keyed  bool
	q      []*Message
	head   int
	active bool // a worker is delivering a batch from it
	ready  bool // it is on the ready queue
}

func (l *lane) pending() int { return len(l.q) - l.head }

// take removes up to n messages from the front. The returned slice is the
// worker's own: the lane never writes into that part of its array again
// until the worker has finished it (finish then resets an empty lane).
func (l *lane) take(n int) []*Message {
	end := min(l.head+n, len(l.q))
	b := l.q[l.head:end:end]
	l.head = end
	if l.head < len(l.q) && l.head >= 1024 && l.head*2 >= len(l.q) {
		// A new array (the worker reads b from the old one), with room
		// to grow: sized to what is left, every append after it would
		// reallocate it again.
		rest := len(l.q) - l.head
		q := make([]*Message, rest, max(2*rest, 1024))
		copy(q, l.q[l.head:])
		l.q, l.head = q, 0
	}
	return b
}

// reset empties a lane that no worker holds, keeping its array for the
// next messages (take leaves it in place while a worker may still read the
// batch it took from it).
func (l *lane) reset() {
	clear(l.q)
	l.q, l.head = l.q[:0], 0
}

// pipeline is the source-independent core: it admits messages into the
// tracker and the lanes, runs the worker pool that hands them to the sink,
// and hands out the done prefix of each partition for committing.
//
// One mutex guards the tracker, the lanes and the pool. Workers take it once
// per batch, not once per message.
type pipeline struct {
	ordering Ordering
	batchMax int
	sink     Sink
	win      *Window
	log      *slog.Logger
	met      *metrics
	batch    BatchSink // sink, when it can take a batch at once; else nil

	// fail decides what happens to a failed delivery (see retry.go); dl is
	// the dead-letter destination and its counters (see deadletter.go).
	fail failurePolicy
	dl   *deadLetters
	// settle, when set, lets a source that can redeliver by itself take a
	// failed message over instead of the worker retrying it in place. It is
	// called (without the lock) for each retry and block decision, before
	// the worker waits d.delay. Returning true settles the message: the
	// pipeline counts it done (the tracker moves past it) and does not
	// retry it. A JetStream source does NakWithDelay(d.delay) there, marks
	// its ack handle so that onDone does not ack it, and returns true: the
	// server redelivers it later as a new message, and the worker is free
	// at once. Dead-letter and drop decisions are carried out by the
	// pipeline either way; onDone then acks the message (Term would do too).
	// Returning false keeps the in-process retry.
	settle func(m *Message, d decision) bool

	// onDone, when set, is called (without the lock) with each batch the
	// sink delivered. The JetStream source acks there.
	onDone func([]*Message)
	// untracked keeps admitted messages out of the tracker: the source
	// settles each message with the broker itself in onDone (a JetStream
	// ack; nothing for core NATS) and gives its window share back there,
	// so there are no commit points. The NATS sources set it.
	untracked bool
	// live, when set, fences deliveries while the member may have lost
	// its group session (see liveness): a worker waits for it before
	// every sink call. The Kafka source sets it.
	live *liveness
	// kickCommit is signalled when enough is done to be worth a commit.
	kickCommit chan struct{}
	kickAt     int64 // done-but-uncommitted records that trigger a kick

	ctx    context.Context // workers' context: cancelled at the hard stop
	cancel context.CancelFunc

	mu    sync.Mutex
	work  sync.Cond // a lane became ready, or the pool shrank
	quiet sync.Cond // deliveries finished (revoke and drain wait on it)
	parts map[topicPartition]*partition
	// leavers are removed partitions with deliveries still inside a
	// worker; a new assignment of the same partition waits for them.
	leavers map[topicPartition]*partition
	ready   []*lane
	readyAt int
	// freeLanes are emptied key and chunk lanes kept for reuse (newLane).
	freeLanes []*lane
	queued    int   // admitted, waiting for a worker
	infl      int   // inside a worker
	relRecs   int64 // done but not yet committed, all partitions

	// Pause policy state (flow.go).
	pauseDelay time.Duration
	highSince  time.Time // when the fill reached high water; zero once it is back at low water

	target, running int
	stopped         bool
	wg              sync.WaitGroup

	busy      atomic.Int64
	busyNanos atomic.Int64
	sinkNanos atomic.Int64
	arrived   atomic.Uint64
	completed atomic.Uint64
	errs      atomic.Uint64
}

type backoff struct {
	initial, max time.Duration
}

// next returns the delay before the given retry (1-based), with full jitter
// over the upper half so synchronized failures spread out.
func (b backoff) next(attempt int) time.Duration {
	d := b.initial
	for i := 1; i < attempt && d < b.max; i++ {
		d *= 2
	}
	d = min(d, b.max)
	return d/2 + rand.N(d/2+1)
}

func newPipeline(cfg *Config, sink Sink, win *Window, log *slog.Logger, met *metrics) *pipeline {
	p := &pipeline{
		ordering:   cfg.Ordering,
		batchMax:   cfg.BatchMax,
		sink:       sink,
		win:        win,
		log:        log,
		met:        met,
		fail:       newFailurePolicy(cfg, false),
		dl:         newDeadLetters(nil, prometheus.NewRegistry()),
		kickCommit: make(chan struct{}, 1),
		kickAt:     max(1, int64(cfg.MaxRecords)/4),
		pauseDelay: cfg.PauseDelay,
		parts:      make(map[topicPartition]*partition),
		leavers:    make(map[topicPartition]*partition),
	}
	p.batch, _ = sink.(BatchSink)
	p.work.L = &p.mu
	p.quiet.L = &p.mu
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p
}

// assign adds partitions. A partition that is already there keeps its state.
func (p *pipeline) assign(tps []topicPartition) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, tp := range tps {
		if _, ok := p.parts[tp]; ok {
			continue
		}
		part := newPartition(tp)
		part.ctx, part.cancel = context.WithCancel(p.ctx)
		if old := p.leavers[tp]; old != nil {
			part.pred, old.succ = old, part
		}
		p.parts[tp] = part
	}
}

// partitionsOf returns the live partitions among tps.
func (p *pipeline) partitionsOf(tps []topicPartition) []*partition {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*partition
	for _, tp := range tps {
		if part := p.parts[tp]; part != nil {
			out = append(out, part)
		}
	}
	return out
}

// partition returns the live state of an assigned partition, or nil.
func (p *pipeline) partition(tp topicPartition) *partition {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.parts[tp]
}

// fetched is a batch of one partition's messages, in offset order, waiting
// for room in the window. part is the partition's state when it was
// fetched: if the partition is revoked (and maybe re-assigned) meanwhile,
// part is gone and the batch is dropped, never mixed into the new state.
type fetched struct {
	part *partition
	msgs []*Message
	hwm  int64
}

// admitFitting admits, in order, as much of the waiting batches as the
// window has room for, and returns what is left. Only the fetching
// goroutine adds to the window, so what fits now still fits when added.
func (p *pipeline) admitFitting(waiting []fetched) []fetched {
	for len(waiting) > 0 {
		b := &waiting[0]
		n, bytes := p.win.fit(b.msgs)
		if n == 0 {
			break
		}
		p.win.Add(n, bytes)
		p.admit(b.part, b.msgs[:n], b.hwm)
		b.msgs = b.msgs[n:]
		if len(b.msgs) == 0 {
			waiting[0] = fetched{}
			waiting = waiting[1:]
		}
	}
	if len(waiting) == 0 {
		return nil
	}
	return waiting
}

// admit hands a partition's newly fetched messages, in offset order, to the
// tracker and the lanes. The caller has already added them to the window.
// Messages for a partition that is no longer assigned are released again
// and dropped: the broker will hand them to whoever owns the partition.
func (p *pipeline) admit(part *partition, msgs []*Message, hwm int64) {
	p.mu.Lock()
	if part.gone || part.revoking {
		var bytes int64
		for _, m := range msgs {
			bytes += m.size
		}
		releaseMessages(msgs)
		p.mu.Unlock()
		p.win.Release(len(msgs), bytes)
		return
	}
	if hwm >= 0 {
		part.hwm = hwm
	}
	var chunk *lane
	for _, m := range msgs {
		m.part = part
		if p.untracked {
			part.fetched = max(part.fetched, m.Offset+1)
		} else {
			m.seq = part.track(m.Offset, m.size, m.epoch)
		}
		var l *lane
		switch {
		case p.ordering == OrderPartition:
			if part.lane == nil {
				part.lane = &lane{part: part}
			}
			l = part.lane
		case p.ordering == OrderKey && len(m.Key) > 0:
			l = part.keys[string(m.Key)]
			if l == nil {
				if part.keys == nil {
					part.keys = make(map[string]*lane)
				}
				l = p.newLane(part)
				l.key, l.keyed = string(m.Key), true
				part.keys[l.key] = l
			}
		default: // no ordering, or a record without a key
			if chunk == nil || chunk.pending() >= p.batchMax {
				chunk = p.newLane(part)
			}
			l = chunk
		}
		l.q = append(l.q, m)
		if !l.active && !l.ready {
			p.pushReady(l)
		}
	}
	part.queued += len(msgs)
	p.queued += len(msgs)
	p.mu.Unlock()
	p.arrived.Add(uint64(len(msgs)))
}

func (p *pipeline) pushReady(l *lane) {
	l.ready = true
	p.ready = append(p.ready, l)
	p.work.Signal()
}

// popReady returns the next lane with work, skipping lanes of partitions
// that are being revoked (their messages are dropped).
func (p *pipeline) popReady() *lane {
	for p.readyAt < len(p.ready) {
		l := p.ready[p.readyAt]
		p.ready[p.readyAt] = nil
		p.readyAt++
		if p.readyAt == len(p.ready) {
			p.ready, p.readyAt = p.ready[:0], 0
		} else if p.readyAt >= 1024 && p.readyAt*2 >= len(p.ready) {
			n := copy(p.ready, p.ready[p.readyAt:])
			clear(p.ready[n:])
			p.ready, p.readyAt = p.ready[:n], 0
		}
		if l.part.pred != nil {
			// An earlier assignment of this partition is still inside
			// the sink: wait for it (the lane stays marked ready, so
			// admit does not queue it twice).
			l.part.parked = append(l.part.parked, l)
			continue
		}
		l.ready = false
		if l.part.revoking {
			p.trimLane(l)
			if l.pending() == 0 {
				p.dropLane(l)
				continue
			}
		}
		return l
	}
	return nil
}

// unpark lets a partition's parked lanes go once the earlier assignment
// it waited for has no delivery left inside a worker. Called with the lock
// held.
func (p *pipeline) unpark(old *partition) {
	if p.leavers[old.topicPartition] == old {
		delete(p.leavers, old.topicPartition)
	}
	next := old.succ
	if next == nil {
		return
	}
	old.succ, next.pred = nil, nil
	for _, l := range next.parked {
		l.ready = false
		p.pushReady(l)
	}
	next.parked = nil
}

// dropLane discards a lane's queued messages (their partition is going away).
func (p *pipeline) dropLane(l *lane) {
	n := l.pending()
	releaseMessages(l.q[l.head:])
	clear(l.q)
	l.q, l.head = l.q[:0], 0
	l.part.queued -= n
	p.queued -= n
	if l.keyed && !l.active {
		delete(l.part.keys, l.key)
	}
	p.freeLane(l)
}

// maxFreeLanes bounds the lanes kept for reuse, and maxFreeLaneCap the
// queue a kept lane brings along.
const maxFreeLanes, maxFreeLaneCap = 4096, 1024

// newLane returns an empty lane of part, reused when one is free. Called
// with the lock held.
func (p *pipeline) newLane(part *partition) *lane {
	if n := len(p.freeLanes); n > 0 {
		l := p.freeLanes[n-1]
		p.freeLanes[n-1] = nil
		p.freeLanes = p.freeLanes[:n-1]
		l.part = part
		return l
	}
	return &lane{part: part}
}

// freeLane keeps l for reuse if nothing refers to it any more: it is empty,
// no worker holds it, it is on no ready queue (nor parked), it is not its
// partition's lane, and a keyed lane is no longer in its partition's map.
// Called with the lock held.
func (p *pipeline) freeLane(l *lane) {
	if l.active || l.ready || l.pending() > 0 || l == l.part.lane || len(p.freeLanes) >= maxFreeLanes {
		return
	}
	if l.keyed && l.part.keys[l.key] == l {
		return
	}
	clear(l.q)
	q := l.q[:0]
	if cap(q) > maxFreeLaneCap {
		q = nil
	}
	*l = lane{q: q}
	p.freeLanes = append(p.freeLanes, l)
}

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
	var batch []*Message
	var delivered int
	for {
		if held != nil {
			p.finish(held, batch, delivered)
			held, batch = nil, nil
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
		batch = l.take(p.batchMax)
		l.active = true
		held = l
		n := len(batch)
		l.part.queued -= n
		l.part.inflight += n
		p.queued -= n
		p.infl += n
		p.mu.Unlock()

		delivered = p.deliver(l.part, batch)
		if delivered > 0 && p.onDone != nil {
			p.onDone(batch[:delivered])
		}
		// Nothing reads the batch's keys and values after this: their
		// records go back to the client's pool outside the lock.
		recycle(batch)
		p.mu.Lock()
	}
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
	p.busy.Add(1)
	start := time.Now()
	done := 0
	if p.batch != nil && len(batch) > 1 && !part.stops(batch[len(batch)-1]) && p.mayDeliver(ctx) {
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

// finish marks the delivered prefix of a batch done and puts the lane back
// in line if it has more. Called with the lock held.
func (p *pipeline) finish(l *lane, batch []*Message, delivered int) {
	part := l.part
	part.inflight -= len(batch)
	p.infl -= len(batch)
	if part.gone && part.inflight == 0 {
		p.unpark(part)
	}
	if !part.gone && !p.untracked {
		for _, m := range batch[:delivered] {
			p.relRecs += int64(part.markDone(m.seq))
		}
	}
	releaseMessages(batch)
	l.active = false
	if part.revoking {
		p.trimLane(l)
	}
	switch {
	case part.revoking && l.pending() == 0:
		p.dropLane(l)
	case l.pending() > 0:
		p.pushReady(l)
	case l.keyed:
		delete(part.keys, l.key)
		p.freeLane(l)
	default:
		l.reset()
		p.freeLane(l)
	}
	p.quiet.Broadcast()
	if p.relRecs >= p.kickAt {
		p.kick()
	}
}

// waitQuiet blocks until cond holds (checked under the lock) or ctx ends.
func (p *pipeline) waitQuiet(ctx context.Context, cond func() bool) bool {
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.quiet.Broadcast()
		p.mu.Unlock()
	})
	defer stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for !cond() {
		if ctx.Err() != nil {
			return false
		}
		p.quiet.Wait()
	}
	return true
}

// drain waits until everything admitted has been delivered, or ctx ends.
func (p *pipeline) drain(ctx context.Context) bool {
	return p.waitQuiet(ctx, func() bool { return p.queued == 0 && p.infl == 0 })
}

// stopDispatch is a revoke's first step: no new messages are admitted for
// the partitions, and of their queued messages only those below the
// partition's frontier are still delivered: the gaps between messages
// already delivered (or inside a worker), which the other keys' lanes left
// behind a slow one. The rest is dropped: it is the next owner's. It then
// waits, until ctx ends, for the gaps and the batches inside workers to be
// done, so the committed prefix reaches the frontier and the next owner
// repeats nothing. It reports whether they all finished.
func (p *pipeline) stopDispatch(ctx context.Context, parts []*partition) bool {
	p.mu.Lock()
	for _, part := range parts {
		if !part.revoking {
			part.revoking = true
			part.leaveFrom.Store(min(part.leaveFrom.Load(), p.frontier(part)))
		}
		p.trimLanes(part)
	}
	p.mu.Unlock()
	return p.waitQuiet(ctx, func() bool {
		for _, part := range parts {
			if part.inflight > 0 || part.queued > 0 {
				return false
			}
		}
		return true
	})
}

// frontier is the offset after the last message of part that is done or
// inside a worker: what the revoke still delivers is below it. Called with
// the lock held; it walks the tracker and the partition's queued messages
// once (a revoke is rare).
func (p *pipeline) frontier(part *partition) int64 {
	if p.untracked {
		return math.MinInt64 // no tracker: acks are per message, nothing to fill
	}
	queued := make(map[int64]struct{}, part.queued)
	p.eachLane(part, func(l *lane) {
		for _, m := range l.q[l.head:] {
			queued[m.Offset] = struct{}{}
		}
	})
	f := int64(math.MinInt64)
	for _, e := range part.entries[part.head:] {
		if _, q := queued[e.offset]; !q || e.done {
			f = max(f, e.offset+1)
		}
	}
	return f
}

// eachLane calls fn for every lane of part that may hold queued messages:
// its partition lane, its key lanes, and the chunk lanes waiting in the
// ready queue or parked. Called with the lock held.
func (p *pipeline) eachLane(part *partition, fn func(*lane)) {
	seen := make(map[*lane]bool)
	visit := func(l *lane) {
		if l != nil && l.part == part && !seen[l] {
			seen[l] = true
			fn(l)
		}
	}
	visit(part.lane)
	for _, l := range part.keys {
		visit(l)
	}
	for _, l := range p.ready[p.readyAt:] {
		visit(l)
	}
	for _, l := range part.parked {
		visit(l)
	}
}

// trimLanes drops the queued messages of part at or past its leaveFrom,
// and the lanes left empty that no worker holds. Called with the lock held.
func (p *pipeline) trimLanes(part *partition) {
	var empty []*lane
	p.eachLane(part, func(l *lane) {
		p.trimLane(l)
		if l.pending() == 0 && !l.active && !l.ready {
			empty = append(empty, l)
		}
	})
	for _, l := range empty {
		p.dropLane(l)
	}
}

// trimLane drops l's queued messages at or past its partition's leaveFrom
// (a lane's queue is in offset order). Called with the lock held.
func (p *pipeline) trimLane(l *lane) {
	q := l.q[l.head:]
	from := l.part.leaveFrom.Load()
	i := sort.Search(len(q), func(i int) bool { return q[i].Offset >= from })
	n := len(q) - i
	if n == 0 {
		return
	}
	releaseMessages(q[i:])
	clear(q[i:])
	l.q = l.q[:l.head+i]
	l.part.queued -= n
	p.queued -= n
}

// abandon stops dispatching the partitions and cancels their context: the
// deliveries inside workers see it and return, undelivered ones are left
// to the next owner.
func (p *pipeline) abandon(parts []*partition) {
	for _, part := range parts {
		part.leaveFrom.Store(math.MinInt64)
	}
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	p.stopDispatch(expired, parts)
	for _, part := range parts {
		part.cancel()
	}
}

// remove forgets partitions and gives their whole share of the window back.
// Messages of theirs still inside a worker are ignored when they finish.
func (p *pipeline) remove(parts []*partition) {
	var recs, bytes int64
	p.mu.Lock()
	for _, part := range parts {
		if part.gone {
			continue
		}
		part.gone = true
		part.revoking = true
		part.leaveFrom.Store(math.MinInt64)
		part.cancel()
		if part.inflight > 0 {
			p.leavers[part.topicPartition] = part
		} else {
			p.unpark(part)
		}
		p.relRecs -= part.relRecords
		recs += part.heldRecords
		bytes += part.heldBytes
		part.heldRecords, part.heldBytes = 0, 0
		part.entries = nil
		if p.parts[part.topicPartition] == part {
			delete(p.parts, part.topicPartition)
		}
	}
	p.mu.Unlock()
	// Queued messages of removed partitions leave through popReady.
	p.win.Release(int(recs), bytes)
}

// commitPoints takes the done prefix of each of the given partitions (all
// when parts is nil) that moved since the last commit. The caller must
// report each point back with committed or uncommitted.
func (p *pipeline) commitPoints(parts []*partition) []commitPoint {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []commitPoint
	take := func(part *partition) {
		if part.gone || part.relRecords == 0 {
			return
		}
		out = append(out, commitPoint{
			part: part, offset: part.doneOffset, epoch: part.doneEpoch,
			records: part.relRecords, bytes: part.relBytes,
		})
		p.relRecs -= part.relRecords
		part.relRecords, part.relBytes = 0, 0
	}
	if parts == nil {
		for _, part := range p.parts {
			take(part)
		}
	} else {
		for _, part := range parts {
			take(part)
		}
	}
	return out
}

// committed records that the broker stored cp and gives its records' places
// in the window back.
func (p *pipeline) committed(cps []commitPoint) {
	var recs, bytes int64
	p.mu.Lock()
	for _, cp := range cps {
		part := cp.part
		if part.gone {
			continue // remove already released the partition's whole share
		}
		part.committed = max(part.committed, cp.offset)
		part.heldRecords -= cp.records
		part.heldBytes -= cp.bytes
		recs += cp.records
		bytes += cp.bytes
	}
	p.mu.Unlock()
	p.win.Release(int(recs), bytes)
}

// uncommitted puts points whose commit failed back, to be retried with the
// next commit. Their records keep their places in the window meanwhile.
func (p *pipeline) uncommitted(cps []commitPoint) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, cp := range cps {
		if cp.part.gone {
			continue
		}
		cp.part.relRecords += cp.records
		cp.part.relBytes += cp.bytes
		p.relRecs += cp.records
	}
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

// kick asks the committer to commit now.
func (p *pipeline) kick() {
	select {
	case p.kickCommit <- struct{}{}:
	default:
	}
}

package consumer

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

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

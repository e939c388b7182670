package consumer

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
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
	// The source's hooks (intake.go), set by attach. untracked: the
	// source is no committer, so admitted messages stay out of the
	// tracker (no commit points), and a message's place in the window is
	// given back as soon as the pipeline is done with it, after acker (if
	// any) has settled it with the broker.
	untracked bool
	acker     acker
	settler   settler
	// released is called after an untracked message's place in the window
	// was given back (the consumer applies the pause policy there, to
	// resume).
	released func()
	// spent are the franz-go records of released messages, waiting to be
	// recycled by the fetching goroutine; recycled is the last such list,
	// emptied, kept for reuse (recordpool.go).
	spent, recycled []*kgo.Record
	// live, when set, fences deliveries while the member may have lost
	// its group session (see liveness): a worker waits for it before
	// every sink call. A fenced source (Kafka) sets it.
	live *liveness
	// kickCommit is signalled when enough is done to be worth a commit.
	kickCommit chan struct{}
	kickAt     int64 // done-but-uncommitted records that trigger a kick
	maxRecords int   // the window's record budget

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

	// Pause policy state (flow.go); flow mirrors it for reads without the
	// lock (see flowSignals and Consumer.evaluateFlow).
	flow       flowSignals
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
		maxRecords: cfg.MaxRecords,
		pauseDelay: cfg.PauseDelay,
		parts:      make(map[topicPartition]*partition),
		leavers:    make(map[topicPartition]*partition),
		released:   func() {},
	}
	p.batch, _ = sink.(BatchSink)
	laneArrays.keepUpTo(8 * int64(cfg.MaxRecords))
	markArrays.keepUpTo(2 * int64(cfg.MaxRecords))
	p.work.L = &p.mu
	p.quiet.L = &p.mu
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p
}

// fetched is a batch of one partition's messages, in offset order, waiting
// for room in the window. part is the partition's state when it was
// fetched: if the partition is revoked (and maybe re-assigned) meanwhile,
// part is gone and the batch is dropped, never mixed into the new state.
// bytes is the sum of the messages' sizes, or -1 once part of the batch
// was admitted.
type fetched struct {
	part  *partition
	msgs  []*Message
	bytes int64
	hwm   int64
}

// admit hands a partition's newly fetched messages, in offset order, to the
// tracker and the lanes. The caller (intake's Admit) has already added them
// to the window: bytes is their size. Messages for a partition that is no
// longer assigned are released again and dropped: the broker will hand
// them to whoever owns the partition.
//
// The tracker takes a segment per run of messages that one lane delivers
// in order (see tracker.go): with no ordering, the messages are cut into
// chunks, one lane and one segment each, as many as the workers can take
// at once (up to BatchMax each); with partition ordering, they join the
// partition's lane as one segment; with key ordering, each message goes to
// its key's lane (a message with no key to a chunk lane), and the
// admission's messages are one segment whose messages are marked done one
// by one. So the cost per message is a pointer copy and two stores.
func (p *pipeline) admit(part *partition, msgs []*Message, bytes, hwm int64) {
	p.mu.Lock()
	spent := p.takeSpent()
	defer p.recycleSpent(spent) // at return: after the lock is let go
	if part.gone || part.revoking {
		p.release(msgs)
		p.mu.Unlock()
		p.win.Release(len(msgs), bytes)
		return
	}
	if hwm >= 0 {
		part.hwm = hwm
	}
	tracked := !p.untracked
	if !tracked {
		for _, m := range msgs {
			part.fetched = max(part.fetched, m.Offset+1)
		}
	}
	switch p.ordering {
	case OrderPartition:
		if tracked {
			seq := part.track(msgs[0].Offset, msgs[len(msgs)-1].Offset+1, len(msgs), bytes)
			for _, m := range msgs {
				m.seq = seq
			}
		}
		if part.lane == nil {
			part.lane = &lane{part: part}
		}
		l := part.lane
		l.push(msgs...)
		if !l.active && !l.ready {
			p.pushReady(l)
		}
	case OrderKey:
		p.admitKeyed(part, msgs, tracked)
	default:
		p.admitChunks(part, msgs, tracked)
	}
	part.queued += len(msgs)
	p.queued += len(msgs)
	p.mu.Unlock()
	p.arrived.Add(uint64(len(msgs)))
}

// admitChunks queues msgs in chunk lanes of their own: as many as there
// are workers, of at most BatchMax messages each. When tracked, each chunk
// is a segment. Called with the lock held.
func (p *pipeline) admitChunks(part *partition, msgs []*Message, tracked bool) {
	per := min(p.batchMax, max(1, (len(msgs)+p.target-1)/max(1, p.target)))
	for i := 0; i < len(msgs); i += per {
		chunk := msgs[i:min(i+per, len(msgs))]
		if tracked {
			// One walk: the chunk's segment is the next one tracked.
			seq := part.nextSeq
			var bytes int64
			for _, m := range chunk {
				bytes += m.size
				m.seq = seq
			}
			part.track(chunk[0].Offset, chunk[len(chunk)-1].Offset+1, len(chunk), bytes)
		}
		l := p.newLane(part)
		l.push(chunk...)
		p.pushReady(l)
	}
}

// admitKeyed queues each message in its key's lane; messages with no key
// go to chunk lanes of up to BatchMax. When tracked, the admission's
// messages are one keyed segment (a new one where the leader epoch
// changes), in which each is marked done on its own, whichever lane
// delivers it. A key's lane stays in the partition's map once it is empty
// (idle), so a key that comes again, as keys do, finds it without
// allocating a lane or copying the key; idle lanes are swept out when the
// map grows past idleKeyLanes, so a stream of ever new keys costs bounded
// memory. Called with the lock held.
func (p *pipeline) admitKeyed(part *partition, msgs []*Message, tracked bool) {
	var chunk *lane
	seq := int64(-1) // the keyed segment messages join
	for i, m := range msgs {
		if tracked {
			if seq < 0 || !part.fitsKeyed(seq, m.Offset, m.size, m.epoch) {
				seq = part.trackKeyed(m.Offset, m.epoch, len(msgs)-i)
			}
			m.seq, m.idx = seq, part.addKeyed(seq, m.Offset, m.size)
		}
		var l *lane
		if len(m.Key) == 0 {
			if chunk == nil || chunk.pending() >= p.batchMax {
				chunk = p.newLane(part)
			}
			l = chunk
		} else {
			l = p.keyLane(part, m.Key)
		}
		l.push(m)
		if !l.active && !l.ready {
			p.pushReady(l)
		}
	}
}

// keyLane returns part's lane for key, a new one if it has none. Called
// with the lock held.
func (p *pipeline) keyLane(part *partition, key []byte) *lane {
	if l := part.keys[string(key)]; l != nil {
		return l
	}
	if part.keys == nil {
		part.keys = make(map[string]*lane)
	}
	if len(part.keys) >= max(part.sweepAt, p.idleKeyLanes()) {
		p.sweepIdleKeys(part)
	}
	l := p.newLane(part)
	l.key, l.keyed = string(key), true
	part.keys[l.key] = l
	return l
}

// finish marks the delivered prefix of a worker's batch done, puts the
// rest back at the front of the lane (a revoke then drops what the
// partition no longer delivers, see trimLane), and puts the lane back in
// line if it has more. Called with the lock held.
func (p *pipeline) finish(l *lane, batch []*Message, delivered int) {
	part := l.part
	part.inflight -= len(batch)
	p.infl -= len(batch)
	if part.gone && part.inflight == 0 {
		p.unpark(part)
	}
	if !part.gone && !p.untracked {
		done := batch[:delivered]
		if p.ordering == OrderKey {
			// Each message is marked in its keyed segment.
			for _, m := range done {
				p.relRecs += int64(part.markKeyed(m.seq, m.idx))
			}
		} else {
			// One or more runs of a segment's messages, in order: one
			// markDone a run.
			for i := 0; i < len(done); {
				seq, j := done[i].seq, i
				var bytes int64
				for ; j < len(done) && done[j].seq == seq; j++ {
					bytes += done[j].size
				}
				last := done[j-1]
				p.relRecs += int64(part.markDone(seq, j-i, bytes, last.Offset+1, last.epoch))
				i = j
			}
		}
	}
	p.release(batch[:delivered])
	l.active = false
	if rest := batch[delivered:]; len(rest) > 0 {
		l.unshift(rest)
		part.queued += len(rest)
		p.queued += len(rest)
	}
	if part.revoking {
		p.trimLane(l)
	}
	switch {
	case part.revoking && l.pending() == 0:
		p.dropLane(l)
	case l.pending() > 0:
		p.pushReady(l)
	case l.keyed:
		// Idle, it stays in the map for the key's next message (see
		// admitKeyed), with a small queue array.
		l.reset()
		if cap(l.q) > maxIdleLaneCap {
			l.release()
		}
	default:
		l.reset()
		p.freeLane(l)
	}
	p.quiet.Broadcast()
	if p.relRecs >= p.kickAt {
		p.kick()
	}
}

// idleKeyLanes is the size of a partition's key-lane map past which its
// idle lanes are swept out: its share of half the window's record budget,
// at least minIdleKeyLanes. An idle lane costs about 300 bytes (the lane,
// the key, the map entry, a queue of up to maxIdleLaneCap), so all
// partitions' idle lanes together stay within about 150 bytes a record of
// the budget (15 MiB at the default 100 000), and only with as many keys.
// Called with the lock held.
func (p *pipeline) idleKeyLanes() int {
	return max(minIdleKeyLanes, p.maxRecords/2/max(1, len(p.parts)))
}

const minIdleKeyLanes, maxIdleLaneCap = 1024, 16

// sweepIdleKeys removes the idle lanes from part's key map (empty, held by
// no worker, on no queue) and frees them. The next sweep waits until the
// map has doubled from what is left, so a map of busy lanes is not swept
// on every new key. Called with the lock held.
func (p *pipeline) sweepIdleKeys(part *partition) {
	for k, l := range part.keys {
		if !l.active && !l.ready && l.pending() == 0 {
			delete(part.keys, k)
			p.freeLane(l)
		}
	}
	part.sweepAt = 2 * len(part.keys)
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

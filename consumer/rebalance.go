package consumer

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"
)

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
		if p.stopped {
			// No worker is left to fill the gaps (the revoke of a
			// shutdown, after the drain ran out): drop them all, the
			// commit stops at the first.
			part.leaveFrom.Store(math.MinInt64)
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
// the lock held.
func (p *pipeline) frontier(part *partition) int64 {
	if p.untracked {
		return math.MinInt64 // no tracker: acks are per message, nothing to fill
	}
	return part.takenEnd
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
		part.forget()
		if p.parts[part.topicPartition] == part {
			delete(p.parts, part.topicPartition)
		}
	}
	p.mu.Unlock()
	// Queued messages of removed partitions leave through popReady.
	p.win.Release(int(recs), bytes)
}

// assigned starts tracking newly assigned partitions. Their pause state
// starts clear, in the client as in the pipeline: a franz-go pause
// survives revoke and re-assign.
func (c *Consumer) assigned(tps []topicPartition) {
	c.pipe.assign(tps)
	c.joined.Store(true)
	c.met.rebalances.WithLabelValues("assigned").Add(float64(len(tps)))
	if len(tps) > 0 {
		c.log.Info("partitions assigned", "reason", "rebalance", "partitions", tpNames(tps))
	}
}

// revokeGrace is how long a revoke waits, after cancelling the deliveries
// that outlived RebalanceTimeout, for them to return, so that what they
// delivered before is counted done and committed.
const revokeGrace = time.Second

// revoked stops dispatching the partitions, and then:
//
//   - when they are revoked, drops their queued records past the last one
//     delivered or inside a worker, and waits (up to RebalanceTimeout) for
//     the rest: the deliveries inside workers and the gaps below that last
//     record (a slow key's records the other keys overtook), so the done
//     prefix reaches it and the next owner repeats nothing; cancels the
//     partitions' context if they did not finish by then, drops what is
//     left and waits revokeGrace for the workers to notice; commits the
//     done prefix with a deadline of its own; forgets the partitions.
//   - when they are lost, cancels their context at once and forgets them,
//     committing nothing: another member may own them already.
//
// A worker that ignores its cancelled context keeps its lane's key busy:
// should the partition come back to this member, its new lanes wait for
// that worker (see pipeline.unpark), so a key is never delivered twice at
// the same time.
func (c *Consumer) revoked(tps []topicPartition, lost bool) {
	event := "revoked"
	if lost {
		event = "lost"
	}
	parts := c.pipe.partitionsOf(tps)
	if len(parts) == 0 {
		return
	}
	c.met.rebalances.WithLabelValues(event).Add(float64(len(parts)))
	if lost {
		c.pipe.abandon(parts)
	} else {
		c.revokes.Add(1)
		defer c.revokes.Add(-1)
		if cancel := c.loopCommit.Load(); cancel != nil {
			(*cancel)() // its points go back, and are committed below
		}
		wctx, wcancel := context.WithTimeout(context.Background(), c.cfg.RebalanceTimeout)
		finished := c.pipe.stopDispatch(wctx, parts)
		wcancel()
		if !finished {
			c.pipe.abandon(parts)
			gctx, gcancel := context.WithTimeout(context.Background(), revokeGrace)
			finished = c.pipe.stopDispatch(gctx, parts)
			gcancel()
			c.log.Warn("revoke: in-flight deliveries outlived the rebalance timeout; cancelled, the rest goes to the next owner",
				"reason", "rebalance_timeout", "partitions", tpNames(tps), "returned", finished)
		}
	}
	c.commitMu.Lock()
	if !lost {
		cctx, ccancel := context.WithTimeout(context.Background(), c.cfg.CommitTimeout)
		if err := c.commitLocked(cctx, parts); err != nil {
			c.log.Warn("commit on revoke failed", "reason", "commit_error", "error", err)
		}
		ccancel()
	}
	c.pipe.remove(parts)
	c.commitMu.Unlock()

	c.flowMu.Lock()
	var wasPaused []*partition
	for _, p := range parts {
		if p.paused { // safe: removed partitions are no longer touched by decideFlow
			wasPaused = append(wasPaused, p)
		}
	}
	if len(wasPaused) > 0 {
		c.src.resume(wasPaused)
	}
	c.flowMu.Unlock()
	c.log.Info("partitions "+event, "reason", "rebalance", "partitions", tpNames(tps))
}

func tpNames(tps []topicPartition) []string {
	out := make([]string, len(tps))
	for i, tp := range tps {
		out[i] = fmt.Sprintf("%s/%d", tp.topic, tp.partition)
	}
	sort.Strings(out)
	return out
}

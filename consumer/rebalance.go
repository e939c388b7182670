package consumer

import (
	"context"
	"math"
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
		part.segs = nil
		if p.parts[part.topicPartition] == part {
			delete(p.parts, part.topicPartition)
		}
	}
	p.mu.Unlock()
	// Queued messages of removed partitions leave through popReady.
	p.win.Release(int(recs), bytes)
}

package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"
)

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

// kick asks the committer to commit now.
func (p *pipeline) kick() {
	select {
	case p.kickCommit <- struct{}{}:
	default:
	}
}

// pressureCommitGap is the pause between commits while the window is above
// its low-water mark: delivered records hold their place until committed,
// so under pressure the committer does not wait for the interval.
//
// It need not be short. A fast sink does not depend on it: the pipeline
// kicks the committer whenever a quarter of the window is done but not
// committed (pipeline.finish, kickAt), so the window gets room back as fast
// as the sink frees it, in commits of a quarter window each. The gap is for
// a slow sink, whose done records would otherwise wait up to CommitInterval
// (1 s by default) while the window is paused: 25 ms adds little to that
// wait next to PauseDelay (200 ms by default) and to the pace of a sink
// slow enough to fill the window, and it costs at most 40 commits a second
// instead of 200. A round with nothing done costs no commit at all
// (commitPoints is empty, the broker is not asked).
const pressureCommitGap = 25 * time.Millisecond

// commitLoop commits on the interval, whenever a quarter of the window is
// done, and every pressureCommitGap while the window is above low water.
// After a failed commit it waits, doubling from 100 ms up to 5 s, before
// the next: the records stay in the window meanwhile, so fetching pauses
// rather than the broker being asked hundreds of times a second.
func (c *Consumer) commitLoop(ctx context.Context) {
	t := time.NewTimer(c.cfg.CommitInterval)
	defer t.Stop()
	var failures int
	var retryAt time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.pipe.kickCommit:
			if wait := time.Until(retryAt); wait > 0 {
				t.Reset(wait) // a kick does not cut a failure's backoff short
				continue
			}
		}
		switch err := c.loopCommitOnce(ctx); {
		case err == errRevokeUnderWay:
		case err != nil: // logged inside; the records stay in the window
			failures++
			retryAt = time.Now().Add(min(100*time.Millisecond<<min(failures-1, 6), 5*time.Second))
		default:
			failures, retryAt = 0, time.Time{}
		}
		c.evaluateFlow()
		next := c.cfg.CommitInterval
		if c.win.Fill() > c.win.low {
			next = min(next, pressureCommitGap)
		}
		t.Reset(max(next, time.Until(retryAt)))
	}
}

// errRevokeUnderWay: the commit loop left this round to a revoke.
var errRevokeUnderWay = errors.New("revoke under way")

// loopCommitOnce is one commit of the commit loop: with its own deadline,
// and cancellable by a revoke (see loopCommit).
func (c *Consumer) loopCommitOnce(ctx context.Context) error {
	if c.revokes.Load() > 0 {
		return errRevokeUnderWay // the revoke commits its partitions itself
	}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.CommitTimeout)
	defer cancel()
	c.loopCommit.Store(&cancel)
	defer c.loopCommit.Store(nil)
	if c.revokes.Load() > 0 {
		return errRevokeUnderWay
	}
	return c.commit(cctx, nil)
}

// commit commits the done prefix of the given partitions (all when nil).
func (c *Consumer) commit(ctx context.Context, parts []*partition) error {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	return c.commitLocked(ctx, parts)
}

func (c *Consumer) commitLocked(ctx context.Context, parts []*partition) error {
	cm, tracked := c.src.(committer)
	if !tracked {
		return nil // the source acks each message itself
	}
	cps := c.pipe.commitPoints(parts)
	if len(cps) == 0 {
		return nil
	}
	failed, err := cm.commit(ctx, cps)
	if len(failed) == 0 {
		c.pipe.committed(cps)
		c.met.commits.WithLabelValues("ok").Inc()
		if c.commitFailing {
			c.commitFailing = false
			c.log.Info("commits recovered", "reason", "commit_ok")
		}
		return nil
	}
	ok := make([]commitPoint, 0, len(cps))
	bad := make(map[*partition]bool, len(failed))
	for _, cp := range failed {
		bad[cp.part] = true
	}
	for _, cp := range cps {
		if !bad[cp.part] {
			ok = append(ok, cp)
		}
	}
	c.pipe.committed(ok)
	c.pipe.uncommitted(failed)
	c.met.commits.WithLabelValues("error").Inc()
	if !c.commitFailing {
		c.commitFailing = true
		c.log.Warn("commit failed; records stay in the window until a commit succeeds",
			"reason", "commit_error", "partitions", len(failed), "error", err)
	}
	if err == nil {
		err = fmt.Errorf("commit: %d partitions failed", len(failed))
	}
	return err
}

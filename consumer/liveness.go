package consumer

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// liveness fences a Kafka group member that has lost touch with its group
// coordinator: its deliveries wait until the coordinator answers again.
//
// Why. The coordinator gives a silent member's partitions to others once
// its session times out, but the member learns that only when it hears
// from the coordinator again (OnPartitionsLost). Meanwhile its workers
// would go on delivering records of partitions that another member now
// owns, the same keys at the same time. Two ways to get there:
//
//  1. The network to the coordinator goes quiet (a black hole, no reset)
//     while the sink is still reachable.
//  2. The process is stopped (SIGSTOP, a frozen VM, a long GC pause) for
//     longer than the session timeout, then goes on. Its workers wake at
//     the same moment as its heartbeat, with records of lost partitions
//     queued.
//
// How. Every answered group request (Heartbeat, JoinGroup, SyncGroup)
// proves the session alive until at least the moment it was written plus
// the session timeout, the coordinator's own rule. A worker checks, with
// the clock, before every sink call: past that moment it waits. A JoinGroup
// or SyncGroup in flight counts as alive (the coordinator holds members in
// a rebalance to the rebalance timeout, not the session timeout). After a
// silence longer than the session, the member waits one more moment after
// the first answer, since that answer may be the one that says the
// session is gone: franz-go then calls OnPartitionsLost, which cancels the
// partitions' deliveries first.
type liveness struct {
	session time.Duration
	log     *slog.Logger
	origin  time.Time

	alive    atomic.Int64 // when the last answered group request was written (ns since origin)
	holdTill atomic.Int64 // no delivery before this (ns since origin), after a long silence
	inflight atomic.Int32 // JoinGroup and SyncGroup requests in flight
	fenced   atomic.Bool  // a worker found the member fenced and logged it
	// suspect is set by a timer when the session's proof of life runs
	// out, and cleared by the next answer: workers read it before every
	// record (an atomic load), and the clock only when it is set or every
	// 16th record (see pipeline.deliver).
	suspect atomic.Bool
	timer   *time.Timer

	mu      sync.Mutex
	changed chan struct{} // closed and replaced when the member may have come back
}

// afterSilence is how long a member that was silent for longer than its
// session waits after the coordinator answers again, before delivering.
const afterSilence = time.Second

func newLiveness(session time.Duration, log *slog.Logger) *liveness {
	l := &liveness{session: session, log: log, origin: time.Now(), changed: make(chan struct{})}
	l.timer = time.AfterFunc(session, func() { l.suspect.Store(true) })
	return l
}

func (l *liveness) now() int64 { return int64(time.Since(l.origin)) }

// closed reports whether deliveries must wait.
func (l *liveness) closed() bool {
	if l.inflight.Load() > 0 {
		return false
	}
	now := l.now()
	return now-l.alive.Load() >= int64(l.session) || now < l.holdTill.Load()
}

// wait blocks until deliveries may go on (true) or ctx ends (false).
func (l *liveness) wait(ctx context.Context) bool {
	for {
		l.mu.Lock()
		ch := l.changed
		l.mu.Unlock()
		if !l.closed() {
			return true
		}
		if l.fenced.CompareAndSwap(false, true) {
			l.log.Warn("no answer from the group coordinator within the session timeout: deliveries wait, since the partitions may belong to another member by now",
				"reason", "session_silent", "silent_for", time.Duration(l.now()-l.alive.Load()).Round(time.Millisecond).String())
		}
		t := time.NewTimer(max(time.Duration(l.holdTill.Load()-l.now()), 10*time.Millisecond))
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		}
		t.Stop()
	}
}

func (l *liveness) wake() {
	l.mu.Lock()
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

func isGroupKey(key int16) bool {
	switch key {
	case kmsg.Heartbeat.Int16(), kmsg.JoinGroup.Int16(), kmsg.SyncGroup.Int16():
		return true
	}
	return false
}

func isJoinKey(key int16) bool {
	return key == kmsg.JoinGroup.Int16() || key == kmsg.SyncGroup.Int16()
}

// OnBrokerWrite counts JoinGroup and SyncGroup requests going out.
func (l *liveness) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if err == nil && isJoinKey(key) {
		l.inflight.Add(1)
	}
}

// OnBrokerE2E records an answered group request.
func (l *liveness) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e kgo.BrokerE2E) {
	if !isGroupKey(key) {
		return
	}
	if e.WriteErr == nil && isJoinKey(key) {
		l.inflight.Add(-1)
	}
	if e.WriteErr != nil || e.ReadErr != nil {
		return
	}
	now := l.now()
	written := now - int64(e.DurationE2E())
	if now-l.alive.Load() >= int64(l.session) && l.alive.Load() > 0 {
		l.holdTill.Store(now + int64(afterSilence))
		time.AfterFunc(afterSilence, l.wake)
	}
	for {
		cur := l.alive.Load()
		if written <= cur || l.alive.CompareAndSwap(cur, written) {
			break
		}
	}
	// The proof of life now runs out session after written.
	l.suspect.Store(false)
	l.timer.Reset(time.Duration(l.alive.Load() + int64(l.session) - l.now()))
	if l.fenced.CompareAndSwap(true, false) {
		l.log.Info("the group coordinator answers again; deliveries go on", "reason", "session_answered")
	}
	l.wake()
}

var (
	_ kgo.HookBrokerWrite = (*liveness)(nil)
	_ kgo.HookBrokerE2E   = (*liveness)(nil)
)

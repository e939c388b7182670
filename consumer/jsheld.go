// This file holds what the JetStream source keeps of the messages it holds
// unacked: the handle the pipeline carries for each (jsHandle), the held
// list ordered by when the server last heard of each message, and the
// keep-alive loop that sends InProgress before their AckWait runs out.

package consumer

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// jsHandle is what the pipeline carries for one JetStream message (as
// Message.ack): the message to ack, and its place on the held list.
type jsHandle struct {
	msg        jetstream.Msg
	prev, next *jsHandle // held list; guarded by heldList.mu
	touched    int64     // when the server last heard of it; guarded by heldList.mu
	nakd       bool      // handed back with NakWithDelay: ack skips it
}

// heldList holds the messages this process has not acked yet, least
// recently touched first, for keepAlive. A doubly linked list through the
// handles, so that adding and removing a batch is one lock and O(batch).
type heldList struct {
	mu   sync.Mutex
	root jsHandle // root.next is the oldest, root.prev the newest
	n    int
}

func (l *heldList) init() { l.root.next, l.root.prev = &l.root, &l.root }

func (l *heldList) pushLocked(h *jsHandle) {
	h.prev, h.next = l.root.prev, &l.root
	l.root.prev.next = h
	l.root.prev = h
	l.n++
}

func (l *heldList) unlinkLocked(h *jsHandle) {
	if h.next == nil {
		return // not on the list
	}
	h.prev.next, h.next.prev = h.next, h.prev
	h.prev, h.next = nil, nil
	l.n--
}

func (l *heldList) add(hs []jsHandle, now int64) {
	l.mu.Lock()
	for i := range hs {
		hs[i].touched = now
		l.pushLocked(&hs[i])
	}
	l.mu.Unlock()
}

func (l *heldList) remove(batch []*Message) {
	l.mu.Lock()
	for _, m := range batch {
		l.unlinkLocked(m.ack.(*jsHandle))
	}
	l.mu.Unlock()
}

// due moves the messages touched at or before cutoff to the back, as
// touched now, and appends them to out.
func (l *heldList) due(cutoff, now int64, out []jetstream.Msg) []jetstream.Msg {
	l.mu.Lock()
	defer l.mu.Unlock()
	for h := l.root.next; h != &l.root && h.touched <= cutoff; h = l.root.next {
		l.unlinkLocked(h)
		h.touched = now
		l.pushLocked(h)
		out = append(out, h.msg)
	}
	return out
}

// takeAll empties the list and returns its messages.
func (l *heldList) takeAll() []jetstream.Msg {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]jetstream.Msg, 0, l.n)
	for h := l.root.next; h != &l.root; h = l.root.next {
		l.unlinkLocked(h)
		out = append(out, h.msg)
	}
	return out
}

func (l *heldList) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

func (s *jsSource) now() int64 { return int64(time.Since(s.origin)) }

// keepAlive sends InProgress for every held message the server has not
// heard of for half its AckWait, so that it does not redeliver messages
// that are only waiting (for a worker, a slow sink, a retry).
func (s *jsSource) keepAlive(ctx context.Context) {
	t := time.NewTicker(max(s.ackWait/5, 10*time.Millisecond))
	defer t.Stop()
	var due []jetstream.Msg
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := s.now()
		s.forgetNaks(now)
		due = s.held.due(now-int64(s.ackWait/2), now, due[:0])
		sent, failed := 0, 0
		for _, jm := range due {
			switch err := jm.InProgress(); {
			case err == nil:
				sent++
			case !errors.Is(err, jetstream.ErrMsgAlreadyAckd):
				failed++
			}
		}
		clear(due)
		s.met.inProgress.Add(float64(sent))
		if failed > 0 {
			s.met.ackErrors.Add(float64(failed))
		}
	}
}

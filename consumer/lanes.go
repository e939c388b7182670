package consumer

import "sort"

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

// take moves up to n messages from the front onto the end of dst (a
// worker's own buffer) and returns it. The lane's array is not shared with
// the worker, so it is reused at once: a lane that take empties starts
// again at the front, and one whose front was taken moves what is left
// down once the taken part is the larger.
func (l *lane) take(dst []*Message, n int) []*Message {
	end := min(l.head+n, len(l.q))
	dst = append(dst, l.q[l.head:end]...)
	clear(l.q[l.head:end])
	l.head = end
	switch {
	case l.head == len(l.q):
		l.q, l.head = l.q[:0], 0
	case l.head >= 64 && l.head*2 >= len(l.q):
		k := copy(l.q, l.q[l.head:])
		clear(l.q[k:])
		l.q, l.head = l.q[:k], 0
	}
	return dst
}

// push appends msgs, growing the queue with an array from laneArrays.
func (l *lane) push(msgs ...*Message) {
	if need := len(l.q) + len(msgs); need > cap(l.q) {
		l.grow(need)
	}
	l.q = append(l.q, msgs...)
}

// unshift puts msgs back at the front of the queue, in order: the part of
// a worker's batch it did not deliver.
func (l *lane) unshift(msgs []*Message) {
	if l.head >= len(msgs) {
		l.head -= len(msgs)
		copy(l.q[l.head:], msgs)
		return
	}
	rest := l.q[l.head:]
	q := append(append(laneArray(len(msgs)+len(rest)), msgs...), rest...)
	l.release()
	l.q = q
}

// laneArrays keeps lane queue arrays for reuse, by capacity class (see
// classPool), up to eight times the window's record budget in pointers
// (newPipeline sets it; 6.4 MB at the default budget): growing a key's lane
// would otherwise allocate at every doubling, each time the key comes back
// after its lane ran dry. The lanes' arrays together hold more than the
// window's records (room to double, thousands of keys); with twice, a
// 2 000 000-record run with 4 096 keys still allocated 7 600 arrays, with
// eight times 3 000.
var laneArrays = classPool[[]*Message]{unit: 1}

// grow moves the pending messages to an array for at least n (from
// laneArrays when it has one) and gives the old array back.
func (l *lane) grow(n int) {
	q := append(laneArray(n-l.head), l.q[l.head:]...)
	l.release()
	l.q, l.head = q, 0
}

// laneArray returns an empty queue array with room for twice n (at least
// 8), from laneArrays when it has one.
func laneArray(n int) []*Message {
	c := ceilClass(max(8, 2*n))
	if q, ok := laneArrays.get(c); ok {
		return q[:0]
	}
	return make([]*Message, 0, 1<<c)
}

// release gives the queue array back to laneArrays (cleared) and leaves
// the lane with none.
func (l *lane) release() {
	if cap(l.q) > 0 {
		q := l.q[:cap(l.q)]
		clear(q)
		laneArrays.put(floorClass(cap(q)), q[:0])
	}
	l.q, l.head = nil, 0
}

// reset empties a lane that no worker holds, keeping its array for the
// next messages.
func (l *lane) reset() {
	clear(l.q)
	l.q, l.head = l.q[:0], 0
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
		l := p.popFront()
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

// popFront removes the first lane of the ready queue. Called with the lock
// held, the queue not empty.
func (p *pipeline) popFront() *lane {
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
	return l
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
	p.release(l.q[l.head:])
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
	if cap(l.q) > maxFreeLaneCap {
		l.release()
	}
	clear(l.q)
	*l = lane{q: l.q[:0]}
	p.freeLanes = append(p.freeLanes, l)
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
	p.release(q[i:])
	clear(q[i:])
	l.q = l.q[:l.head+i]
	l.part.queued -= n
	p.queued -= n
}

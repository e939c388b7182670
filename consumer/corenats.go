package consumer

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// coreSource consumes core NATS subjects with a queue subscription.
//
// Core NATS is at most once and cannot pause: the server pushes messages
// as they are published, and a message the client does not keep is gone.
// So this source is honest about load instead of pretending to flow
// control: it admits what fits in the window and stops reading while the
// window is paused or full. Meanwhile the client buffers up to the pending
// limits (NATSConfig.PendingMsgs and PendingBytes, bounded memory) and past
// them drops messages: every slow-consumer episode and every dropped
// message is counted (sluice_nats_slow_consumer_events_total,
// sluice_nats_dropped_messages_total) and logged, and the process keeps
// running. Messages in the window or the client buffer when the process
// dies are lost. Use JetStream when that matters.
type coreSource struct {
	log      *slog.Logger
	batchMax int
	in       intake        // set by start
	started  chan struct{} // closed when start has subscribed (or failed)
	cfg      *NATSConfig
	conn     *natsConn
	tp       topicPartition
	part     *partition

	subsMu  sync.Mutex
	subs    []*nats.Subscription
	dropped []int64 // last Dropped() of each sub, kept once it is closed

	paused   atomic.Bool
	stopping chan struct{} // closed when intake stops: blocked handlers give up
	lost     atomic.Int64  // given up at shutdown (counted as dropped)
	waiting  atomic.Int64  // taken from the client, waiting in flush for room

	// The subscriptions' goroutines (one each) hand messages over here;
	// mu makes them admit one batch at a time, in order.
	mu  sync.Mutex
	buf []*nats.Msg
	seq int64 // receive counter: Message.Offset
}

func newCoreNATSSource(env sourceEnv) (*coreSource, error) {
	cfg := &env.cfg.NATS
	s := &coreSource{
		log:      env.log,
		batchMax: env.cfg.BatchMax,
		started:  make(chan struct{}),
		cfg:      cfg,
		conn:     newNATSConn(cfg, env.log),
		tp:       topicPartition{topic: strings.Join(cfg.Subjects, ",")},
		stopping: make(chan struct{}),
	}
	s.register(env.reg)
	return s, nil
}

func (s *coreSource) register(reg prometheus.Registerer) {
	f := promauto.With(reg)
	s.conn.register(reg)
	f.NewCounterFunc(prometheus.CounterOpts{
		Name: "sluice_nats_slow_consumer_events_total",
		Help: "Times the core NATS client's pending limits filled and it started dropping messages.",
	}, func() float64 { return float64(s.conn.slowEvents.Load()) })
	f.NewCounterFunc(prometheus.CounterOpts{
		Name: "sluice_nats_dropped_messages_total",
		Help: "Core NATS messages dropped: by the client past its pending limits, or still buffered at shutdown.",
	}, func() float64 { return float64(s.droppedTotal()) })
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sluice_nats_client_pending_messages",
		Help: "Core NATS messages taken from the server and waiting for room in the window (the client's buffer, bounded by the pending limits, and the batch being admitted).",
	}, func() float64 { m, _ := s.pending(); return float64(m) })
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sluice_nats_client_pending_bytes",
		Help: "Bytes of core NATS messages buffered in the client.",
	}, func() float64 { _, b := s.pending(); return float64(b) })
}

// start connects and subscribes. Messages flow from here on: the
// subscriptions' handlers wait until start has reported the source
// assigned (ready), after the server confirmed the subscriptions.
func (s *coreSource) start(_ context.Context, in intake) error {
	s.in = in
	defer close(s.started)
	if err := s.conn.dial(); err != nil {
		return err
	}
	s.log.Warn("core NATS is at most once: messages dropped when the client's pending limits fill, or held when the process dies, are lost; use jetstream for at least once",
		"reason", "at_most_once", "subjects", s.cfg.Subjects, "queue", s.cfg.Queue,
		"pending_msgs", s.cfg.PendingMsgs, "pending_bytes", s.cfg.PendingBytes)
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	for _, subj := range s.cfg.Subjects {
		sub, err := s.conn.nc.QueueSubscribe(subj, s.cfg.Queue, s.handle)
		if err == nil {
			err = sub.SetPendingLimits(s.cfg.PendingMsgs, int(min(s.cfg.PendingBytes, 1<<31-1)))
		}
		if err != nil {
			s.conn.nc.Close()
			return fmt.Errorf("nats: subscribe to %q in queue group %q: %w", subj, s.cfg.Queue, err)
		}
		s.subs = append(s.subs, sub)
		s.dropped = append(s.dropped, 0)
	}
	// A rejected subscription (permissions) shows up asynchronously: a
	// flush round trip surfaces it before we report ready.
	if err := s.conn.nc.FlushTimeout(s.cfg.ConnectTimeout); err != nil {
		s.conn.nc.Close()
		return fmt.Errorf("nats: subscribe: %w", err)
	}
	if err := s.conn.nc.LastError(); err != nil {
		s.conn.nc.Close()
		return fmt.Errorf("nats: subscribe: %w", err)
	}
	in.Assigned([]topicPartition{s.tp}) // ready
	s.part = in.Partition(s.tp)
	return nil
}

// handle runs on a subscription's goroutine for each message. It gathers
// messages until the subscription has no more pending (or a batch is
// full), then admits them, waiting for room: while it waits, the client
// buffers, and past its pending limits drops.
func (s *coreSource) handle(msg *nats.Msg) {
	<-s.started
	if s.part == nil {
		return // start failed: the connection is closing
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = append(s.buf, msg)
	if len(s.buf) < s.batchMax {
		// nats.go counts the message being handled as pending until the
		// handler returns: more than one means more are waiting.
		if n, _, err := msg.Sub.Pending(); err == nil && n > 1 {
			return
		}
	}
	s.flush()
}

// flush admits the gathered messages as room allows. Called with mu held.
func (s *coreSource) flush() {
	msgs, bytes := s.convert(s.buf)
	clear(s.buf)
	s.buf = s.buf[:0]
	s.waiting.Store(int64(len(msgs)))
	defer s.waiting.Store(0)
	for len(msgs) > 0 {
		changed := s.in.Changed()
		if !s.paused.Load() {
			if n := s.in.Admit(s.part, msgs, bytes, -1); n > 0 {
				msgs, bytes = msgs[n:], -1
				s.waiting.Store(int64(len(msgs)))
				continue
			}
		}
		select {
		case <-changed:
		case <-s.stopping:
			s.lost.Add(int64(len(msgs)))
			return
		}
	}
}

func (s *coreSource) convert(buf []*nats.Msg) ([]*Message, int64) {
	n := len(buf)
	msgs := make([]Message, n)
	ptrs := make([]*Message, n)
	now := time.Now()
	var bytes int64
	for i, nm := range buf {
		m := &msgs[i]
		s.seq++
		m.Source = SourceNATS
		m.Topic = nm.Subject
		m.Value = nm.Data
		m.Offset = s.seq
		m.Time = now
		hb := setHeaders(m, nm.Header)
		m.Key = natsKey(m, s.cfg.KeyHeader)
		m.size = int64(len(m.Topic)+len(m.Value)) + hb
		bytes += m.size
		ptrs[i] = m
	}
	s.in.Polled(n, bytes)
	return ptrs, bytes
}

// run waits until ctx ends (or the connection closes for good), then stops
// intake: the subscriptions drain, so what the client already buffered is
// still admitted while there is room, for at most DrainTimeout; the rest is
// dropped and counted.
func (s *coreSource) run(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-s.conn.closed:
		close(s.stopping)
		return s.conn.closedErr()
	}
	s.subsMu.Lock()
	subs := append([]*nats.Subscription(nil), s.subs...)
	s.subsMu.Unlock()
	var closed []<-chan nats.SubStatus
	for _, sub := range subs {
		closed = append(closed, sub.StatusChanged(nats.SubscriptionClosed))
		s.recordDropped()
		if err := sub.Drain(); err != nil {
			_ = sub.Unsubscribe()
		}
	}
	t := time.NewTimer(s.cfg.DrainTimeout)
	defer t.Stop()
	for _, ch := range closed {
		select {
		case <-ch:
		case <-t.C:
		}
	}
	s.recordDropped()
	close(s.stopping)
	for _, sub := range subs {
		_ = sub.Unsubscribe() // those that did not finish draining in time
	}
	if n := s.lost.Load(); n > 0 {
		s.log.Warn("core NATS messages dropped at shutdown: no room for them in time",
			"reason", "shutdown", "dropped", n)
	}
	return nil
}

// recordDropped remembers each subscription's drop count while it can
// still be read (a closed subscription reports none).
func (s *coreSource) recordDropped() {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	for i, sub := range s.subs {
		if n, err := sub.Dropped(); err == nil {
			s.dropped[i] = max(s.dropped[i], int64(n))
		}
	}
}

func (s *coreSource) droppedTotal() int64 {
	s.recordDropped()
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	var n int64
	for _, d := range s.dropped {
		n += d
	}
	return n + s.lost.Load()
}

func (s *coreSource) pending() (msgs, bytes int) {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	msgs = int(s.waiting.Load())
	for _, sub := range s.subs {
		if m, b, err := sub.Pending(); err == nil {
			msgs += m
			bytes += b
		}
	}
	return msgs, bytes
}

// pause and resume: core NATS cannot pause the server. While paused the
// source stops admitting, and the client buffers up to its pending limits.
func (s *coreSource) pause([]*partition)  { s.paused.Store(true) }
func (s *coreSource) resume([]*partition) { s.paused.Store(false) }

// close drains the connection, by ctx's deadline. At most once: nothing is
// acked or committed (the source is neither a committer nor an acker).
func (s *coreSource) close(ctx context.Context) { s.conn.drain(drainBudget(ctx, s.cfg.DrainTimeout)) }

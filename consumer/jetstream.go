package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// jsSource consumes a JetStream durable pull consumer.
//
// Flow control. There is at most one pull request outstanding, and it asks
// for no more than the window has room for, in records and in bytes (and
// no more than MaxAckPending leaves room for): a pull is sized from the
// free room, not a fixed prefetch. Everything a pull brings therefore fits,
// and is admitted as it arrives; nothing waits in the client. Pausing (at
// the window's high-water mark, until its low-water mark) means sending no
// pull, so the client buffer is empty while paused and no message runs out
// its AckWait there. One pull at a time also keeps the stream's order: the
// server splits concurrent pulls round-robin, which would interleave keys.
//
// Acks. A message is acked (or termed, when the pipeline dead-lettered or
// dropped it) in ack, right after the sink delivered it, and its place
// in the window is released there, once the ack is sent: the window counts
// exactly the messages this process holds unacked. The tracker is not used
// (pipeline.untracked): acks are per message, so a slow message does not
// hold back the acks, or the window places, of the messages behind it.
//
// AckWait. Every message held (queued in a lane, inside the sink, or
// waiting for a retry) is on a list ordered by when the server last heard
// of it. Every AckWait/5 the messages older than AckWait/2 get InProgress,
// which restarts their AckWait, so a slow sink or a full window does not
// turn into redeliveries and duplicates.
//
// Failures. A failure that counts against the message is handed back to
// the server with NakWithDelay (the failure policy's backoff) when ordering
// is none: the worker moves on and the server redelivers, perhaps to
// another replica. With key or partition ordering the retry stays in place
// (a redelivery would come after later messages of the same key). Either
// way the attempts continue across redeliveries (Message.Attempt starts from
// the server's delivery count), and after the last one the message is
// dead-lettered and termed. Failures of the destination itself
// (Unavailable, RetryAfter) always wait in place: they are not the
// message's fault and must not use up its deliveries.
type jsSource struct {
	log  *slog.Logger
	cc   *Config // the consumer's
	in   intake  // set by start
	cfg  *NATSConfig
	conn *natsConn
	tp   topicPartition
	part *partition

	cons          jetstream.Consumer // set by start
	ackWait       time.Duration      // the consumer's, set by start
	maxAckPending atomic.Int64
	maxPayload    int64
	paused        atomic.Bool

	held   heldList
	origin time.Time // of heldList times (monotonic)
	buf    []jetstream.Msg

	// tooBig is set when the server ended a pull without a message
	// because the next one is larger than the bytes the pull asked for
	// (a 409 the client reports as an empty pull); bigEmpty counts pulls
	// of one message without a byte limit that came back empty all the
	// same. Owned by run.
	tooBig, bigEmpty int

	// nakd remembers the failures charged to each message this process
	// handed back with NakWithDelay, by stream sequence, so that its
	// redelivery goes on counting from there. Only those: a redelivery the
	// server makes for any other reason is not a failure of the message.
	nakMu sync.Mutex
	nakd  map[uint64]nakRecord

	numPending, numAckPending, numRedelivered atomic.Int64
	lagShare                                  atomic.Int64 // this replica's share of the lag

	// For the lag share; owned by setInfo's caller (start, then readInfo).
	received      atomic.Int64 // messages admitted (the run goroutine adds)
	infoRead      bool
	lastDelivered uint64  // the consumer's delivered sequence at the last reading
	lastReceived  int64   // received at the last reading
	share         float64 // fraction of the consumer's deliveries that come here

	met jsMetrics

	stopLoops context.CancelFunc
	loops     sync.WaitGroup
}

// nakRecord is what nakd keeps for one handed-back message.
type nakRecord struct {
	charged int   // failed attempts charged so far
	at      int64 // when it was handed back (s.now())
}

type jsMetrics struct {
	pulls       prometheus.Counter
	pullRecords prometheus.Histogram
	acks        prometheus.Counter
	terms       prometheus.Counter
	naks        prometheus.Counter
	inProgress  prometheus.Counter
	abandoned   prometheus.Counter
	ackErrors   prometheus.Counter
}

func newJetStreamSource(env sourceEnv) (*jsSource, error) {
	cfg := &env.cfg.NATS
	s := &jsSource{
		log:  env.log,
		cc:   env.cfg,
		cfg:  cfg,
		conn: newNATSConn(cfg, env.log),
		tp:   topicPartition{topic: cfg.Stream},
	}
	s.held.init()
	s.nakd = make(map[uint64]nakRecord)
	s.maxAckPending.Store(int64(cfg.MaxAckPending))
	s.share = 1
	s.register(env.reg)
	return s, nil
}

func (s *jsSource) register(reg prometheus.Registerer) {
	f := promauto.With(reg)
	s.conn.register(reg)
	acks := f.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_nats_acks_total",
		Help: "JetStream acknowledgements sent, by kind: ack (delivered), term (dead-lettered or dropped), nak (handed back for a later retry), in_progress (AckWait extended), abandoned (nak at shutdown of a message not delivered).",
	}, []string{"kind"})
	s.met = jsMetrics{
		pulls: f.NewCounter(prometheus.CounterOpts{
			Name: "sluice_nats_pulls_total",
			Help: "JetStream pull requests sent.",
		}),
		pullRecords: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "sluice_nats_pull_records",
			Help:    "Records asked for per pull request: the window's free room, capped by MaxAckPending and the pull limit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 17),
		}),
		acks:       acks.WithLabelValues("ack"),
		terms:      acks.WithLabelValues("term"),
		naks:       acks.WithLabelValues("nak"),
		inProgress: acks.WithLabelValues("in_progress"),
		abandoned:  acks.WithLabelValues("abandoned"),
		ackErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "sluice_nats_ack_errors_total",
			Help: "Acks, naks, terms and InProgress that could not be sent (the server redelivers those messages after AckWait).",
		}),
	}
	gauge := func(name, help string, v *atomic.Int64) {
		f.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return float64(v.Load()) })
	}
	gauge("sluice_nats_consumer_pending_records", "Messages of the stream the consumer has not delivered yet (num_pending).", &s.numPending)
	gauge("sluice_nats_consumer_ack_pending_records", "Messages delivered to any replica and not acked yet (num_ack_pending).", &s.numAckPending)
	gauge("sluice_nats_consumer_redelivered_records", "Messages delivered more than once and not acked yet (num_redelivered).", &s.numRedelivered)
	gauge("sluice_nats_consumer_max_ack_pending", "The consumer's MaxAckPending: the most messages out unacked, all replicas together.", &s.maxAckPending)
	gauge("sluice_nats_consumer_lag_share_records", "This replica's share of num_pending + num_ack_pending (by its share of the recent deliveries); sluice_consumer_lag_records reports it too.", &s.lagShare)
}

// start connects, creates or binds the consumer, and starts the loops that
// keep held messages alive and read the consumer's state. close stops them.
func (s *jsSource) start(_ context.Context, in intake) error {
	s.in = in
	if err := s.conn.dial(); err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			s.conn.nc.Close()
		}
	}()
	js, err := jetstream.New(s.conn.nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), max(s.cfg.ConnectTimeout, 10*time.Second))
	defer cancel()
	cons, err := s.consumer(ctx, js)
	if err != nil {
		return err
	}
	info := cons.CachedInfo()
	if info.Config.AckPolicy != jetstream.AckExplicitPolicy {
		return fmt.Errorf("jetstream: consumer %q on stream %q has ack policy %s: sluice needs explicit acks",
			s.cfg.Consumer, s.cfg.Stream, info.Config.AckPolicy)
	}
	if info.Config.DeliverSubject != "" {
		return fmt.Errorf("jetstream: consumer %q on stream %q is a push consumer: sluice needs a pull consumer",
			s.cfg.Consumer, s.cfg.Stream)
	}
	s.cons = cons
	s.ackWait = info.Config.AckWait
	if s.ackWait <= 0 {
		s.ackWait = 30 * time.Second // the server's default
	}
	mp := int64(info.Config.MaxAckPending)
	if mp <= 0 {
		mp = int64(s.cc.MaxRecords) // -1: unlimited; the window bounds it
	}
	s.maxAckPending.Store(mp)
	s.maxPayload = s.conn.nc.MaxPayload()
	s.origin = time.Now()
	s.in.Assigned([]topicPartition{s.tp})
	s.part = s.in.Partition(s.tp)
	s.setInfo(info)
	if mp < int64(s.cc.MaxRecords) {
		s.log.Info("MaxAckPending is below the window: at most that many messages are in flight",
			"reason", "max_ack_pending", "max_ack_pending", mp, "window_records", s.cc.MaxRecords)
	}
	s.log.Info("jetstream consumer ready", "reason", "started", "stream", s.cfg.Stream,
		"consumer", s.cfg.Consumer, "bound", s.cfg.Bind, "ack_wait", s.ackWait.String(), "max_ack_pending", mp,
		"num_pending", info.NumPending, "num_ack_pending", info.NumAckPending)

	lctx, stop := context.WithCancel(context.Background())
	s.stopLoops = stop
	s.loops.Go(func() { s.keepAlive(lctx) })
	s.loops.Go(func() { s.readInfo(lctx) })
	ok = true
	return nil
}

// consumer binds the durable consumer, or creates it (or updates it to this
// configuration).
func (s *jsSource) consumer(ctx context.Context, js jetstream.JetStream) (jetstream.Consumer, error) {
	cfg := s.cfg
	var cons jetstream.Consumer
	var err error
	if cfg.Bind {
		cons, err = js.Consumer(ctx, cfg.Stream, cfg.Consumer)
	} else {
		cc := jetstream.ConsumerConfig{
			Durable:       cfg.Consumer,
			Description:   "sluice",
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       cfg.AckWait,
			MaxAckPending: cfg.MaxAckPending,
			// Attempts are bounded by the failure policy, which
			// dead-letters and terms the message after the last one; a
			// server-side MaxDeliver would drop it silently instead.
			MaxDeliver: -1,
		}
		if cfg.Deliver == "new" {
			cc.DeliverPolicy = jetstream.DeliverNewPolicy
		}
		if len(cfg.Subjects) == 1 {
			cc.FilterSubject = cfg.Subjects[0]
		} else {
			cc.FilterSubjects = cfg.Subjects
		}
		cons, err = js.CreateOrUpdateConsumer(ctx, cfg.Stream, cc)
	}
	switch {
	case err == nil:
		return cons, nil
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, fmt.Errorf("jetstream: stream %q not found: create it first, or fix the stream name: %w", cfg.Stream, err)
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		return nil, fmt.Errorf("jetstream: consumer %q not found on stream %q: binding needs an existing consumer: %w",
			cfg.Consumer, cfg.Stream, err)
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		return nil, fmt.Errorf("jetstream: not enabled on the server or for this account: %w", err)
	}
	verb := "create or update"
	if cfg.Bind {
		verb = "bind"
	}
	return nil, fmt.Errorf("jetstream: %s consumer %q on stream %q: %w", verb, cfg.Consumer, cfg.Stream, err)
}

// run pulls while the window has room, one pull at a time, and admits what
// arrives. It returns nil when ctx ends, and an error when the consumer is
// gone or the connection closed for good.
func (s *jsSource) run(ctx context.Context) error {
	failing := false
	retry := backoff{initial: 100 * time.Millisecond, max: 5 * time.Second}
	attempt := 0
	for ctx.Err() == nil {
		select {
		case <-s.conn.closed:
			return s.conn.closedErr()
		default:
		}
		changed := s.in.Changed()
		n, maxBytes := s.pullSize()
		if n == 0 {
			select {
			case <-changed:
			case <-ctx.Done():
			case <-s.conn.closed:
			}
			continue
		}
		if s.tooBig > 0 && s.in.Empty() {
			// The next message is larger than the whole budget: an empty
			// window takes it alone, as it does for Kafka. Were the
			// server to end that pull empty too, such pulls back off.
			if s.bigEmpty > 0 && !sleep(ctx, retry.next(s.bigEmpty)) {
				return nil
			}
			n, maxBytes = 1, 0
		}
		err := s.pull(ctx, n, maxBytes)
		if err == nil && s.tooBig > 0 && !s.in.Empty() {
			// The next message does not fit in what is free: pull again
			// once the window has given something back (since before
			// this pull), not at once.
			select {
			case <-changed:
			case <-ctx.Done():
			case <-s.conn.closed:
			}
		}
		switch {
		case err == nil:
			if failing {
				failing, attempt = false, 0
				s.log.Info("jetstream pulls recovered", "reason", "pull_ok")
			}
			continue
		case errors.Is(err, jetstream.ErrConsumerDeleted):
			return fmt.Errorf("jetstream: consumer %q on stream %q was deleted: %w", s.cfg.Consumer, s.cfg.Stream, err)
		case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, jetstream.ErrConnectionClosed):
			// The ClosedHandler, which says why, runs asynchronously.
			select {
			case <-s.conn.closed:
			case <-ctx.Done():
			}
			continue
		}
		if !failing {
			failing = true
			s.log.Warn("jetstream pull failed; retrying", "reason", "pull_error", "error", err)
		}
		attempt++
		if !sleep(ctx, retry.next(attempt)) {
			return nil
		}
	}
	return nil
}

// pullSize is how many records, and bytes, the next pull may ask for: the
// window's free room, within MaxAckPending and the pull limit. It is 0
// while paused, and while the room is too small to be worth a request.
// The bytes never exceed what the window has free, so what a pull brings
// always fits; a message larger than that ends the pull with nothing
// (see tooBig).
func (s *jsSource) pullSize() (int, int64) {
	if s.paused.Load() {
		return 0, 0
	}
	freeRecs, free := s.in.Free()
	budget := int64(s.cc.MaxRecords)
	recs := budget - freeRecs
	limit := min(budget, int64(s.cfg.PullMaxRecords), s.maxAckPending.Load())
	n := min(freeRecs, int64(s.cfg.PullMaxRecords), s.maxAckPending.Load()-recs)
	if n <= 0 || (recs > 0 && n < max(1, limit/8)) {
		return 0, 0
	}
	if free <= 0 {
		return 0, 0
	}
	return int(n), min(free, math.MaxInt32)
}

// pull sends one pull request for n messages and at most maxBytes (no
// byte limit when 0), and admits the messages as they arrive. It returns
// when the request is complete: n messages or maxBytes arrived, or
// PullMaxWait passed, or ctx ended. It sets tooBig when the server ended
// the request early with nothing, which it does when the next message is
// larger than maxBytes.
func (s *jsSource) pull(ctx context.Context, n int, maxBytes int64) error {
	// Not derived from ctx: at shutdown read hands back what is on its
	// way before it ends the pull (see read).
	fctx, cancel := context.WithTimeout(context.Background(), s.cfg.PullMaxWait)
	defer cancel()
	opts := []jetstream.FetchOpt{jetstream.FetchContext(fctx)}
	if maxBytes > 0 {
		opts = append(opts, jetstream.FetchMaxBytes(int(maxBytes)))
	}
	batch, err := s.cons.Fetch(n, opts...)
	if err != nil {
		return err
	}
	s.met.pulls.Inc()
	s.met.pullRecords.Observe(float64(n))
	got := s.read(ctx, batch.Messages(), cancel)
	err = batch.Error()
	switch {
	case got > 0:
		s.tooBig, s.bigEmpty = 0, 0
	case err != nil || fctx.Err() != nil || ctx.Err() != nil:
	case maxBytes > 0:
		s.tooBig++
	default:
		s.bigEmpty++
	}
	if err == nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, nats.ErrTimeout) {
		return nil
	}
	return err
}

// read admits the messages of one pull in batches of what has arrived, and
// returns how many arrived.
//
// When ctx ends (shutdown) it stops admitting but does not drop the pull
// at once: messages the server has already sent are on their way, and a
// client that unsubscribes drops them, so they would wait out AckWait on
// the server. It hands back (Nak) what still arrives, until the pull has
// been quiet for pullQuiet, and only then ends it (stop).
func (s *jsSource) read(ctx context.Context, ch <-chan jetstream.Msg, stop context.CancelFunc) int {
	batchMax := s.cc.BatchMax
	got := 0
	for {
		var jm jetstream.Msg
		var ok bool
		select {
		case jm, ok = <-ch:
		case <-ctx.Done():
			return got + s.handBackRest(ch, stop)
		}
		if !ok {
			return got
		}
		buf := append(s.buf[:0], jm)
		open := true
	more:
		for len(buf) < batchMax {
			select {
			case jm, ok := <-ch:
				if !ok {
					open = false
					break more
				}
				buf = append(buf, jm)
			default:
				break more
			}
		}
		got += len(buf)
		if ctx.Err() != nil {
			s.handBack(buf, s.met.abandoned)
		} else {
			s.admit(buf)
		}
		clear(buf)
		s.buf = buf[:0]
		if !open {
			return got
		}
		if ctx.Err() != nil {
			return got + s.handBackRest(ch, stop)
		}
	}
}

// pullQuiet is how long a pull must bring nothing, after a shutdown began,
// before it is dropped: messages the server sent arrive within it.
const pullQuiet = 200 * time.Millisecond

// handBackRest hands back what the pull still brings until it closes or
// stays quiet for pullQuiet, then ends it with stop, and hands back what
// was left in the channel. It returns how many it handed back.
func (s *jsSource) handBackRest(ch <-chan jetstream.Msg, stop context.CancelFunc) int {
	n := 0
	t := time.NewTimer(pullQuiet)
	defer t.Stop()
	for {
		select {
		case jm, ok := <-ch:
			if !ok {
				return n
			}
			s.handBack([]jetstream.Msg{jm}, s.met.abandoned)
			n++
			t.Reset(pullQuiet)
		case <-t.C:
			stop()
			for jm := range ch {
				s.handBack([]jetstream.Msg{jm}, s.met.abandoned)
				n++
			}
			return n
		}
	}
}

// admit converts messages into the pipeline's, holds them (for InProgress)
// and admits them. They fit in the window: the pull was sized to.
func (s *jsSource) admit(buf []jetstream.Msg) {
	n := len(buf)
	msgs := make([]Message, n)
	hs := make([]jsHandle, n)
	ptrs := make([]*Message, n)
	var bytes int64
	for i, jm := range buf {
		m, h := &msgs[i], &hs[i]
		h.msg = jm
		m.ack = h
		m.Source = SourceJetStream
		m.Topic = jm.Subject()
		m.Value = jm.Data()
		var delivered uint64
		if md, ok := parseAckSubject(jm.Reply()); ok {
			m.Offset = int64(md.streamSeq)
			m.Time = time.Unix(0, md.timestamp)
			delivered = md.delivered
		} else if meta, err := jm.Metadata(); err == nil {
			m.Offset = int64(meta.Sequence.Stream)
			m.Time = meta.Timestamp
			delivered = meta.NumDelivered
		}
		if delivered > 1 {
			// A redelivery: the failures charged before it count only if
			// this process handed it back after one (deliverOne then adds
			// this delivery to Attempt).
			m.charged = s.nakCharged(uint64(m.Offset))
			m.Attempt = m.charged
		}
		hb := setHeaders(m, jm.Headers())
		m.Key = natsKey(m, s.cfg.KeyHeader)
		m.size = int64(len(m.Topic)+len(m.Value)) + hb
		bytes += m.size
		ptrs[i] = m
	}
	s.held.add(hs, s.now())
	s.in.Polled(n, bytes)
	s.received.Add(int64(n))
	if k := s.in.Admit(s.part, ptrs, bytes, -1); k < n {
		// Cannot happen: the pull asked for no more than the window had
		// free, and only this goroutine admits. Were it to, the rest goes
		// back to the server for redelivery rather than wait here.
		s.log.Error("jetstream: a pull brought more than the window had room for; handing the rest back",
			"reason", "over_budget", "handed_back", n-k)
		rest := make([]jetstream.Msg, 0, n-k)
		for _, h := range hs[k:] {
			rest = append(rest, h.msg)
		}
		s.held.remove(ptrs[k:])
		s.handBack(rest, s.met.abandoned)
	}
}

// ack acks (or terms) each message the pipeline is done with; the pipeline
// then gives its place in the window back: the window counts a message
// until its ack is sent. Called by the workers, without the pipeline's
// lock.
func (s *jsSource) ack(batch []*Message) {
	var acked, termed, failed int
	for _, m := range batch {
		h := m.ack.(*jsHandle)
		if h.nakd {
			continue
		}
		var err error
		switch {
		case m.gaveUp != "":
			err = h.msg.TermWithReason("sluice: " + m.gaveUp)
			termed++
		case s.cfg.DoubleAck:
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ConnectTimeout)
			err = h.msg.DoubleAck(ctx)
			cancel()
			acked++
		default:
			err = h.msg.Ack()
			acked++
		}
		if err != nil {
			failed++
			s.log.Debug("jetstream ack failed; the server will redeliver after AckWait",
				"subject", m.Topic, "stream_seq", m.Offset, "error", err)
		}
	}
	s.held.remove(batch)
	s.met.acks.Add(float64(acked))
	if termed > 0 {
		s.met.terms.Add(float64(termed))
	}
	if failed > 0 {
		s.met.ackErrors.Add(float64(failed))
	}
}

// settle hands a failed message back to the server with NakWithDelay when
// ordering allows it (see jsSource): the worker is free at once and the
// server redelivers after the backoff. It reports whether it did.
func (s *jsSource) settle(m *Message, d decision) bool {
	if !d.charged || s.cc.Ordering != OrderNone {
		return false
	}
	h := m.ack.(*jsHandle)
	if err := h.msg.NakWithDelay(d.delay); err != nil {
		s.met.ackErrors.Inc()
		return false // retry in place instead
	}
	h.nakd = true
	s.nakMu.Lock()
	s.nakd[uint64(m.Offset)] = nakRecord{charged: m.charged, at: s.now()}
	s.nakMu.Unlock()
	s.met.naks.Inc()
	s.log.Debug("delivery failed; handed back to the server for a later retry",
		"subject", m.Topic, "stream_seq", m.Offset, "attempt", m.Attempt, "retry_in", d.delay)
	return true
}

// nakCharged returns (and forgets) the failures charged to a message this
// process handed back; 0 for any other.
func (s *jsSource) nakCharged(seq uint64) int {
	s.nakMu.Lock()
	defer s.nakMu.Unlock()
	r, ok := s.nakd[seq]
	if !ok {
		return 0
	}
	delete(s.nakd, seq)
	return r.charged
}

// forgetNaks drops records of handed-back messages that were not
// redelivered here within the longest retry delay plus two AckWaits
// (another replica took them, or they were acked elsewhere).
func (s *jsSource) forgetNaks(now int64) {
	cutoff := now - int64(s.cc.RetryMaxBackoff+2*s.ackWait+time.Minute)
	s.nakMu.Lock()
	defer s.nakMu.Unlock()
	for seq, r := range s.nakd {
		if r.at < cutoff {
			delete(s.nakd, seq)
		}
	}
}

// readInfo reads the consumer's state every InfoInterval, for the lag and
// the metrics.
func (s *jsSource) readInfo(ctx context.Context) {
	t := time.NewTicker(s.cfg.InfoInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ictx, cancel := context.WithTimeout(ctx, s.cfg.InfoInterval)
		info, err := s.cons.Info(ictx)
		cancel()
		if err != nil {
			s.log.Debug("jetstream consumer info failed", "error", err)
			continue
		}
		s.setInfo(info)
	}
}

// setInfo records the consumer's state, and this replica's share of its
// lag. Called by start, then by readInfo only.
//
// The consumer's lag is num_pending + num_ack_pending: what the stream
// holds for it that is not acked yet. Every replica sharing the consumer
// reads the same numbers, but the pod scale signal is summed over pods, so
// each reports its share: the fraction of the consumer's deliveries since
// the last reading that came to it (or, when none came, of the messages out
// unacked that it holds; when there are none either, the last fraction).
// Alone, a replica's share is all of it.
//
// The share reaches Stats().Lag through the partition, in Kafka's terms:
// its committed (and done) offset is the sequence after the ack floor, and
// its high watermark that plus the share.
func (s *jsSource) setInfo(info *jetstream.ConsumerInfo) {
	s.numPending.Store(int64(info.NumPending))
	s.numAckPending.Store(int64(info.NumAckPending))
	s.numRedelivered.Store(int64(info.NumRedelivered))
	if mp := int64(info.Config.MaxAckPending); mp > 0 {
		s.maxAckPending.Store(mp)
	}
	mine := s.received.Load()
	switch delivered := info.Delivered.Consumer; {
	case s.infoRead && delivered > s.lastDelivered:
		s.share = min(1, float64(mine-s.lastReceived)/float64(delivered-s.lastDelivered))
	case info.NumAckPending > 0:
		freeRecs, _ := s.in.Free()
		s.share = min(1, float64(int64(s.cc.MaxRecords)-freeRecs)/float64(info.NumAckPending))
	}
	s.infoRead, s.lastDelivered, s.lastReceived = true, info.Delivered.Consumer, mine
	lag := float64(info.NumPending) + float64(info.NumAckPending)
	s.lagShare.Store(int64(lag*s.share + 0.5))
	if s.part != nil {
		next := int64(info.AckFloor.Stream) + 1
		s.in.Position(s.part, next, next+s.lagShare.Load())
	}
}

// pause and resume apply to the one partition: the run loop sends no pull
// while paused.
func (s *jsSource) pause([]*partition)  { s.paused.Store(true) }
func (s *jsSource) resume([]*partition) { s.paused.Store(false) }

// close stops the background loops, hands the messages still held back to
// the server (they were not delivered: the shutdown gave up on them) so
// that they are redelivered now rather than after AckWait, and drains the
// connection, which sends the acks still buffered.
func (s *jsSource) close(ctx context.Context) {
	s.stopLoops()
	s.loops.Wait()
	s.handBack(s.held.takeAll(), s.met.abandoned)
	s.conn.drain(drainBudget(ctx, s.cfg.DrainTimeout))
}

// handBack naks messages without delay and counts them in kind.
func (s *jsSource) handBack(msgs []jetstream.Msg, kind prometheus.Counter) {
	failed := 0
	for _, jm := range msgs {
		if err := jm.Nak(); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			failed++
		}
	}
	kind.Add(float64(len(msgs) - failed))
	if failed > 0 {
		s.met.ackErrors.Add(float64(failed))
	}
}

package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// shareSource is a member of a Kafka share group (KIP-932).
//
// A share group hands each record to one member at a time, under an
// acquisition lock, and lets any number of members read the same
// partitions. Every record is acknowledged on its own: accepted (done),
// released (to be delivered again, perhaps elsewhere) or rejected (never
// again). There is no offset to commit and no order.
//
// Flow control. franz-go accepts, at the next poll, every record of the
// previous poll that has no final acknowledgement yet. So a poll must wait
// until every record of the one before is settled: the window holds one
// poll's records, and the source polls again only once it is empty. A poll
// asks for no more records than the window holds (ShareMaxRecords, at most
// sharePollRecords) and no more bytes, and nothing is fetched between polls
// (MaxConcurrentFetches 0): nothing is acquired that is not in the window,
// so no lock runs out in the client's buffer. "Pausing" is not polling.
// With ShareAcquireMode record_limit (the default) the broker splits record
// batches to keep to the count; with batch_optimized it returns whole
// batches, so a poll may bring more records than asked. The byte limit is
// a hint to the broker either way. What a poll brings beyond the window's
// room waits outside it (admitWaiting), acquired and renewed with the rest,
// until deliveries free room: the window keeps its budgets, and the memory
// outside it is one poll's excess at most.
//
// Locks. While the records of a poll wait (for a worker, a slow sink, a
// retry), their locks are renewed (AckRenew) each time half of the lock
// duration has passed since they were acquired or last renewed, so a full
// window or a slow sink does not turn into redeliveries.
//
// Acknowledgement. ack accepts a delivered record, and a dead-lettered
// one; it rejects one dropped under the drop policy. A failed delivery is
// retried in place with the failure policy's backoff (its lock renewed
// meanwhile): a release would be delivered again at once, without backoff,
// and Kafka archives a record once its delivery count reaches
// group.share.delivery.count.limit, silently, where Sluice would have
// dead-lettered it. Message.Attempt starts from the broker's delivery
// count, so the attempts of every member count against the same
// SLUICE_RETRY_MAX_ATTEMPTS. At shutdown, what was polled and not settled
// is released when the client leaves the group: another member gets it at
// once, not after a lock timeout.
//
// Scale signal. Every lagInterval the source reads the group's lag (the
// share-group offsets API) and the number of its members; each member
// reports lag/members, so the pod signal summed over pods is the group's
// lag, with no cap at the partition count.
type shareSource struct {
	log  *slog.Logger
	in   intake // set by start
	kc   *KafkaConfig
	opts []kgo.Opt
	cl   *kgo.Client // set by start
	adm  *kadm.Client
	tp   topicPartition
	part *partition

	paused      atomic.Bool
	pollRecords int // the most one poll takes; -1: all the fetch brought

	// waiting holds the current poll's records the window had no room
	// for yet (owned by run); unsettled counts the current poll's records
	// not yet acknowledged, admitted or waiting. The next poll waits for 0.
	waiting   []*Message
	unsettled atomic.Int64

	// The records of the current poll, for renewing their locks; guarded
	// by mu. renewed is when they were acquired or last renewed; lock is
	// the acquisition lock's duration as the last poll showed it.
	mu      sync.Mutex
	polled  []*kgo.Record
	renewed time.Time
	lock    time.Duration
	wake    chan struct{} // a poll was admitted: keepAlive reconsiders

	members, lag, lagShare atomic.Int64

	met shareMetrics

	stopLoops context.CancelFunc
	loops     sync.WaitGroup
}

type shareMetrics struct {
	polls       prometheus.Counter
	pollRecords prometheus.Histogram
	accepts     prometheus.Counter
	rejects     prometheus.Counter
	renews      prometheus.Counter
	ackErrors   prometheus.Counter
	redelivered prometheus.Counter
}

// sharePollRecords is the most records one poll takes (within the window's
// budget), as Kafka's own share consumer (max.poll.records): a member takes
// what its workers can soon deliver and leaves the rest to the others.
const sharePollRecords = 500

// lagInterval is how often a share-group member reads the group's lag.
const lagInterval = 5 * time.Second

func newShareSource(env sourceEnv) (*shareSource, error) {
	kc := &env.cfg.Kafka
	s := &shareSource{log: env.log, kc: kc, tp: topicPartition{topic: kc.Group}, wake: make(chan struct{}, 1)}
	maxRecords := int32(min(env.cfg.MaxRecords, sharePollRecords))
	maxBytes := int32(min(env.cfg.MaxBytes, 1<<30))
	opts := []kgo.Opt{
		kgo.SeedBrokers(kc.Brokers...),
		kgo.ClientID(kc.ClientID),
		kgo.ShareGroup(kc.Group),
		kgo.ShareMaxRecords(maxRecords),
		kgo.MaxConcurrentFetches(0),
		kgo.FetchMaxWait(kc.FetchMaxWait),
		kgo.FetchMaxBytes(maxBytes),
		kgo.FetchMaxPartitionBytes(maxBytes),
		kgo.WithLogger(kafkaLogger(env.log)),
		kgo.ShareAckCallback(s.acked),
	}
	if kc.TopicsRegex != "" {
		opts = append(opts, kgo.ConsumeTopics("^(?:"+kc.TopicsRegex+")$"), kgo.ConsumeRegex())
	} else {
		opts = append(opts, kgo.ConsumeTopics(kc.Topics...))
	}
	if kc.Rack != "" {
		opts = append(opts, kgo.Rack(kc.Rack))
	}
	s.pollRecords = int(maxRecords)
	if kc.ShareAcquireMode == ShareRecordLimit {
		opts = append(opts, kgo.ShareMaxRecordsStrict())
	} else {
		s.pollRecords = -1 // all the fetch brought: nothing stays acquired in the client
	}
	s.opts = append(opts, kc.Opts...)
	s.register(env.reg)
	return s, nil
}

func (s *shareSource) register(reg prometheus.Registerer) {
	f := promauto.With(reg)
	acks := f.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_kafka_share_acks_total",
		Help: "Share-group acknowledgements sent, by kind: accept (delivered or dead-lettered), reject (dropped), renew (acquisition lock extended).",
	}, []string{"kind"})
	s.met = shareMetrics{
		polls: f.NewCounter(prometheus.CounterOpts{
			Name: "sluice_kafka_share_polls_total",
			Help: "Share-group polls that brought records.",
		}),
		pollRecords: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "sluice_kafka_share_poll_records",
			Help:    "Records per share-group poll.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 17),
		}),
		accepts: acks.WithLabelValues("accept"),
		rejects: acks.WithLabelValues("reject"),
		renews:  acks.WithLabelValues("renew"),
		ackErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "sluice_kafka_share_ack_errors_total",
			Help: "Share-group acknowledgements the broker refused (a record whose lock had run out: it is delivered again, perhaps to another member).",
		}),
		redelivered: f.NewCounter(prometheus.CounterOpts{
			Name: "sluice_kafka_share_redelivered_records_total",
			Help: "Records that arrived with a delivery count above 1 (delivered before, to this or another member).",
		}),
	}
	gauge := func(name, help string, v *atomic.Int64) {
		f.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return float64(v.Load()) })
	}
	gauge("sluice_kafka_share_group_lag_records", "Records of the share group's partitions not yet acknowledged (the share-group offsets API), all members together.", &s.lag)
	gauge("sluice_kafka_share_group_members", "Members of the share group.", &s.members)
	gauge("sluice_kafka_share_lag_share_records", "This member's share of the group's lag (lag / members); sluice_consumer_lag_records reports it too.", &s.lagShare)
}

// start creates the client, prepares the group's configuration and starts
// the loops that renew locks and read the lag.
func (s *shareSource) start(ctx context.Context, in intake) error {
	s.in = in
	cl, err := kgo.NewClient(s.opts...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	s.cl, s.adm = cl, kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.configureGroup(ctx); err != nil {
		cl.Close()
		return err
	}
	in.Assigned([]topicPartition{s.tp})
	s.part = in.Partition(s.tp)
	lctx, stop := context.WithCancel(context.Background())
	s.stopLoops = stop
	s.loops.Go(func() { s.keepAlive(lctx) })
	s.loops.Go(func() { s.readLag(lctx) })
	s.log.Info("kafka share group member started", "reason", "started", "group", s.kc.Group,
		"topics", s.kc.Topics, "topics_regex", s.kc.TopicsRegex, "ordering", "none (share groups keep no order)")
	return nil
}

// Group configuration entries Sluice sets on a share group it starts, when
// the group has no value of its own.
const (
	shareAutoOffsetReset = "share.auto.offset.reset"
	shareIsolationLevel  = "share.isolation.level"
)

// configureGroup gives the group Sluice's start offset and isolation,
// where the group has no setting of its own (Kafka's defaults are latest
// and read_uncommitted; Sluice's are earliest and read_committed), and
// waits until the broker reports them applied: a member that joins before
// would start the group from Kafka's default. A value the group already
// has is left alone, with a warning when it differs.
func (s *shareSource) configureGroup(ctx context.Context) error {
	want := map[string]string{shareAutoOffsetReset: s.kc.StartOffset, shareIsolationLevel: s.kc.Isolation}
	have, err := s.groupConfig(ctx)
	if err != nil {
		return fmt.Errorf("kafka share group %q: reading its configuration: %w", s.kc.Group, err)
	}
	var set []kadm.AlterConfig
	for k, v := range want {
		switch cur, ok := have[k]; {
		case !ok:
			set = append(set, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: kadm.StringPtr(v)})
		case cur != v:
			s.log.Warn("the share group's own setting differs from Sluice's and is kept",
				"reason", "group_config", "group", s.kc.Group, "config", k, "group_value", cur, "sluice_value", v)
		}
	}
	if len(set) == 0 {
		return nil
	}
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType = kmsg.ConfigResourceTypeGroupConfig
	res.ResourceName = s.kc.Group
	for _, a := range set {
		rc := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		rc.Name, rc.Op, rc.Value = a.Name, kmsg.IncrementalAlterConfigOpSet, a.Value
		res.Configs = append(res.Configs, rc)
	}
	req.Resources = append(req.Resources, res)
	resp, err := req.RequestWith(ctx, s.cl)
	if err == nil {
		for _, r := range resp.Resources {
			if e := kerr.ErrorForCode(r.ErrorCode); e != nil {
				err = e
			}
		}
	}
	if err != nil {
		return fmt.Errorf("kafka share group %q: setting %s=%s and %s=%s (needs ALTER_CONFIGS on the group; or set them yourself): %w",
			s.kc.Group, shareAutoOffsetReset, want[shareAutoOffsetReset], shareIsolationLevel, want[shareIsolationLevel], err)
	}
	// The broker applies group configuration asynchronously.
	for {
		have, err = s.groupConfig(ctx)
		if err == nil && have[shareAutoOffsetReset] == want[shareAutoOffsetReset] && have[shareIsolationLevel] == want[shareIsolationLevel] {
			s.log.Info("share group configured", "reason", "group_config", "group", s.kc.Group,
				shareAutoOffsetReset, want[shareAutoOffsetReset], shareIsolationLevel, want[shareIsolationLevel])
			return nil
		}
		if !sleep(ctx, 100*time.Millisecond) {
			return fmt.Errorf("kafka share group %q: the broker did not apply %s and %s within 30s", s.kc.Group,
				shareAutoOffsetReset, shareIsolationLevel)
		}
	}
}

// groupConfig returns the group's configuration entries that are set on
// the group itself (not broker defaults).
func (s *shareSource) groupConfig(ctx context.Context) (map[string]string, error) {
	req := kmsg.NewPtrDescribeConfigsRequest()
	res := kmsg.NewDescribeConfigsRequestResource()
	res.ResourceType = kmsg.ConfigResourceTypeGroupConfig
	res.ResourceName = s.kc.Group
	res.ConfigNames = []string{shareAutoOffsetReset, shareIsolationLevel}
	req.Resources = append(req.Resources, res)
	resp, err := req.RequestWith(ctx, s.cl)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string)
	for _, r := range resp.Resources {
		if e := kerr.ErrorForCode(r.ErrorCode); e != nil {
			return nil, e
		}
		for _, c := range r.Configs {
			if c.Value != nil && c.Source == kmsg.ConfigSourceGroupConfig {
				out[c.Name] = *c.Value
			}
		}
	}
	return out, nil
}

// run polls whenever the window is empty and not paused, and admits what
// the poll brings.
func (s *shareSource) run(ctx context.Context) error {
	for ctx.Err() == nil {
		changed := s.in.Changed()
		s.admitWaiting()
		if s.paused.Load() || s.unsettled.Load() > 0 {
			select {
			case <-changed:
			case <-ctx.Done():
			}
			continue
		}
		fs := s.cl.PollRecords(ctx, s.pollRecords)
		if fs.IsClientClosed() {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				s.log.Warn("share fetch error", "topic", t, "partition", p, "error", err)
			}
		})
		s.take(fs)
		s.admitWaiting()
	}
	return nil
}

// take converts a poll's records into messages waiting for admission.
// Records that arrive as a shutdown begins are taken all the same: the
// drain delivers what was admitted, and the leave releases the rest.
func (s *shareSource) take(fs kgo.Fetches) {
	n := fs.NumRecords()
	if n == 0 {
		return
	}
	msgs := make([]Message, n)
	ptrs := make([]*Message, n)
	recs := make([]*kgo.Record, 0, n)
	var bytes int64
	redelivered := 0
	fs.EachRecord(func(r *kgo.Record) {
		i := len(recs)
		m := &msgs[i]
		m.Source = SourceKafkaShare
		m.Topic = r.Topic
		m.Partition = r.Partition
		m.Offset = r.Offset
		m.Key = r.Key
		m.Value = r.Value
		m.Time = r.Timestamp
		m.ack = r
		m.size = int64(len(r.Key) + len(r.Value))
		if len(r.Headers) > 0 {
			m.Headers = make([]Header, len(r.Headers))
			for j, h := range r.Headers {
				m.Headers[j] = Header{Key: h.Key, Value: h.Value}
				m.size += int64(len(h.Key) + len(h.Value))
			}
		}
		if dc := int(r.DeliveryCount()); dc > 1 {
			// Every earlier delivery, to any member, counts as an attempt.
			m.charged, m.Attempt = dc-1, dc-1
			redelivered++
		}
		bytes += m.size
		ptrs[i] = m
		recs = append(recs, r)
	})
	now := time.Now()
	s.mu.Lock()
	s.polled, s.renewed = recs, now
	// The lock as this poll shows it (the group's setting may change); a
	// deadline already past (a slow machine) keeps the last one, or
	// Kafka's shortest lock, 15 s, until a poll shows one.
	if d := recs[0].AcquisitionDeadline(); d.After(now) {
		s.lock = d.Sub(now)
	} else if s.lock == 0 {
		s.lock = 15 * time.Second
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	s.met.polls.Inc()
	s.met.pollRecords.Observe(float64(n))
	s.met.redelivered.Add(float64(redelivered))
	s.in.Polled(n, bytes)
	s.unsettled.Store(int64(n))
	s.waiting = ptrs
}

// admitWaiting admits what of the current poll fits in the window (an
// empty window takes one record at least): the broker treats a fetch's
// byte limit as a hint (kfake ignores it) and, in batch_optimized mode,
// its record limit too, so a poll may bring more than the window has room
// for. The rest waits here, its locks renewed with the others', until
// deliveries free room. (The pipeline splits what is admitted over the
// workers: a poll is small.)
func (s *shareSource) admitWaiting() {
	if len(s.waiting) == 0 {
		return
	}
	n := s.in.Admit(s.part, s.waiting, -1, -1)
	if s.waiting = s.waiting[n:]; len(s.waiting) == 0 {
		s.waiting = nil
	}
}

// ack acknowledges each message the pipeline is done with: accept when
// delivered or dead-lettered, reject when dropped. Called by the workers,
// without the pipeline's lock; the pipeline then gives the messages'
// places in the window back.
func (s *shareSource) ack(batch []*Message) {
	rejected := 0
	for _, m := range batch {
		st := kgo.AckAccept
		if m.dropped {
			st = kgo.AckReject
			rejected++
		}
		m.ack.(*kgo.Record).Ack(st)
	}
	s.unsettled.Add(-int64(len(batch)))
	s.met.accepts.Add(float64(len(batch) - rejected))
	if rejected > 0 {
		s.met.rejects.Add(float64(rejected))
	}
}

// acked counts the acknowledgements the broker refused.
func (s *shareSource) acked(_ *kgo.Client, rs kgo.ShareAckResults) {
	for _, r := range rs {
		if r.Err != nil {
			s.met.ackErrors.Inc()
			s.log.Debug("share acknowledgement refused; the record will be delivered again",
				"topic", r.Topic, "partition", r.Partition, "error", r.Err)
		}
	}
}

// keepAlive renews the locks of the current poll's records once half the
// lock duration has passed since they were acquired or last renewed. A
// record already settled ignores the renewal.
func (s *shareSource) keepAlive(ctx context.Context) {
	for {
		s.mu.Lock()
		lock, renewed, n := s.lock, s.renewed, len(s.polled)
		s.mu.Unlock()
		wait := time.Hour
		if lock > 0 && n > 0 {
			wait = time.Until(renewed.Add(lock / 2))
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-s.wake:
				t.Stop()
				continue
			case <-t.C:
			}
		}
		s.renew(ctx)
	}
}

// renew extends the locks of the current poll's records that are not
// settled, and sends the renewals at once.
func (s *shareSource) renew(ctx context.Context) {
	s.mu.Lock()
	recs := s.polled
	s.renewed = time.Now()
	s.mu.Unlock()
	unsettled := s.unsettled.Load()
	if unsettled == 0 {
		return
	}
	for _, r := range recs {
		r.Ack(kgo.AckRenew)
	}
	s.met.renews.Add(float64(unsettled))
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.cl.FlushAcks(fctx); err != nil && ctx.Err() == nil {
		s.log.Warn("share-group lock renewal not confirmed", "reason", "renew_error", "error", err)
	}
}

// readLag reads the group's lag and members every lagInterval.
func (s *shareSource) readLag(ctx context.Context) {
	t := time.NewTicker(lagInterval)
	defer t.Stop()
	for {
		s.readLagOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *shareSource) readLagOnce(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, lagInterval)
	defer cancel()
	offs, err := s.adm.DescribeShareGroupOffsets(rctx, s.kc.Group)
	if err != nil {
		s.log.Debug("share group offsets not read", "error", err)
		return
	}
	var lag int64
	unknown := map[string][]int32{}
	for _, ps := range offs[s.kc.Group].Offsets {
		for _, o := range ps {
			switch {
			case o.Err != nil:
			case o.Lag >= 0:
				lag += o.Lag
			default:
				unknown[o.Topic] = append(unknown[o.Topic], o.Partition)
			}
		}
	}
	if len(unknown) > 0 {
		// A broker that does not report the lag (before v1 of the API):
		// the end offset less the share-partition start offset.
		ends, err := s.adm.ListEndOffsets(rctx, keys(unknown)...)
		if err == nil {
			for t, ps := range unknown {
				for _, p := range ps {
					if e, ok := ends.Lookup(t, p); ok && e.Err == nil {
						lag += max(0, e.Offset-offs[s.kc.Group].Offsets[t][p].StartOffset)
					}
				}
			}
		}
	}
	members := int64(1)
	if d, err := s.adm.DescribeShareGroups(rctx, s.kc.Group); err == nil {
		members = max(1, int64(len(d[s.kc.Group].Members)))
	}
	share := (lag + members - 1) / members
	s.lag.Store(lag)
	s.members.Store(members)
	s.lagShare.Store(share)
	if s.part != nil {
		// The lag reaches Stats().Lag through the partition, in a
		// consumer group's terms (as the JetStream source does).
		s.in.Position(s.part, 0, share)
	}
}

func keys(m map[string][]int32) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// pause and resume: the run loop does not poll while paused.
func (s *shareSource) pause([]*partition)  { s.paused.Store(true) }
func (s *shareSource) resume([]*partition) { s.paused.Store(false) }

// close sends the last acknowledgements, leaves the group (which releases
// what was polled and not settled, so another member gets it at once) and
// closes the client, within the shutdown deadline.
func (s *shareSource) close(ctx context.Context) {
	s.stopLoops()
	s.loops.Wait()
	closeClient(ctx, s.log, s.cl, func(ctx context.Context) {
		if err := s.cl.FlushAcks(ctx); err != nil {
			s.log.Warn("share-group acknowledgements not all confirmed before the shutdown deadline",
				"reason", "shutdown_timeout", "error", err)
		}
		if err := s.cl.LeaveGroupContext(ctx); err != nil {
			s.log.Warn("leaving the share group did not finish before the shutdown deadline",
				"reason", "shutdown_timeout", "error", err)
		}
	})
}

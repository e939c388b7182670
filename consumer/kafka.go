package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// KafkaConfig configures the Kafka source. The zero value of each field
// means its documented default.
type KafkaConfig struct {
	// Brokers to bootstrap from (required).
	Brokers []string
	// Topics to consume (required unless TopicsRegex is set).
	Topics []string
	// TopicsRegex, when set, subscribes to every topic whose whole name
	// matches this regular expression (Go RE2 syntax; Sluice anchors it, so
	// "orders-.*" does not match "old-orders-1"), instead of Topics: a topic
	// created later is picked up at the next metadata refresh (franz-go
	// refreshes every 5 min by default, sooner on errors), without a
	// restart. Internal topics (__consumer_offsets) never match.
	TopicsRegex string
	// Group is the consumer group (default "sluice"). Members share the
	// partitions with the cooperative-sticky balancer.
	Group string
	// ClientID names the client to the brokers, in their logs, quotas and
	// group descriptions (default "sluice"; the service sets the host name,
	// which in Kubernetes is the pod's name).
	ClientID string
	// InstanceID, when set, makes this member a static member of the group
	// (KIP-345, group.instance.id): a member that restarts with the same
	// InstanceID within SessionTimeout takes back its partitions at once,
	// with no rebalance, where a new member would wait for the old one's
	// session to expire. Each member of the group needs an ID of its own
	// that survives its restarts (the pod name). The trade-off: a static
	// member does not leave the group when it closes, so the partitions of
	// a member that stops for good (scale-in, a rolling update that renames
	// pods) wait SessionTimeout before they move. Default: none (dynamic
	// membership).
	InstanceID string
	// Isolation is which records of transactional producers are delivered:
	// "read_committed" (default: records of aborted transactions are never
	// delivered, and a partition is read only up to its first open
	// transaction) or "read_uncommitted" (everything, as soon as written,
	// aborted records included; franz-go's and the Java client's default).
	Isolation string
	// Rack is the rack (availability zone) this member runs in (KIP-392).
	// Brokers configured with a rack-aware replica selector then serve its
	// fetches from a replica in the same rack, saving cross-zone traffic.
	// Default: none (fetch from the leaders).
	Rack string
	// StartOffset is where a partition with no committed offset starts:
	// "earliest" (default) or "latest".
	StartOffset string
	// FetchMaxWait is how long a broker may hold a fetch waiting for data
	// (default 250 ms). It also bounds how long a resume can wait to take
	// effect, so it is kept well under franz-go's 5 s default.
	FetchMaxWait time.Duration
	// SessionTimeout is how long the group coordinator waits for a silent
	// member before giving its partitions to others (default 45 s, as
	// franz-go). Shorter means faster recovery after a crash and more
	// rebalances on a slow network.
	SessionTimeout time.Duration
	// MaxConcurrentFetches bounds fetches in flight or buffered in the
	// client (default 2). With FetchMaxBytes it bounds one poll's bytes.
	MaxConcurrentFetches int
	// FetchMaxBytes bounds one fetch response (default: a tenth of the
	// window's byte budget, split between the concurrent fetches, within
	// 64 KiB and 50 MiB). Fetched records wait in the client until the
	// window has room, so this bounds the memory outside the window.
	FetchMaxBytes int64
	// ShareAcquireMode is how a share-group member (SourceKafkaShare) asks
	// for records: ShareRecordLimit (default: the broker splits record
	// batches so that a poll brings at most what the window has room for)
	// or ShareBatchOptimized (whole batches: about twice the throughput of a
	// fast sink on Kafka 4.3, but a poll may bring more than the window has
	// room for; the rest waits outside the window, acquired, until there is
	// room).
	ShareAcquireMode string
	// Opts are extra franz-go options (TLS, SASL, ...), applied last.
	Opts []kgo.Opt
}

// Isolation levels of KafkaConfig.Isolation.
const (
	IsolationReadCommitted   = "read_committed"
	IsolationReadUncommitted = "read_uncommitted"
)

// Share-group acquire modes of KafkaConfig.ShareAcquireMode (Kafka's
// share.acquire.mode).
const (
	ShareRecordLimit    = "record_limit"
	ShareBatchOptimized = "batch_optimized"
)

// opts are the franz-go options KafkaConfig's subscription, membership and
// fetch settings stand for.
func (k *KafkaConfig) opts() []kgo.Opt {
	var opts []kgo.Opt
	if k.TopicsRegex != "" {
		opts = append(opts, kgo.ConsumeTopics("^(?:"+k.TopicsRegex+")$"), kgo.ConsumeRegex())
	} else {
		opts = append(opts, kgo.ConsumeTopics(k.Topics...))
	}
	if k.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(k.InstanceID))
	}
	level := kgo.ReadCommitted()
	if k.Isolation == IsolationReadUncommitted {
		level = kgo.ReadUncommitted()
	}
	opts = append(opts, kgo.FetchIsolationLevel(level))
	if k.Rack != "" {
		opts = append(opts, kgo.Rack(k.Rack))
	}
	return opts
}

func (k *KafkaConfig) setDefaults(c *Config) {
	if k.Group == "" {
		k.Group = "sluice"
	}
	if k.ClientID == "" {
		k.ClientID = "sluice"
	}
	if k.StartOffset == "" {
		k.StartOffset = "earliest"
	}
	if k.Isolation == "" {
		k.Isolation = IsolationReadCommitted
	}
	if k.ShareAcquireMode == "" {
		k.ShareAcquireMode = ShareRecordLimit
	}
	if k.FetchMaxWait == 0 {
		k.FetchMaxWait = 250 * time.Millisecond
	}
	if k.MaxConcurrentFetches == 0 {
		k.MaxConcurrentFetches = 2
	}
	if k.SessionTimeout == 0 {
		k.SessionTimeout = 45 * time.Second
	}
	if k.FetchMaxBytes == 0 && k.MaxConcurrentFetches > 0 {
		room := c.MaxBytes / 10
		k.FetchMaxBytes = min(max(room/int64(k.MaxConcurrentFetches), 64<<10), 50<<20)
	}
}

func (k *KafkaConfig) validate() []error {
	var errs []error
	bad := func(field string, v any, want string) {
		errs = append(errs, &FieldError{Field: "Kafka." + field, Value: v, Want: want})
	}
	if len(k.Brokers) == 0 {
		bad("Brokers", k.Brokers, "want at least one host:port")
	}
	switch {
	case k.TopicsRegex != "" && len(k.Topics) > 0:
		bad("TopicsRegex", k.TopicsRegex, "want Topics or TopicsRegex, not both")
	case k.TopicsRegex != "":
		if _, err := regexp.Compile(k.TopicsRegex); err != nil {
			bad("TopicsRegex", k.TopicsRegex, "want a regular expression (RE2 syntax): "+err.Error())
		}
	case len(k.Topics) == 0:
		bad("Topics", k.Topics, "want at least one topic (or TopicsRegex)")
	}
	if k.Isolation != IsolationReadCommitted && k.Isolation != IsolationReadUncommitted {
		bad("Isolation", k.Isolation, "want read_committed or read_uncommitted")
	}
	if k.ShareAcquireMode != ShareRecordLimit && k.ShareAcquireMode != ShareBatchOptimized {
		bad("ShareAcquireMode", k.ShareAcquireMode, "want record_limit or batch_optimized")
	}
	if len(k.InstanceID) > 249 || strings.ContainsAny(k.InstanceID, " \t\n") {
		bad("InstanceID", k.InstanceID, "want at most 249 characters and no spaces")
	}
	if k.StartOffset != "earliest" && k.StartOffset != "latest" {
		bad("StartOffset", k.StartOffset, "want earliest or latest")
	}
	if k.FetchMaxWait < 10*time.Millisecond {
		bad("FetchMaxWait", k.FetchMaxWait, "want at least 10ms")
	}
	if k.SessionTimeout < 6*time.Second || k.SessionTimeout > 30*time.Minute {
		bad("SessionTimeout", k.SessionTimeout, "want between 6s and 30m (the brokers' default bounds)")
	}
	if k.MaxConcurrentFetches < 1 {
		bad("MaxConcurrentFetches", k.MaxConcurrentFetches, "want at least 1")
	}
	if k.FetchMaxBytes < 1 {
		bad("FetchMaxBytes", k.FetchMaxBytes, "want at least 1 byte")
	}
	return errs
}

// kafkaSource consumes a Kafka consumer group with franz-go.
//
// It uses BlockRebalanceOnPoll so that a poll's records are admitted into
// the tracker before any rebalance callback can run: a revoke then sees
// every record of its partitions, and no record of a revoked partition can
// be admitted after it. Admission never blocks (the fetcher only polls when
// the window has room), so the rebalance is held for microseconds.
type kafkaSource struct {
	log  *slog.Logger
	opts []kgo.Opt
	live *liveness
	in   intake      // set by start
	cl   *kgo.Client // created by start
	// waiting holds polled records the window had no room for yet. Owned by
	// the run goroutine; at most one poll's worth.
	waiting []fetched
}

func newKafkaSource(env sourceEnv) (*kafkaSource, error) {
	cfg := env.cfg
	kc := &cfg.Kafka
	k := &kafkaSource{log: env.log, live: newLiveness(kc.SessionTimeout, env.log)}
	// Keep up to a window's worth of message blocks and record memory for
	// reuse (blocks.go, recordpool.go). Record slices: four times the
	// window's records, because more of them than the window holds are in
	// use at once (the client's buffered fetches, decoded before the window
	// has room for them, and capacity classes up to twice a batch); with
	// twice, half the client's requests found none free and allocated
	// (docs/BENCHMARKS.md).
	blocks.keepUpTo(int64(cfg.MaxRecords))
	recordSlices.keepUpTo(4 * int64(cfg.MaxRecords))
	decompBufs.keepUpTo(cfg.MaxBytes)
	start := kgo.NewOffset().AtStart()
	if kc.StartOffset == "latest" {
		start = kgo.NewOffset().AtEnd()
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(kc.Brokers...),
		kgo.ClientID(kc.ClientID),
		kgo.ConsumerGroup(kc.Group),
		kgo.ConsumeResetOffset(start),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.SessionTimeout(kc.SessionTimeout),
		kgo.HeartbeatInterval(heartbeatInterval),
		kgo.RebalanceTimeout(cfg.GroupRebalanceTimeout()),
		kgo.FetchMaxWait(kc.FetchMaxWait),
		kgo.FetchMaxBytes(int32(kc.FetchMaxBytes)),
		kgo.FetchMaxPartitionBytes(int32(min(kc.FetchMaxBytes, 1<<20))),
		kgo.MaxConcurrentFetches(kc.MaxConcurrentFetches),
		kgo.WithHooks(k.live),
		kgo.WithPools(recordPool{}),
		kgo.WithLogger(kafkaLogger(env.log)),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			k.in.Assigned(flatten(m))
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			k.in.Revoked(flatten(m))
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			k.in.Lost(flatten(m))
		}),
	}
	opts = append(opts, kc.opts()...)
	k.opts = append(opts, kc.Opts...)
	return k, nil
}

// fence: a worker waits while the group session may be lost (liveness.go).
func (k *kafkaSource) fence() *liveness { return k.live }

// start creates the client, which starts joining the group.
func (k *kafkaSource) start(_ context.Context, in intake) error {
	k.in = in
	cl, err := kgo.NewClient(k.opts...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	k.cl = cl
	return nil
}

// run polls while the window has room and admits what fits. It asks the
// client for no more records than the window has room for (the rest stay
// buffered in the client, bounded by MaxConcurrentFetches x FetchMaxBytes),
// and keeps what does not fit in bytes until there is room. When the window
// is full it waits for a release instead of polling, so a fully paused
// consumer does not spin.
func (k *kafkaSource) run(ctx context.Context) error {
	for ctx.Err() == nil {
		changed := k.in.Changed()
		k.admitWaiting()
		room := k.in.Room()
		if room == 0 || len(k.waiting) > 0 {
			select {
			case <-changed:
			case <-ctx.Done():
			}
			continue
		}
		fs := k.cl.PollRecords(ctx, room)
		if fs.IsClientClosed() {
			return nil
		}
		k.take(fs)
		k.admitWaiting()
		k.cl.AllowRebalance()
	}
	return nil
}

// admitWaiting admits, in order, as much of the waiting batches as the
// window has room for. Only this goroutine adds to the window, so what fits
// now still fits when added.
func (k *kafkaSource) admitWaiting() {
	for len(k.waiting) > 0 {
		b := &k.waiting[0]
		n := k.in.Admit(b.part, b.msgs, b.bytes, b.hwm)
		if n == 0 {
			return
		}
		if b.msgs = b.msgs[n:]; len(b.msgs) > 0 {
			b.bytes = -1
			return
		}
		k.waiting[0] = fetched{}
		k.waiting = k.waiting[1:]
	}
	k.waiting = nil
}

// take converts a poll's records into messages, queued for admission: at
// most blockMax to a batch, each in a pooled block (blocks.go).
func (k *kafkaSource) take(fs kgo.Fetches) {
	var polled int
	var polledBytes int64
	fs.EachPartition(func(fp kgo.FetchTopicPartition) {
		if fp.Err != nil {
			if !errors.Is(fp.Err, context.Canceled) {
				k.log.Warn("fetch error", "topic", fp.Topic, "partition", fp.Partition, "error", fp.Err)
			}
			return
		}
		n := len(fp.Records)
		if n == 0 {
			return
		}
		part := k.in.Partition(topicPartition{fp.Topic, fp.Partition})
		if part == nil {
			return // not assigned (any more): its owner will fetch it
		}
		for off := 0; off < n; off += blockMax {
			recs := fp.Records[off:min(n, off+blockMax)]
			ptrs := newMessages(len(recs))
			var bytes int64
			for i, r := range recs {
				// The whole Message is written: a reused one still
				// holds its last record's fields.
				m := ptrs[i]
				*m = Message{
					Source: "kafka", Topic: r.Topic, Partition: r.Partition, Offset: r.Offset,
					Key: r.Key, Value: r.Value, Time: r.Timestamp,
					epoch: r.LeaderEpoch, size: int64(len(r.Key) + len(r.Value)), blk: m.blk, rec: r,
				}
				if len(r.Headers) > 0 {
					m.Headers = make([]Header, len(r.Headers))
					for j, h := range r.Headers {
						m.Headers[j] = Header{Key: h.Key, Value: h.Value}
						m.size += int64(len(h.Key) + len(h.Value))
					}
				}
				bytes += m.size
			}
			polledBytes += bytes
			k.waiting = append(k.waiting, fetched{part: part, msgs: ptrs, bytes: bytes, hwm: fp.HighWatermark})
		}
		polled += n
	})
	k.in.Polled(polled, polledBytes)
}

func (k *kafkaSource) commit(ctx context.Context, cps []commitPoint) ([]commitPoint, error) {
	offs := make(map[string]map[int32]kgo.EpochOffset)
	for _, cp := range cps {
		m := offs[cp.part.topic]
		if m == nil {
			m = make(map[int32]kgo.EpochOffset)
			offs[cp.part.topic] = m
		}
		m[cp.part.partition] = kgo.EpochOffset{Epoch: cp.epoch, Offset: cp.offset}
	}
	var reqErr error
	perPart := make(map[topicPartition]error)
	answered := make(map[topicPartition]bool)
	k.cl.CommitOffsetsSync(ctx, offs, func(_ *kgo.Client, req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			reqErr = err
			return
		}
		// From v10 a response names topics by ID only; the request has both.
		names := make(map[[16]byte]string, len(req.Topics))
		for _, t := range req.Topics {
			names[t.TopicID] = t.Topic
		}
		for _, t := range resp.Topics {
			topic := t.Topic
			if topic == "" {
				topic = names[t.TopicID]
			}
			for _, p := range t.Partitions {
				tp := topicPartition{topic, p.Partition}
				answered[tp] = true
				if e := kerr.ErrorForCode(p.ErrorCode); e != nil {
					perPart[tp] = e
				}
			}
		}
	})
	if reqErr != nil {
		return cps, fmt.Errorf("commit: %w", reqErr)
	}
	// A partition the broker said nothing about was not committed: its
	// records keep their places in the window and the next commit tries
	// again. Counting it as committed would release records the broker
	// may not have recorded.
	var failed []commitPoint
	var first error
	for _, cp := range cps {
		e, bad := perPart[cp.part.topicPartition]
		if !answered[cp.part.topicPartition] {
			e, bad = errNoCommitResult, true
		}
		if bad {
			failed = append(failed, cp)
			if first == nil {
				first = fmt.Errorf("commit %s: %w", cp.part, e)
			}
		}
	}
	return failed, first
}

// errNoCommitResult: the commit response had no result for a partition.
var errNoCommitResult = errors.New("no result for the partition in the commit response")

func (k *kafkaSource) pause(parts []*partition) { k.cl.PauseFetchPartitions(toMap(parts)) }

func (k *kafkaSource) resume(parts []*partition) { k.cl.ResumeFetchPartitions(toMap(parts)) }

// close leaves the group and closes the client, within the shutdown
// deadline (ctx's). Leaving waits for a rebalance in progress, which a
// broker can hold until a dead member's session expires, and franz-go's
// Close waits for the leave. Past the deadline close gives up and returns:
// the service then exits, the partitions wait for this member's session to
// expire, and nothing uncommitted is lost (the final commit came before).
func (k *kafkaSource) close(ctx context.Context) {
	defer k.live.timer.Stop()
	k.cl.AllowRebalance()
	closeClient(ctx, k.log, k.cl, func(ctx context.Context) {
		if err := k.cl.LeaveGroupContext(ctx); err != nil {
			k.log.Warn("leaving the group did not finish before the shutdown deadline",
				"reason", "shutdown_timeout", "error", err)
		}
	})
}

// closeClient runs leave, then closes cl, by ctx's deadline. Past it, it
// gives the client closeGrace more to wind down, then returns without it:
// the service exits all the same.
func closeClient(ctx context.Context, log *slog.Logger, cl *kgo.Client, leave func(ctx context.Context)) {
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		leave(ctx)
		cl.Close()
	}()
	select {
	case <-closed:
	case <-ctx.Done():
		select {
		case <-closed:
		case <-time.After(closeGrace):
			log.Warn("the Kafka client did not close before the shutdown deadline; exiting without it",
				"reason", "shutdown_timeout")
		}
	}
}

func toMap(parts []*partition) map[string][]int32 {
	m := make(map[string][]int32)
	for _, p := range parts {
		m[p.topic] = append(m[p.topic], p.partition)
	}
	return m
}

func flatten(m map[string][]int32) []topicPartition {
	var out []topicPartition
	for t, ps := range m {
		for _, p := range ps {
			out = append(out, topicPartition{t, p})
		}
	}
	return out
}

package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/consumer"
)

// checkSource is where a schedule's records live: a Kafka topic (kfake or
// a real broker) or a JetStream stream (an in-process nats-server). Either
// way members reach it through a Proxy the checker can black-hole.
type checkSource interface {
	kind() string
	// source is the plan's source: kafka, kafka-share or jetstream.
	source() string
	proxy() *Proxy
	// prepare makes the topic or stream (and the dead-letter one) for a
	// schedule and returns the SLUICE_* settings members need for it.
	prepare(ctx context.Context, p *Plan, id string) (map[string]string, error)
	// produce writes record i and returns where it landed.
	produce(ctx context.Context, i int, key string, value []byte) (PO, error)
	// deadLettered reads the dead-letter topic or stream back.
	deadLettered(ctx context.Context) ([]Delivery, int, error)
	// unsettled says what the broker still counts as not acknowledged,
	// reading it again for up to wait until that is nothing: "" when
	// nothing, and for the sources where it is not read (a consumer
	// group's committed offsets, a JetStream consumer's ack floor).
	unsettled(ctx context.Context, wait time.Duration) (string, error)
	finish() // after a schedule: close its clients
	close()
}

// ---------------------------------------------------------------------------
// Kafka (kfake or a real broker)

// With share set, the members form a share group (SLUICE_SOURCE=kafka-share,
// ordering none) instead of a consumer group; the kind is the broker's with
// "-share" (kfake-share, kafka-share).
type kafkaCheckSource struct {
	b     Broker
	share bool
	topic string
	cl    *kgo.Client
}

func (s *kafkaCheckSource) kind() string {
	if s.share {
		return s.b.Kind() + "-share"
	}
	return s.b.Kind()
}

func (s *kafkaCheckSource) source() string {
	if s.share {
		return "kafka-share"
	}
	return "kafka"
}

func (s *kafkaCheckSource) proxy() *Proxy { return s.b.Proxy() }
func (s *kafkaCheckSource) close()        {}
func (s *kafkaCheckSource) group() string { return "g-" + s.topic }

func (s *kafkaCheckSource) prepare(ctx context.Context, p *Plan, id string) (map[string]string, error) {
	s.topic = "chk-" + id
	if err := createTopic(ctx, s.b, s.topic, p.Partitions); err != nil {
		return nil, err
	}
	if err := createTopic(ctx, s.b, s.topic+"-dlq", 1); err != nil {
		return nil, err
	}
	cl, err := s.b.Client(kgo.DefaultProduceTopic(s.topic), kgo.ProducerLinger(2*time.Millisecond),
		kgo.RecordDeliveryTimeout(time.Minute), kgo.ProducerBatchMaxBytes(1<<20))
	if err != nil {
		return nil, err
	}
	s.cl = cl
	env := map[string]string{
		"SLUICE_KAFKA_BROKERS":         s.b.Addr(),
		"SLUICE_KAFKA_TOPICS":          s.topic,
		"SLUICE_KAFKA_GROUP":           s.group(),
		"SLUICE_KAFKA_SESSION_TIMEOUT": checkSessionTimeout.String(),
		"SLUICE_KAFKA_FETCH_MAX_WAIT":  "100ms",
		"SLUICE_DLQ_TOPIC":             s.topic + "-dlq",
	}
	if s.share {
		if err := s.prepareShare(ctx); err != nil {
			return nil, err
		}
		// The group's start offset is left to Sluice, which sets
		// share.auto.offset.reset on the group at start, through the
		// proxy: the records produced before the first member joined are
		// lost otherwise, and the lost invariant says so.
		env["SLUICE_SOURCE"] = consumer.SourceKafkaShare
		env["SLUICE_ORDERING"] = "none"
		env["SLUICE_KAFKA_START_OFFSET"] = "earliest"
		delete(env, "SLUICE_KAFKA_SESSION_TIMEOUT") // the broker's (group.share.session.timeout.ms)
	}
	return env, nil
}

// prepareShare gives the schedule's share group an acquisition lock of
// checkShareLock, so that a silent member's records come back within a
// schedule and a slow or held sink needs lock renewals (the default lock,
// 30 s, outlasts every sink span). kfake reads the lock (and the share
// session timeout) from its broker configuration only, and expires locks
// at its sweep; the real broker takes the lock on the group (its template
// allows locks down to a second, and has the 10 s session).
func (s *kafkaCheckSource) prepareShare(ctx context.Context) error {
	lock := strconv.FormatInt(checkShareLock.Milliseconds(), 10)
	if s.b.Fake() != nil {
		return alterConfigs(ctx, s.b, kmsg.ConfigResourceTypeBroker, "",
			"group.share.record.lock.duration.ms", lock,
			"share.record.lock.sweep.interval.ms", "200",
			"group.share.session.timeout.ms", strconv.FormatInt(checkShareSession.Milliseconds(), 10))
	}
	return alterConfigs(ctx, s.b, kmsg.ConfigResourceTypeGroupConfig, s.group(), "share.record.lock.duration.ms", lock)
}

// alterConfigs sets configuration entries of one resource.
func alterConfigs(ctx context.Context, b Broker, typ kmsg.ConfigResourceType, name string, kvs ...string) error {
	cl, err := b.Client()
	if err != nil {
		return err
	}
	defer cl.Close()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = typ, name
	for i := 0; i+1 < len(kvs); i += 2 {
		rc := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		rc.Name, rc.Value = kvs[i], kmsg.StringPtr(kvs[i+1])
		res.Configs = append(res.Configs, rc)
	}
	req.Resources = append(req.Resources, res)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("alter configs of %s %q: %w", typ, name, err)
	}
	for _, r := range resp.Resources {
		if e := kerr.ErrorForCode(r.ErrorCode); e != nil {
			msg := ""
			if r.ErrorMessage != nil {
				msg = ": " + *r.ErrorMessage
			}
			return fmt.Errorf("alter configs of %s %q: %w%s", typ, name, e, msg)
		}
	}
	return nil
}

// unsettled: a share group keeps, per partition, the records it has not
// yet seen acknowledged (accepted, rejected or archived); once every member
// has drained and left, that is none. Read with the share-group offsets
// API: its lag, or (a broker that reports none) the end offset less the
// share-partition start offset.
func (s *kafkaCheckSource) unsettled(ctx context.Context, wait time.Duration) (string, error) {
	if !s.share {
		return "", nil
	}
	cl, err := s.b.Client()
	if err != nil {
		return "", err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(wait)
	for {
		left, err := s.shareLeft(ctx, adm)
		if err == nil && left == "" {
			return "", nil
		}
		if time.Now().After(deadline) {
			return left, err
		}
		if serr := sleep(ctx, 500*time.Millisecond); serr != nil {
			return left, serr
		}
	}
}

func (s *kafkaCheckSource) shareLeft(ctx context.Context, adm *kadm.Client) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, s.topic)
	if err != nil {
		return "", err
	}
	offs, err := adm.DescribeShareGroupOffsets(ctx, s.group())
	if err != nil {
		return "", err
	}
	var left []string
	ends.Each(func(e kadm.ListedOffset) {
		if e.Err != nil || e.Offset == 0 {
			return
		}
		o, ok := offs[s.group()].Offsets[e.Topic][e.Partition]
		switch {
		case !ok || o.Err != nil:
			left = append(left, fmt.Sprintf("partition %d: no share-partition state (end offset %d; %v)", e.Partition, e.Offset, o.Err))
		case o.Lag > 0:
			left = append(left, fmt.Sprintf("partition %d: lag %d (start offset %d, end %d)", e.Partition, o.Lag, o.StartOffset, e.Offset))
		case o.Lag < 0 && o.StartOffset < e.Offset:
			left = append(left, fmt.Sprintf("partition %d: start offset %d, end %d (no lag reported)", e.Partition, o.StartOffset, e.Offset))
		}
	})
	sort.Strings(left)
	return strings.Join(left, "; "), nil
}

func (s *kafkaCheckSource) produce(ctx context.Context, _ int, key string, value []byte) (PO, error) {
	rec := &kgo.Record{Key: []byte(key), Value: value}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	res := s.cl.ProduceSync(ctx, rec)
	if err := res.FirstErr(); err != nil {
		return PO{}, err
	}
	return PO{rec.Partition, rec.Offset}, nil
}

func (s *kafkaCheckSource) deadLettered(ctx context.Context) ([]Delivery, int, error) {
	return readDLQ(ctx, s.b, s.topic+"-dlq", s.topic)
}

func (s *kafkaCheckSource) finish() {
	if s.cl != nil {
		s.cl.Close()
		s.cl = nil
	}
}

// ---------------------------------------------------------------------------
// JetStream on an in-process nats-server

type jsCheckSource struct {
	srv    *server.Server
	px     *Proxy
	nc     *nats.Conn
	js     jetstream.JetStream
	id     string
	stream string
}

// newJSCheckSource starts nats-server with JetStream on 127.0.0.1, storing
// in dir, with a proxy in front that members connect through.
func newJSCheckSource(dir string) (*jsCheckSource, error) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: filepath.Join(dir, "nats"), NoLog: true, NoSigs: true, MaxPayload: 2 << 20})
	if err != nil {
		return nil, err
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("nats-server not ready within 10s")
	}
	px, err := NewProxy("127.0.0.1:0", srv.Addr().String())
	if err != nil {
		srv.Shutdown()
		return nil, err
	}
	nc, err := nats.Connect(srv.ClientURL(), nats.Name("sluice-check"))
	if err != nil {
		px.Close()
		srv.Shutdown()
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		px.Close()
		srv.Shutdown()
		return nil, err
	}
	return &jsCheckSource{srv: srv, px: px, nc: nc, js: js}, nil
}

func (s *jsCheckSource) kind() string   { return "jetstream" }
func (s *jsCheckSource) source() string { return "jetstream" }
func (s *jsCheckSource) proxy() *Proxy  { return s.px }
func (s *jsCheckSource) finish()        {}
func (s *jsCheckSource) unsettled(context.Context, time.Duration) (string, error) {
	return "", nil
}

func (s *jsCheckSource) close() {
	s.nc.Close()
	s.px.Close()
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
}

func (s *jsCheckSource) prepare(ctx context.Context, p *Plan, id string) (map[string]string, error) {
	s.id = strings.ReplaceAll(id, "-", "_")
	s.stream = "CHK_" + s.id
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := s.js.CreateStream(ctx, jetstream.StreamConfig{Name: s.stream, Subjects: []string{"chk" + s.id + ".>"},
		Storage: jetstream.MemoryStorage}); err != nil {
		return nil, fmt.Errorf("create stream: %w", err)
	}
	if _, err := s.js.CreateStream(ctx, jetstream.StreamConfig{Name: s.stream + "_DLQ", Subjects: []string{"chkdlq" + s.id},
		Storage: jetstream.MemoryStorage}); err != nil {
		return nil, fmt.Errorf("create dead-letter stream: %w", err)
	}
	url := "nats://" + s.px.Addr()
	return map[string]string{
		"SLUICE_SOURCE":               "jetstream",
		"SLUICE_NATS_URL":             url,
		"SLUICE_NATS_STREAM":          s.stream,
		"SLUICE_NATS_CONSUMER":        "c" + s.id,
		"SLUICE_NATS_ACK_WAIT":        checkAckWait.String(),
		"SLUICE_NATS_MAX_ACK_PENDING": strconv.Itoa(p.Window * checkMaxMembers),
		"SLUICE_NATS_PULL_MAX_WAIT":   "1s",
		"SLUICE_NATS_INFO_INTERVAL":   "1s",
		"SLUICE_DLQ_SUBJECT":          "chkdlq" + s.id,
		"SLUICE_DLQ_NATS_URL":         url,
	}, nil
}

func (s *jsCheckSource) produce(ctx context.Context, _ int, key string, value []byte) (PO, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ack, err := s.js.Publish(ctx, "chk"+s.id+"."+key, value)
	if err != nil {
		return PO{}, err
	}
	return PO{0, int64(ack.Sequence)}, nil
}

func (s *jsCheckSource) deadLettered(ctx context.Context) ([]Delivery, int, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := s.js.Stream(ctx, s.stream+"_DLQ")
	if err != nil {
		return nil, 0, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, 0, err
	}
	var ds []Delivery
	bad := 0
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			return nil, 0, fmt.Errorf("dead-letter stream seq %d: %w", seq, err)
		}
		off, oerr := strconv.ParseInt(m.Header.Get(consumer.HeaderDLQOffset), 10, 64)
		topic := m.Header.Get(consumer.HeaderDLQTopic)
		if oerr != nil || !strings.HasPrefix(topic, "chk"+s.id+".") || m.Header.Get(consumer.HeaderDLQReason) == "" {
			bad++
			continue
		}
		ds = append(ds, Delivery{Topic: topic, Partition: 0, Offset: off, Value: m.Data})
	}
	return ds, bad, nil
}

// ---------------------------------------------------------------------------
// Black-holing one member: the proxy matches a connection to a process by
// the client port, which /proc maps to the process's sockets.

// pidPorts returns the local TCP ports of pid's sockets.
func pidPorts(pid int) map[int]bool {
	inodes := map[string]bool{}
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	ports := map[int]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 10 || !inodes[fs[9]] {
				continue
			}
			if i := strings.LastIndexByte(fs[1], ':'); i >= 0 {
				if p, err := strconv.ParseInt(fs[1][i+1:], 16, 32); err == nil {
					ports[int(p)] = true
				}
			}
		}
	}
	return ports
}

// holes is the set of members whose broker traffic the proxy holds.
type holes struct {
	mu   sync.Mutex
	pids map[string]int
	// ports caches pidPorts; refreshed when an unknown port is asked about.
	ports map[int]bool
	at    time.Time
}

func (h *holes) set(name string, pid int, on bool) (empty bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pids == nil {
		h.pids = map[string]int{}
	}
	if on {
		h.pids[name] = pid
	} else {
		delete(h.pids, name)
	}
	h.ports, h.at = nil, time.Time{}
	return len(h.pids) == 0
}

func (h *holes) match(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ports[ta.Port] {
		return true
	}
	if time.Since(h.at) < 100*time.Millisecond {
		return false
	}
	h.ports, h.at = map[int]bool{}, time.Now()
	for _, pid := range h.pids {
		for p := range pidPorts(pid) {
			h.ports[p] = true
		}
	}
	return h.ports[ta.Port]
}

package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/consumer"
)

// checkSource is where a schedule's records live: a Kafka topic (kfake or
// a real broker) or a JetStream stream (an in-process nats-server). Either
// way members reach it through a Proxy the checker can black-hole.
type checkSource interface {
	kind() string
	proxy() *Proxy
	// prepare makes the topic or stream (and the dead-letter one) for a
	// schedule and returns the SLUICE_* settings members need for it.
	prepare(ctx context.Context, p *Plan, id string) (map[string]string, error)
	// produce writes record i and returns where it landed.
	produce(ctx context.Context, i int, key string, value []byte) (PO, error)
	// deadLettered reads the dead-letter topic or stream back.
	deadLettered(ctx context.Context) ([]Delivery, int, error)
	finish() // after a schedule: close its clients
	close()
}

// ---------------------------------------------------------------------------
// Kafka (kfake or a real broker)

type kafkaCheckSource struct {
	b     Broker
	topic string
	cl    *kgo.Client
}

func (s *kafkaCheckSource) kind() string  { return s.b.Kind() }
func (s *kafkaCheckSource) proxy() *Proxy { return s.b.Proxy() }
func (s *kafkaCheckSource) close()        {}

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
	return map[string]string{
		"SLUICE_KAFKA_BROKERS":         s.b.Addr(),
		"SLUICE_KAFKA_TOPICS":          s.topic,
		"SLUICE_KAFKA_GROUP":           "g-" + s.topic,
		"SLUICE_KAFKA_SESSION_TIMEOUT": checkSessionTimeout.String(),
		"SLUICE_KAFKA_FETCH_MAX_WAIT":  "100ms",
		"SLUICE_DLQ_TOPIC":             s.topic + "-dlq",
	}, nil
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

func (s *jsCheckSource) kind() string  { return "jetstream" }
func (s *jsCheckSource) proxy() *Proxy { return s.px }
func (s *jsCheckSource) finish()       {}

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

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/testutil"
)

// Broker is the cluster the fault suite runs against: an in-process kfake
// cluster that persists to a data dir, or a real Apache Kafka broker that
// scripts/kafka.sh runs. Either way Sluice reaches it through a Proxy: the
// broker advertises the proxy's address, so a network cut is a Proxy.Cut.
// The harness's own clients (producer, verifier, admin) dial the broker
// directly and never see the faults.
type Broker interface {
	// Kind is "kfake" or "kafka".
	Kind() string
	// Addr is the bootstrap address to give Sluice (the proxy).
	Addr() string
	// Proxy sits between Sluice and the broker (nil for an external broker).
	Proxy() *Proxy
	// Fake is the kfake cluster for fault hooks, nil for a real broker. It
	// changes on Restart.
	Fake() *kfake.Cluster
	// Restart stops the broker and starts it again on the same data and
	// port, if CanRestart.
	Restart(ctx context.Context, down time.Duration) error
	CanRestart() bool
	// Client returns a client for the harness, bypassing the proxy.
	Client(opts ...kgo.Opt) (*kgo.Client, error)
	// Close stops the broker and the proxy.
	Close()
}

// bypass returns a dialer that sends connections for the proxy's address
// straight to the broker.
func bypass(proxyAddr, brokerAddr string) kgo.Opt {
	var d net.Dialer
	return kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
		if host == proxyAddr {
			host = brokerAddr
		}
		return d.DialContext(ctx, network, host)
	})
}

// ---------------------------------------------------------------------------
// kfake

type fakeBroker struct {
	dir   string
	port  int
	proxy *Proxy

	mu sync.Mutex
	fc *kfake.Cluster
}

// advertised is a listener that reports another address: kfake puts its
// listener's address into metadata, and that must be the proxy's.
type advertised struct {
	net.Listener
	addr net.Addr
}

func (a advertised) Addr() net.Addr { return a.addr }

// NewFake starts a one-broker kfake cluster persisting to dir, on a fixed
// port (so it can restart in place), behind a proxy.
func NewFake(dir string) (Broker, error) {
	port, err := testutil.FreePort()
	if err != nil {
		return nil, err
	}
	proxy, err := NewProxy("127.0.0.1:0", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return nil, err
	}
	b := &fakeBroker{dir: dir, port: port, proxy: proxy}
	if err := b.start(); err != nil {
		proxy.Close()
		return nil, err
	}
	return b, nil
}

func (b *fakeBroker) start() error {
	paddr := b.proxy.ln.Addr()
	fc, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.Ports(b.port),
		kfake.DataDir(b.dir),
		kfake.ListenFn(func(network, address string) (net.Listener, error) {
			ln, err := net.Listen(network, address)
			if err != nil {
				return nil, err
			}
			return advertised{ln, paddr}, nil
		}),
		kfake.AllowAutoTopicCreation(),
	)
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.fc = fc
	b.mu.Unlock()
	return nil
}

func (b *fakeBroker) Kind() string     { return "kfake" }
func (b *fakeBroker) CanRestart() bool { return true }
func (b *fakeBroker) Addr() string     { return b.proxy.Addr() }
func (b *fakeBroker) Proxy() *Proxy    { return b.proxy }

func (b *fakeBroker) Fake() *kfake.Cluster {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.fc
}

func (b *fakeBroker) Restart(ctx context.Context, down time.Duration) error {
	b.Fake().Close()
	select {
	case <-time.After(down):
	case <-ctx.Done():
		return ctx.Err()
	}
	// The port can take a moment to be free again.
	var err error
	for i := 0; i < 50; i++ {
		if err = b.start(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("kfake restart: %w", err)
}

func (b *fakeBroker) Client(opts ...kgo.Opt) (*kgo.Client, error) {
	direct := fmt.Sprintf("127.0.0.1:%d", b.port)
	return kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(direct), bypass(b.proxy.Addr(), direct)}, opts...)...)
}

func (b *fakeBroker) Close() {
	b.Fake().Close()
	b.proxy.Close()
}

// ---------------------------------------------------------------------------
// A real broker, run by scripts/kafka.sh in a run dir of its own

type realBroker struct {
	script string
	env    []string
	direct string
	proxy  *Proxy
	logf   func(string, ...any)
}

// RealConfig says where the suite's own real broker lives.
type RealConfig struct {
	Script string // path to scripts/kafka.sh
	RunDir string // its run dir (wiped at start)
	Port   int    // broker port (the controller takes Port+1)
	// ProxyPort is the fixed port of the proxy the broker advertises.
	ProxyPort int
	Logf      func(string, ...any)
}

// NewReal starts a fresh single-node Apache Kafka broker with
// scripts/kafka.sh that advertises a proxy in front of it. It returns
// ErrNoJava when java or mvn is missing (exit code 3 of the script).
func NewReal(ctx context.Context, cfg RealConfig) (Broker, error) {
	proxyAddr := fmt.Sprintf("127.0.0.1:%d", cfg.ProxyPort)
	direct := fmt.Sprintf("127.0.0.1:%d", cfg.Port)
	proxy, err := NewProxy(proxyAddr, direct)
	if err != nil {
		return nil, fmt.Errorf("proxy on %s: %w", proxyAddr, err)
	}
	b := &realBroker{
		script: cfg.Script, direct: direct, proxy: proxy, logf: cfg.Logf,
		env: append(os.Environ(),
			"SLUICEDEV_KAFKA_RUN_DIR="+cfg.RunDir,
			"SLUICEDEV_KAFKA_PORT="+strconv.Itoa(cfg.Port),
			// Sluice only ever learns the proxy's address.
			"SLUICEDEV_KAFKA_EXTRA_PROPS=advertised.listeners=PLAINTEXT://"+proxyAddr),
	}
	if _, err := b.run(ctx, "start", "--fresh"); err != nil {
		proxy.Close()
		return nil, err
	}
	return b, nil
}

// ErrNoJava says the real broker cannot run here.
var ErrNoJava = fmt.Errorf("java or mvn not found: the real broker cannot run here")

func (b *realBroker) run(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.script, args...)
	cmd.Env = b.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	if b.logf != nil {
		b.logf("kafka.sh %s: %s (%s)", strings.Join(args, " "), time.Since(start).Round(100*time.Millisecond),
			strings.TrimSpace(lastLine(errb.String())))
	}
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 3 {
		return "", ErrNoJava
	}
	if err != nil {
		return "", fmt.Errorf("kafka.sh %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func (b *realBroker) Kind() string         { return "kafka" }
func (b *realBroker) CanRestart() bool     { return true }
func (b *realBroker) Addr() string         { return b.proxy.Addr() }
func (b *realBroker) Proxy() *Proxy        { return b.proxy }
func (b *realBroker) Fake() *kfake.Cluster { return nil }
func (b *realBroker) Close()               { b.run(context.Background(), "stop"); b.proxy.Close() }
func (b *realBroker) Client(opts ...kgo.Opt) (*kgo.Client, error) {
	return kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.direct), bypass(b.proxy.Addr(), b.direct)}, opts...)...)
}

func (b *realBroker) Restart(ctx context.Context, down time.Duration) error {
	if _, err := b.run(ctx, "stop"); err != nil {
		return err
	}
	select {
	case <-time.After(down):
	case <-ctx.Done():
		return ctx.Err()
	}
	_, err := b.run(ctx, "start")
	return err
}

// ---------------------------------------------------------------------------
// An external broker: one the suite did not start (SLUICEDEV_TEST_KAFKA_BROKERS).
// No proxy, no restart: only the scenarios that kill and add Sluice processes.

type externalBroker struct{ brokers []string }

// NewExternal uses a running cluster as it is.
func NewExternal(brokers []string) Broker { return &externalBroker{brokers: brokers} }

func (b *externalBroker) Kind() string         { return "kafka" }
func (b *externalBroker) Addr() string         { return strings.Join(b.brokers, ",") }
func (b *externalBroker) Proxy() *Proxy        { return nil }
func (b *externalBroker) Fake() *kfake.Cluster { return nil }
func (b *externalBroker) CanRestart() bool     { return false }
func (b *externalBroker) Close()               {}
func (b *externalBroker) Restart(context.Context, time.Duration) error {
	return fmt.Errorf("an external broker cannot be restarted by the suite")
}
func (b *externalBroker) Client(opts ...kgo.Opt) (*kgo.Client, error) {
	return kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.brokers...)}, opts...)...)
}

// ---------------------------------------------------------------------------
// helpers shared by all

// createTopic creates topic with the given partitions (replication 1).
func createTopic(ctx context.Context, b Broker, topic string, partitions int32) error {
	cl, err := b.Client()
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := adm.CreateTopics(ctx, partitions, 1, nil, topic)
	if err != nil {
		return err
	}
	for _, r := range res.Sorted() {
		if r.Err != nil {
			return fmt.Errorf("create topic %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}

// committed returns the group's committed offsets for topic.
func committed(ctx context.Context, b Broker, group, topic string) (map[int32]int64, error) {
	cl, err := b.Client()
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	offs, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil {
			out[o.Partition] = o.At
		}
	})
	return out, nil
}

// repoRoot finds the module root from the working directory upwards.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "scripts", "kafka.sh")); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no repository root (go.mod and scripts/kafka.sh) above the working directory")
		}
		dir = parent
	}
}

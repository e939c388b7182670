package consumer_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/consumer"
	"github.com/sluicehq/sluice/internal/kafkatest"
)

// The member process: this test binary run again with these variables set
// (see TestStallHelperProcess).
const (
	envMember   = "SLUICEDEV_STALL_MEMBER"
	envBrokers  = "SLUICEDEV_STALL_BROKERS"
	envTopic    = "SLUICEDEV_STALL_TOPIC"
	envInstance = "SLUICEDEV_STALL_INSTANCE_ID"
	envSession  = "SLUICEDEV_STALL_SESSION_TIMEOUT"
)

// TestStallHelperProcess is not a test: it is the group member that
// TestStaticMembershipStall starts in a process of its own, so that it can
// die by SIGKILL as a crashed pod does. It prints "delivered" at each
// delivery and runs until killed.
func TestStallHelperProcess(t *testing.T) {
	if os.Getenv(envMember) != "1" {
		return // run by the go tool: nothing to do
	}
	session, err := time.ParseDuration(os.Getenv(envSession))
	if err != nil {
		t.Fatal(err)
	}
	topic := os.Getenv(envTopic)
	cfg := baseConfig(strings.Split(os.Getenv(envBrokers), ","), topic, "g-"+topic)
	cfg.Kafka.SessionTimeout = session
	cfg.Kafka.InstanceID = os.Getenv(envInstance)
	var mu sync.Mutex
	sink := consumer.SinkFunc(func(context.Context, *consumer.Message) error {
		mu.Lock()
		fmt.Println("delivered")
		mu.Unlock()
		return nil
	})
	c, err := consumer.New(cfg, sink, consumer.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Run(context.Background()) // until SIGKILL
}

// member is a running member process.
type member struct {
	cmd       *exec.Cmd
	started   time.Time
	delivered chan time.Time // the first delivery
	done      chan struct{}  // its stdout is read to the end
}

func startMember(t *testing.T, brokers []string, topic, instance string, session time.Duration) *member {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestStallHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), envMember+"=1", envBrokers+"="+strings.Join(brokers, ","),
		envTopic+"="+topic, envInstance+"="+instance, envSession+"="+session.String())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	m := &member{cmd: cmd, delivered: make(chan time.Time, 1), done: make(chan struct{})}
	m.started = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(m.done)
		sc := bufio.NewScanner(out)
		first := true
		for sc.Scan() {
			if first && sc.Text() == "delivered" {
				first = false
				m.delivered <- time.Now()
			}
		}
	}()
	t.Cleanup(m.kill)
	return m
}

// kill sends SIGKILL and waits for the process; it may be called again.
func (m *member) kill() {
	_ = m.cmd.Process.Kill()
	<-m.done
	_ = m.cmd.Wait()
}

// firstDelivery is how long after its start the member delivered its
// first record.
func (m *member) firstDelivery(t *testing.T, timeout time.Duration) time.Duration {
	t.Helper()
	select {
	case at := <-m.delivered:
		return at.Sub(m.started)
	case <-time.After(timeout):
		t.Fatalf("no delivery %v after the member started", timeout)
		return 0
	}
}

// TestStaticMembershipStall: a member is killed (SIGKILL) and started again
// at once, while records keep coming. Without an instance id the new
// process joins as a new member and nothing is delivered until the dead
// member is dropped (its session expires, or it misses the rebalance the
// join began); with one it takes the dead member's place and
// delivers within seconds. The figures (session timeout 6 s here, the
// least a broker accepts; SLUICEDEV_STALL_SESSION_TIMEOUT for another) are
// logged; docs/KAFKA.md has them for the real broker at the default 45 s.
func TestStaticMembershipStall(t *testing.T) {
	session := stallSessionTimeout(t)
	for _, tc := range []struct {
		name     string
		instance string
	}{{"dynamic", ""}, {"static", "sluice-0"}} {
		t.Run(tc.name, func(t *testing.T) {
			cl, topics := kafkatest.New(t, 4, "stall-"+tc.name)
			topic := topics[0]
			stopProducing := produceSteadily(t, cl.Brokers, topic)
			defer stopProducing()

			first := startMember(t, cl.Brokers, topic, tc.instance, session)
			cold := first.firstDelivery(t, 2*time.Minute)
			first.kill()
			again := startMember(t, cl.Brokers, topic, tc.instance, session)
			stall := again.firstDelivery(t, 3*session+time.Minute)
			t.Logf("%s membership, session timeout %v: first start delivered after %v; after SIGKILL and an immediate restart, after %v",
				tc.name, session, cold.Round(10*time.Millisecond), stall.Round(10*time.Millisecond))
			// The coordinator drops the dead member when its session
			// expires or, once the new member's join has begun a
			// rebalance, when it has not rejoined within the rebalance
			// timeout it sent (22 s by default): whichever comes first.
			def := consumer.Config{}
			_ = def.Validate()
			wait := min(session, def.GroupRebalanceTimeout())
			switch {
			case tc.instance == "" && stall < wait*3/4:
				t.Errorf("a dynamic member restarted delivered after %v, before the dead member could be dropped (%v)", stall, wait)
			case tc.instance != "" && stall >= session/2:
				t.Errorf("a static member restarted delivered after %v: not much sooner than the session timeout %v", stall, session)
			}
		})
	}
}

// produceSteadily writes a record to topic every 5 ms until stopped.
func produceSteadily(t *testing.T, brokers []string, topic string) (stop func()) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				cl.Produce(ctx, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i%64), Value: []byte("v")}, nil)
			}
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
			cl.Close()
		})
	}
	t.Cleanup(stop)
	return stop
}

// partitions is a sink that records when each partition was first
// delivered.
type partitions struct {
	mu    sync.Mutex
	first map[int32]time.Time
}

func (p *partitions) Deliver(_ context.Context, m *consumer.Message) error {
	p.mu.Lock()
	if _, ok := p.first[m.Partition]; !ok {
		p.first[m.Partition] = time.Now()
	}
	p.mu.Unlock()
	return nil
}

func (p *partitions) all(n int) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var last time.Time
	for _, at := range p.first {
		if at.After(last) {
			last = at
		}
	}
	return last, len(p.first) == n
}

// TestStaticMembershipCostOnStop is the other side of the trade: a member
// that stops for good (scale-in, a pod replaced under a new name). A
// dynamic member leaves the group as it stops, so the survivor takes over
// its partitions at the next heartbeat; a static member does not leave,
// and its partitions wait until its session expires.
func TestStaticMembershipCostOnStop(t *testing.T) {
	session := stallSessionTimeout(t)
	for _, tc := range []struct {
		name   string
		static bool
	}{{"dynamic", false}, {"static", true}} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 4
			cl, topics := kafkatest.New(t, n, "leave-"+tc.name)
			topic := topics[0]
			stopProducing := produceSteadily(t, cl.Brokers, topic)
			defer stopProducing()
			start := func(id string) (*partitions, func()) {
				cfg := baseConfig(cl.Brokers, topic, "g-"+topic)
				cfg.Kafka.SessionTimeout = session
				if tc.static {
					cfg.Kafka.InstanceID = id
				}
				sink := &partitions{first: map[int32]time.Time{}}
				c, err := consumer.New(cfg, sink, consumer.WithLogger(quietLogger()))
				if err != nil {
					t.Fatal(err)
				}
				return sink, run(t, c)
			}
			a, stopA := start("a")
			waitUntil(t, time.Minute, "a consuming every partition", func() bool { _, ok := a.all(n); return ok })
			b, _ := start("b")
			waitUntil(t, time.Minute, "b sharing the partitions", func() bool {
				b.mu.Lock()
				defer b.mu.Unlock()
				return len(b.first) > 0 && len(b.first) < n
			})
			stopA()
			stopped := time.Now()
			var took time.Duration
			waitUntil(t, 3*session+time.Minute, "b consuming every partition", func() bool {
				at, ok := b.all(n)
				took = at.Sub(stopped)
				return ok
			})
			t.Logf("%s membership, session timeout %v: the survivor had every partition %v after the other member stopped",
				tc.name, session, took.Round(10*time.Millisecond))
			switch {
			case !tc.static && took >= session/2:
				t.Errorf("a dynamic member left, yet its partitions moved only after %v", took)
			case tc.static && took < session*3/4:
				t.Errorf("a static member stopped and its partitions moved after %v, before its session (%v) expired", took, session)
			}
		})
	}
}

// stallSessionTimeout is the session timeout of the static-membership
// tests: 6 s, the least a broker accepts, or SLUICEDEV_STALL_SESSION_TIMEOUT.
func stallSessionTimeout(t *testing.T) time.Duration {
	t.Helper()
	s := os.Getenv("SLUICEDEV_STALL_SESSION_TIMEOUT")
	if s == "" {
		return 6 * time.Second
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

package consumer_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/consumer"
)

func coreConfig(url string, subjects ...string) consumer.Config {
	return consumer.Config{
		Source:  consumer.SourceNATS,
		Workers: 4,
		NATS:    consumer.NATSConfig{URL: url, Subjects: subjects, Queue: "q"},
	}
}

func TestCoreNATSDeliversInOrderPerSubject(t *testing.T) {
	const n = 2000
	ns := startNATS(t)
	nc, _ := ns.client()
	sink := newSeqLedger()
	cfg := coreConfig(ns.URL, "core.>")
	c, err := consumer.New(cfg, sink, consumer.WithLogger(natsLog()))
	if err != nil {
		t.Fatal(err)
	}
	stop := runNATS(t, c)
	waitReady(t, c)
	subjects := []string{"core.a", "core.b", "core.c"}
	for i := range n {
		if err := nc.Publish(subjects[i%3], []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	sink.waitDistinct(t, n, time.Minute)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	checkNoNATSGoroutines(t)
	sink.checkExactlyOnce(t, n) // Offset is the receive counter, from 1
	for subj, seqs := range sink.bySubj {
		for i := 1; i < len(seqs); i++ {
			if seqs[i] <= seqs[i-1] {
				t.Fatalf("subject %s out of order", subj)
			}
		}
	}
	if w := c.Window(); w.Records() != 0 {
		t.Errorf("window holds %d records after the stop", w.Records())
	}
}

// A sink far slower than the publisher: core NATS cannot pause, so the
// client drops past its pending limits. The drops are counted and visible,
// memory stays bounded, and the process keeps consuming.
func TestCoreNATSSlowConsumerDropsAreCountedAndItKeepsRunning(t *testing.T) {
	const burst = 5000
	ns := startNATS(t)
	nc, _ := ns.client()
	release := make(chan struct{})
	sink := newSeqLedger()
	sink.deliver = func(ctx context.Context, m *consumer.Message) error {
		select {
		case <-release: // blocked until the burst is over: the window fills
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	}
	cfg := coreConfig(ns.URL, "burst.>")
	cfg.Workers = 1
	cfg.MaxRecords = 100
	cfg.NATS.PendingMsgs = 200
	cfg.NATS.PendingBytes = 1 << 20
	reg := prometheus.NewRegistry()
	c, err := consumer.New(cfg, sink, consumer.WithLogger(natsLog()), consumer.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	stop := runNATS(t, c)
	waitReady(t, c)
	payload := make([]byte, 100)
	for range burst {
		if err := nc.Publish("burst.x", payload); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// Everything published is either held (window + client buffer) or
	// dropped and counted.
	eventually(t, "every message held or counted as dropped", 30*time.Second, func() bool {
		dropped := metric(t, reg, "sluice_nats_dropped_messages_total")
		held := float64(c.Window().Records()) + metric(t, reg, "sluice_nats_client_pending_messages")
		return dropped+held >= burst
	})
	select {
	case <-c.Done():
		t.Fatal("Run returned during the overload")
	default:
	}
	if ev := metric(t, reg, "sluice_nats_slow_consumer_events_total"); ev < 1 {
		t.Errorf("slow consumer events %v, want at least 1", ev)
	}
	if w := c.Window(); w.PeakRecords() > w.MaxRecords() {
		t.Errorf("window peaked at %d, budget %d", w.PeakRecords(), w.MaxRecords())
	}
	close(release)
	// It keeps running: once the backlog it held is through, a message
	// published after the burst gets through too. (Published earlier, it
	// could be dropped like the burst: the client's buffer is still full.)
	eventually(t, "the held backlog drains", 30*time.Second, func() bool {
		return c.Window().Records() == 0 && metric(t, reg, "sluice_nats_client_pending_messages") == 0
	})
	held := sink.distinct()
	if err := nc.Publish("burst.after", []byte("after")); err != nil {
		t.Fatal(err)
	}
	sink.waitFor(t, "the message after the burst", 30*time.Second, func() bool { return len(sink.bySubj["burst.after"]) > 0 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	dropped := metric(t, reg, "sluice_nats_dropped_messages_total")
	delivered := sink.distinct() - 1
	t.Logf("burst %d: delivered %d (held through the overload: %d), dropped %v", burst, delivered, held, dropped)
	if float64(delivered)+dropped != burst {
		t.Errorf("delivered %d + dropped %v != published %d", delivered, dropped, burst)
	}
}

func waitReady(t *testing.T, c *consumer.Consumer) {
	t.Helper()
	eventually(t, "the consumer is ready", 10*time.Second, func() bool {
		select {
		case <-c.Done():
			t.Fatal("Run returned before it was ready")
		default:
		}
		return c.Ready()
	})
}

// eventually polls cond, for state that has no event to wait on (metrics,
// readiness), until it holds or timeout passes.
func eventually(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		<-tick.C
	}
}

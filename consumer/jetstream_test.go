package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/consumer"
)

// seqLedger is a sink that records every delivery by stream sequence.
type seqLedger struct {
	mu       sync.Mutex
	seen     map[int64]int   // stream sequence -> deliveries
	attempts map[int64][]int // stream sequence -> Message.Attempt of each delivery
	bySubj   map[string][]int64
	notify   chan struct{}
	deliver  func(ctx context.Context, m *consumer.Message) error // optional, before recording
}

func newSeqLedger() *seqLedger {
	return &seqLedger{seen: map[int64]int{}, attempts: map[int64][]int{}, bySubj: map[string][]int64{},
		notify: make(chan struct{}, 1)}
}

func (l *seqLedger) Deliver(ctx context.Context, m *consumer.Message) error {
	if l.deliver != nil {
		if err := l.deliver(ctx, m); err != nil {
			return err
		}
	}
	l.mu.Lock()
	l.seen[m.Offset]++
	l.attempts[m.Offset] = append(l.attempts[m.Offset], m.Attempt)
	l.bySubj[m.Topic] = append(l.bySubj[m.Topic], m.Offset)
	l.mu.Unlock()
	select {
	case l.notify <- struct{}{}:
	default:
	}
	return nil
}

func (l *seqLedger) distinct() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.seen)
}

// waitFor blocks until cond (checked under the lock) holds, or fails the
// test after timeout.
func (l *seqLedger) waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		l.mu.Lock()
		ok := cond()
		l.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-l.notify:
		case <-deadline:
			l.mu.Lock()
			n := len(l.seen)
			l.mu.Unlock()
			t.Fatalf("timed out waiting for %s (%d distinct messages delivered)", what, n)
		}
	}
}

func (l *seqLedger) waitDistinct(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	l.waitFor(t, fmt.Sprintf("%d distinct messages", n), timeout, func() bool { return len(l.seen) >= n })
}

// checkExactlyOnce fails unless sequences 1..n were each delivered once.
func (l *seqLedger) checkExactlyOnce(t *testing.T, n int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	missing, dups := 0, 0
	for seq := int64(1); seq <= int64(n); seq++ {
		switch c := l.seen[seq]; {
		case c == 0:
			missing++
		case c > 1:
			dups += c - 1
		}
	}
	if missing > 0 || dups > 0 || len(l.seen) != n {
		t.Errorf("%d missing, %d duplicates, %d distinct of %d", missing, dups, len(l.seen), n)
	}
}

// publish publishes n messages round-robin over subjects and waits for the
// stream to store them.
func publish(t *testing.T, js jetstream.JetStream, subjects []string, n, size int, hdr func(i int) nats.Header) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range n {
		data := make([]byte, size)
		copy(data, strconv.Itoa(i))
		msg := &nats.Msg{Subject: subjects[i%len(subjects)], Data: data}
		if hdr != nil {
			msg.Header = hdr(i)
		}
		if _, err := js.PublishMsgAsync(msg, jetstream.WithStallWait(30*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatal("publishing timed out")
	}
}

func jsConfig(url, stream string) consumer.Config {
	return consumer.Config{
		Source:  consumer.SourceJetStream,
		Workers: 4,
		NATS: consumer.NATSConfig{
			URL: url, Stream: stream, PullMaxWait: time.Second, InfoInterval: 100 * time.Millisecond,
			ReconnectWait: 20 * time.Millisecond, ReconnectMaxWait: 200 * time.Millisecond,
		},
	}
}

func createStream(t *testing.T, js jetstream.JetStream, name string, subjects ...string) {
	t.Helper()
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: name, Subjects: subjects}); err != nil {
		t.Fatal(err)
	}
}

func consumerInfo(t *testing.T, js jetstream.JetStream, stream, name string) *jetstream.ConsumerInfo {
	t.Helper()
	cons, err := js.Consumer(context.Background(), stream, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func TestJetStreamCleanRunDeliversEachMessageOnce(t *testing.T) {
	for _, ord := range []consumer.Ordering{consumer.OrderKey, consumer.OrderPartition, consumer.OrderNone} {
		t.Run(string(ord), func(t *testing.T) {
			const n = 5000
			ns := startNATS(t)
			_, js := ns.client()
			createStream(t, js, "CLEAN", "clean.>")
			subjects := []string{"clean.a", "clean.b", "clean.c", "clean.d", "clean.e"}
			publish(t, js, subjects, n, 100, nil)

			sink := newSeqLedger()
			cfg := jsConfig(ns.URL, "CLEAN")
			cfg.Ordering = ord
			cfg.MaxRecords = 1000 // several pulls
			reg := prometheus.NewRegistry()
			c, err := consumer.New(cfg, sink, consumer.WithLogger(natsLog()), consumer.WithRegisterer(reg))
			if err != nil {
				t.Fatal(err)
			}
			stop := runNATS(t, c)
			sink.waitDistinct(t, n, time.Minute)
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			sink.checkExactlyOnce(t, n)
			if ord != consumer.OrderNone {
				for subj, seqs := range sink.bySubj {
					for i := 1; i < len(seqs); i++ {
						if seqs[i] <= seqs[i-1] {
							t.Fatalf("subject %s delivered out of order: %v", subj, seqs[i-1:i+1])
						}
					}
				}
			}
			for seq, as := range sink.attempts {
				if len(as) != 1 || as[0] != 1 {
					t.Fatalf("seq %d delivered with attempts %v, want [1]", seq, as)
				}
			}
			info := consumerInfo(t, js, "CLEAN", "sluice")
			if info.NumAckPending != 0 || info.NumPending != 0 || info.AckFloor.Stream != n || info.NumRedelivered != 0 {
				t.Errorf("after a clean stop: ack pending %d, pending %d, ack floor %d, redelivered %d",
					info.NumAckPending, info.NumPending, info.AckFloor.Stream, info.NumRedelivered)
			}
			if w := c.Window(); w.Records() != 0 || w.Bytes() != 0 || w.PeakRecords() > w.MaxRecords() {
				t.Errorf("window: %d records, %d bytes after the stop; peak %d of %d", w.Records(), w.Bytes(),
					w.PeakRecords(), w.MaxRecords())
			}
			if acks := metric(t, reg, "sluice_nats_acks_total"); acks != n {
				t.Errorf("sluice_nats_acks_total = %v, want %d", acks, n)
			}
		})
	}
}

// A slow sink with a short AckWait. The sink is a gate the test opens step
// by step, so that each step is a state the test sets up, not a race with
// the scheduler:
//
//  1. the sink holds everything: pulls into the empty window ask for
//     exactly the window, it fills to its budget, and no pull follows;
//  2. the full window is held for 2.5 AckWaits: pulling pauses, and
//     InProgress keeps every held message alive;
//  3. 40 deliveries are let through: pulls resume and ask, all together,
//     for no more than the 40 places freed: the room, not a window each;
//  4. everything is let through: each message is delivered once, on its
//     first delivery, and the server sent nothing twice.
func TestJetStreamSlowSinkShrinksPullsWithoutRedelivery(t *testing.T) {
	const n, window, freed = 300, 64, 40
	ns := startNATS(t)
	_, js := ns.client()
	createStream(t, js, "SLOW", "slow.>")
	publish(t, js, []string{"slow.a", "slow.b", "slow.c"}, n, 100, nil)

	sink := newSeqLedger()
	g := newGate(sink, 0)
	cfg := jsConfig(ns.URL, "SLOW")
	cfg.Workers = 2
	cfg.MaxRecords = window
	cfg.Ordering = consumer.OrderNone
	cfg.BatchMax = 1 // acks are sent per batch: one message a batch, so each delivery frees its place at once
	cfg.NATS.AckWait = 2 * time.Second
	// Every pull here is answered at once from the stored stream; a long
	// wait only keeps a loaded machine from ending one half-served.
	cfg.NATS.PullMaxWait = 10 * time.Second
	reg := prometheus.NewRegistry()
	c, err := consumer.New(cfg, g, consumer.WithLogger(natsLog()), consumer.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	stop := runNATS(t, c)
	t.Cleanup(g.open) // runs before the stop: a failed test does not wait out the shutdown timeout
	server := func() *jetstream.ConsumerInfo { return consumerInfo(t, js, "SLOW", "sluice") }
	const pullRecords = "sluice_nats_pull_records"

	// 1. Filled, and nothing more asked for.
	waitUntil(t, time.Minute, "the window to fill", func() bool { return c.Window().Records() == window })
	g.waitUntil(t, "both workers to wait in the sink", time.Minute, func(_, held int) bool { return held == cfg.Workers })
	filled := time.Now()
	pulls, asked := histogram(t, reg, pullRecords)
	if asked != window {
		t.Errorf("%d pulls into the empty window asked for %v records, want the window: %d", pulls, asked, window)
	}
	if d := server().Delivered.Consumer; d != window {
		t.Errorf("the server delivered %d messages into a window of %d", d, window)
	}

	// 2. Held: the time is the condition, as the server's AckWait timer
	// runs on it.
	waitUntil(t, time.Minute, "the full window held for 2.5 AckWaits, pulls paused and the lag reported", func() bool {
		return time.Since(filled) >= cfg.NATS.AckWait*5/2 && c.Stats().Pauses > 0 && c.Stats().Lag > n/2
	})
	if p, _ := histogram(t, reg, pullRecords); p != pulls {
		t.Errorf("%d pulls sent while the window was full", p-pulls)
	}
	if ip := counterWith(t, reg, "sluice_nats_acks_total", "in_progress"); ip < window {
		t.Errorf("%v InProgress sent for %d messages held 2.5 AckWaits", ip, window)
	}
	if info := server(); info.Delivered.Consumer != window || info.NumAckPending != window {
		t.Errorf("after the hold the server delivered %d, %d pending ack; want %d, %d",
			info.Delivered.Consumer, info.NumAckPending, window, window)
	}

	// 3. Room for 40: pulls ask for that much, in one pull or a few.
	g.setLimit(freed)
	g.waitHeld(t, time.Minute)
	waitUntil(t, time.Minute, "pulls to resume", func() bool {
		p, _ := histogram(t, reg, pullRecords)
		return p > pulls
	})
	if p, a := histogram(t, reg, pullRecords); a-asked > freed {
		t.Errorf("after %d places were freed, %d pulls asked for %v records: more than the room",
			freed, p-pulls, a-asked)
	}

	// 4. Everything.
	g.open()
	sink.waitDistinct(t, n, 2*time.Minute)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	sink.checkExactlyOnce(t, n)
	for seq, as := range sink.attempts {
		if as[0] != 1 {
			t.Errorf("seq %d came with attempt %d: the server redelivered it", seq, as[0])
		}
	}
	if acks := counterWith(t, reg, "sluice_nats_acks_total", "ack"); acks != n {
		t.Errorf("%v acks sent for %d messages", acks, n)
	}
	if w := c.Window(); w.PeakRecords() > w.MaxRecords() {
		t.Errorf("window peaked at %d records, budget %d", w.PeakRecords(), w.MaxRecords())
	}
	info := server()
	if info.Delivered.Consumer != n || info.NumRedelivered != 0 || info.NumAckPending != 0 || info.AckFloor.Stream != n {
		t.Errorf("server: delivered %d of %d, redelivered %d, ack pending %d, ack floor %d",
			info.Delivered.Consumer, n, info.NumRedelivered, info.NumAckPending, info.AckFloor.Stream)
	}
}

// The server restarts (same store, same port) in the middle of the stream:
// the consumer reconnects, and every message is delivered. A gate holds
// the deliveries after the first third until the server is back, so the
// restart always lands mid-stream, with deliveries in flight.
func TestJetStreamServerRestartLosesNothing(t *testing.T) {
	const n, first = 3000, 1000
	ns := startNATS(t)
	nc, js := ns.client()
	createStream(t, js, "RST", "rst.>")
	publish(t, js, []string{"rst.a", "rst.b"}, n, 100, nil)
	nc.Close()

	sink := newSeqLedger()
	g := newGate(sink, first)
	cfg := jsConfig(ns.URL, "RST")
	cfg.MaxRecords = 200
	cfg.NATS.AckWait = 2 * time.Second
	c, err := consumer.New(cfg, g, consumer.WithLogger(natsLog()))
	if err != nil {
		t.Fatal(err)
	}
	stop := runNATS(t, c)
	t.Cleanup(g.open) // runs before the stop
	g.waitHeld(t, time.Minute)
	ns.restart()
	g.open()
	sink.waitDistinct(t, n, 2*time.Minute)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	sink.mu.Lock()
	dups := 0
	for seq := int64(1); seq <= n; seq++ {
		if sink.seen[seq] == 0 {
			t.Errorf("seq %d lost", seq)
		}
		dups += max(0, sink.seen[seq]-1)
	}
	sink.mu.Unlock()
	if dups > cfg.MaxRecords {
		t.Errorf("%d duplicates, more than one window (%d)", dups, cfg.MaxRecords)
	}
	t.Logf("%d duplicates after the restart (at most one window: %d)", dups, cfg.MaxRecords)
}

// A message the sink always rejects is retried RetryMaxAttempts times in
// all, dead-lettered with headers saying why, and termed; the others flow.
func TestJetStreamPoisonMessageIsDeadLetteredAndTermed(t *testing.T) {
	for _, ord := range []consumer.Ordering{consumer.OrderNone, consumer.OrderKey} {
		t.Run(string(ord), func(t *testing.T) {
			const n, poison = 200, 42
			ns := startNATS(t)
			nc, js := ns.client()
			createStream(t, js, "POISON", "poison.>")
			terminated, err := nc.SubscribeSync("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.POISON.sluice")
			if err != nil {
				t.Fatal(err)
			}
			publish(t, js, []string{"poison.a", "poison.b"}, n, 50, nil)

			sink := newSeqLedger()
			var tried sync.Map
			sink.deliver = func(_ context.Context, m *consumer.Message) error {
				if m.Offset == poison {
					tried.Store(m.Attempt, true)
					return errors.New("cannot parse")
				}
				return nil
			}
			dlq := make(chan *consumer.Message, 10)
			cfg := jsConfig(ns.URL, "POISON")
			cfg.Ordering = ord
			cfg.RetryMaxAttempts = 3
			cfg.RetryInitialBackoff = 20 * time.Millisecond
			cfg.RetryMaxBackoff = 50 * time.Millisecond
			c, err := consumer.New(cfg, sink, consumer.WithLogger(natsLog()),
				consumer.WithDeadLetter(consumer.SinkFunc(func(_ context.Context, m *consumer.Message) error {
					dlq <- m
					return nil
				})))
			if err != nil {
				t.Fatal(err)
			}
			stop := runNATS(t, c)
			var dead *consumer.Message
			select {
			case dead = <-dlq:
			case <-time.After(time.Minute):
				t.Fatal("the poison message was not dead-lettered")
			}
			sink.waitDistinct(t, n-1, time.Minute)
			if _, err := terminated.NextMsg(10 * time.Second); err != nil {
				t.Fatalf("no MSG_TERMINATED advisory: the message was not termed: %v", err)
			}
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			hdr := map[string]string{}
			for _, h := range dead.Headers {
				hdr[h.Key] = string(h.Value)
			}
			if dead.Offset != poison || hdr[consumer.HeaderDLQAttempts] != "3" ||
				hdr[consumer.HeaderDLQReason] != "max_attempts" || hdr[consumer.HeaderDLQSource] != consumer.SourceJetStream {
				t.Errorf("dead letter: offset %d, headers %v", dead.Offset, hdr)
			}
			for a := 1; a <= 3; a++ {
				if _, ok := tried.Load(a); !ok {
					t.Errorf("attempt %d never made", a)
				}
			}
			if _, ok := tried.Load(4); ok {
				t.Error("a fourth attempt was made")
			}
			select {
			case m := <-dlq:
				t.Errorf("dead-lettered twice: offset %d", m.Offset)
			default:
			}
			info := consumerInfo(t, js, "POISON", "sluice")
			if info.NumAckPending != 0 || info.NumPending != 0 {
				t.Errorf("server: ack pending %d, pending %d", info.NumAckPending, info.NumPending)
			}
			sink.mu.Lock()
			defer sink.mu.Unlock()
			for seq := int64(1); seq <= n; seq++ {
				want := 1
				if seq == poison {
					want = 0 // the sink never accepted it
				}
				if sink.seen[seq] != want {
					t.Errorf("seq %d delivered %d times, want %d", seq, sink.seen[seq], want)
				}
			}
		})
	}
}

// The ordering key can come from a header instead of the subject.
func TestJetStreamKeyHeaderOrdersByHeader(t *testing.T) {
	const n = 600
	ns := startNATS(t)
	_, js := ns.client()
	createStream(t, js, "KEYS", "keys.>")
	publish(t, js, []string{"keys.x"}, n, 20, func(i int) nats.Header {
		return nats.Header{"Tenant": []string{fmt.Sprintf("t%d", i%7)}}
	})
	var mu sync.Mutex
	byKey := map[string][]int64{}
	sink := newSeqLedger()
	sink.deliver = func(_ context.Context, m *consumer.Message) error {
		mu.Lock()
		byKey[string(m.Key)] = append(byKey[string(m.Key)], m.Offset)
		mu.Unlock()
		return nil
	}
	cfg := jsConfig(ns.URL, "KEYS")
	cfg.NATS.KeyHeader = "Tenant"
	c, err := consumer.New(cfg, sink, consumer.WithLogger(natsLog()))
	if err != nil {
		t.Fatal(err)
	}
	stop := runNATS(t, c)
	sink.waitDistinct(t, n, time.Minute)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if len(byKey) != 7 {
		t.Fatalf("keys %d, want 7 (from the Tenant header)", len(byKey))
	}
	for k, seqs := range byKey {
		for i := 1; i < len(seqs); i++ {
			if seqs[i] <= seqs[i-1] {
				t.Fatalf("key %s out of order", k)
			}
		}
	}
}

// Binding needs the consumer to exist; a missing stream says so.
func TestJetStreamBindAndMissingStream(t *testing.T) {
	ns := startNATS(t)
	_, js := ns.client()
	createStream(t, js, "BIND", "bind.>")
	noop := consumer.SinkFunc(func(context.Context, *consumer.Message) error { return nil })
	for _, tc := range []struct {
		name, stream, want string
		bind               bool
	}{
		{"missing stream", "NOPE", `stream "NOPE" not found`, false},
		{"bind without consumer", "BIND", `consumer "sluice" not found`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := jsConfig(ns.URL, tc.stream)
			cfg.NATS.Bind = tc.bind
			c, err := consumer.New(cfg, noop, consumer.WithLogger(natsLog()))
			if err != nil {
				t.Fatal(err)
			}
			err = c.Run(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run = %v, want %q", err, tc.want)
			}
		})
	}
	// An existing consumer is bound as it is: its AckWait is used.
	if _, err := js.CreateOrUpdateConsumer(context.Background(), "BIND", jetstream.ConsumerConfig{
		Durable: "pre", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 7 * time.Second}); err != nil {
		t.Fatal(err)
	}
	publish(t, js, []string{"bind.a"}, 10, 10, nil)
	sink := newSeqLedger()
	cfg := jsConfig(ns.URL, "BIND")
	cfg.NATS.Bind, cfg.NATS.Consumer = true, "pre"
	c, err := consumer.New(cfg, sink, consumer.WithLogger(natsLog()))
	if err != nil {
		t.Fatal(err)
	}
	stop := runNATS(t, c)
	sink.waitDistinct(t, 10, 30*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if info := consumerInfo(t, js, "BIND", "pre"); info.Config.AckWait != 7*time.Second {
		t.Errorf("bound consumer changed: ack wait %s", info.Config.AckWait)
	}
}

// A clean stop in the middle of the stream (SIGTERM) then a restart on the
// same durable: nothing lost, nothing delivered twice, and nothing of the
// first consumer outlives its Run. A gate lets a third of the messages
// through and holds the next deliveries until the stop has begun, so the
// stop always lands mid-stream.
func TestJetStreamStopAndRestartDeliversExactlyOnce(t *testing.T) {
	const n, first = 3000, 1000
	ns := startNATS(t)
	nc, js := ns.client()
	createStream(t, js, "STOP", "stop.>")
	publish(t, js, []string{"stop.a", "stop.b", "stop.c"}, n, 100, nil)
	nc.Close()

	sink := newSeqLedger()
	cfg := jsConfig(ns.URL, "STOP")
	cfg.MaxRecords = 500

	g := newGate(sink, first)
	reg1 := prometheus.NewRegistry()
	c1, err := consumer.New(cfg, g, consumer.WithLogger(natsLog()), consumer.WithRegisterer(reg1))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var runErr error
	go func() { defer close(done); runErr = c1.Run(ctx) }()
	t.Cleanup(func() {
		g.open()
		cancel()
		<-done
	})
	g.waitHeld(t, time.Minute)
	cancel() // what SIGTERM does
	g.open() // the drain delivers what was admitted
	select {
	case <-done:
		if runErr != nil {
			t.Fatalf("first run: %v", runErr)
		}
	case <-time.After(time.Minute):
		t.Fatal("the first run did not stop within a minute")
	}
	if got := sink.distinct(); got <= first || got >= first+2*cfg.MaxRecords {
		t.Fatalf("the first run delivered %d of %d: want more than the %d let through before the stop "+
			"(it drains what it admitted) and less than two windows more", got, n, first)
	}
	if w := c1.Window(); w.Records() != 0 {
		t.Errorf("first run: window holds %d after the stop", w.Records())
	}
	checkNoNATSGoroutines(t)
	// What the server sent the stopped consumer is acked or handed back
	// (docs/NATS.md: an unfinished pull is Nak'd at once, so that the
	// successor gets it now, not after AckWait). Nak'd messages still
	// count as pending ack until they are delivered again.
	handedBack := counterWith(t, reg1, "sluice_nats_acks_total", "abandoned") + counterWith(t, reg1, "sluice_nats_acks_total", "nak")
	// The server takes the last acks in a moment; AckWait is 30 s.
	check, js2 := ns.client()
	var pending int
	deadline := time.Now().Add(5 * time.Second)
	for {
		pending = consumerInfo(t, js2, "STOP", "sluice").NumAckPending
		if float64(pending) <= handedBack || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // server state: no event to wait on
	}
	check.Close() // before the next goroutine check
	if float64(pending) > handedBack {
		t.Errorf("5 s after the clean stop the server holds %d messages pending ack, %v handed back: the rest waits out AckWait (30 s)",
			pending, handedBack)
	}

	c2, err := consumer.New(cfg, sink, consumer.WithLogger(natsLog()))
	if err != nil {
		t.Fatal(err)
	}
	stop := runNATS(t, c2)
	sink.waitDistinct(t, n, time.Minute)
	if err := stop(); err != nil {
		t.Fatalf("second run: Run: %v", err)
	}
	if w := c2.Window(); w.Records() != 0 {
		t.Errorf("second run: window holds %d after the stop", w.Records())
	}
	checkNoNATSGoroutines(t)
	sink.checkExactlyOnce(t, n)
}

// checkNoNATSGoroutines fails if a goroutine of a NATS source or of a
// nats.go client is still running (the test's own clients must be closed).
func checkNoNATSGoroutines(t *testing.T) {
	t.Helper()
	var leaked string
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		leaked = ""
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "consumer.(*jsSource)") || strings.Contains(g, "consumer.(*coreSource)") ||
				strings.Contains(g, "nats-io/nats%2ego.") || strings.Contains(g, "nats-io/nats.go/jetstream.") {
				leaked = g
				break
			}
		}
		if leaked == "" {
			return
		}
		time.Sleep(10 * time.Millisecond) // goroutines finish after their owner returned: poll
	}
	t.Fatalf("a goroutine outlived its consumer:\n%s", leaked)
}

// With DoubleAck every ack waits for the server's confirmation: when Run
// has returned, the server has recorded them all.
func TestJetStreamDoubleAck(t *testing.T) {
	const n = 500
	ns := startNATS(t)
	_, js := ns.client()
	createStream(t, js, "DOUBLE", "double.>")
	publish(t, js, []string{"double.a", "double.b"}, n, 50, nil)
	sink := newSeqLedger()
	cfg := jsConfig(ns.URL, "DOUBLE")
	cfg.NATS.DoubleAck = true
	c, err := consumer.New(cfg, sink, consumer.WithLogger(natsLog()))
	if err != nil {
		t.Fatal(err)
	}
	stop := runNATS(t, c)
	sink.waitDistinct(t, n, time.Minute)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	sink.checkExactlyOnce(t, n)
	if info := consumerInfo(t, js, "DOUBLE", "sluice"); info.AckFloor.Stream != n || info.NumAckPending != 0 {
		t.Errorf("ack floor %d, ack pending %d", info.AckFloor.Stream, info.NumAckPending)
	}
}

// Two replicas share one durable consumer: each message goes to one of
// them, and each reports its share of the consumer's lag, so that the sum
// over pods (what the pod scale signal adds up) is the lag, not twice it.
func TestJetStreamReplicasShareTheWorkAndTheLag(t *testing.T) {
	const n, first = 6000, 300
	ns := startNATS(t)
	_, js := ns.client()
	createStream(t, js, "SHARE", "share.>")
	publish(t, js, []string{"share.a", "share.b", "share.c", "share.d"}, n, 100, nil)

	// Each replica delivers through its own gate: 300 each, then both are
	// held, so the backlog (and the lag to share) is still there while the
	// test looks, however fast or slow the machine.
	sink := newSeqLedger()
	cfg := jsConfig(ns.URL, "SHARE")
	cfg.MaxRecords = 200
	cfg.Workers = 2
	cfg.NATS.MaxAckPending = 400 // two windows
	var cs []*consumer.Consumer
	var regs []*prometheus.Registry
	var gates []*gate
	for range 2 {
		reg := prometheus.NewRegistry()
		g := newGate(sink, first)
		c, err := consumer.New(cfg, g, consumer.WithLogger(natsLog()), consumer.WithRegisterer(reg))
		if err != nil {
			t.Fatal(err)
		}
		cs, regs, gates = append(cs, c), append(regs, reg), append(gates, g)
	}
	stopA, stopB := runNATS(t, cs[0]), runNATS(t, cs[1])
	for _, g := range gates {
		t.Cleanup(g.open) // runs before the stops
		g.waitHeld(t, time.Minute)
	}
	eventually(t, "both replicas report a share of the lag, summing to about the lag", time.Minute, func() bool {
		a, b := cs[0].Stats().Lag, cs[1].Stats().Lag
		total := metric(t, regs[0], "sluice_nats_consumer_pending_records") +
			metric(t, regs[0], "sluice_nats_consumer_ack_pending_records")
		sum := float64(a + b)
		return a > 0 && b > 0 && total > 1000 && sum > 0.5*total && sum < 1.5*total
	})
	for _, g := range gates {
		g.open()
	}
	sink.waitDistinct(t, n, 2*time.Minute)
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
	sink.checkExactlyOnce(t, n)
	var acked float64
	for i, reg := range regs {
		acks := counterWith(t, reg, "sluice_nats_acks_total", "ack")
		if acks < first {
			t.Errorf("replica %d acked %v messages, though it delivered %d", i, acks, first)
		}
		acked += acks
	}
	if acked != n {
		t.Errorf("the replicas acked %v messages in all, want %d", acked, n)
	}
}

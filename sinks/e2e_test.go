package sinks_test

// End-to-end tests: the real consumer, an embedded Kafka cluster, the HTTP
// sink against a local server that goes down or rejects records, the
// circuit breaker and the dead-letter topic.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/consumer"
	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/testutil"
	"github.com/sluicehq/sluice/sinks"
)

const childEnv = "SLUICEDEV_TEST_KFAKE_CHILD"

// TestMain lets the outage test run its Kafka cluster in a child process
// (this test binary, re-executed), so that the RSS it samples is Sluice's
// own and not the broker's growing log.
func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(kfakeChild(spec))
	}
	// Every goroutine has an owner that waits for it, the tests' own
	// included: a goroutine left when the tests end fails the package.
	goleak.VerifyTestMain(m)
}

// kfakeChild runs a kfake cluster with the topic named in spec
// ("topic:partitions"), prints its address, then serves commands from
// stdin: "produce N SIZE" produces N records of SIZE bytes (keys k0..k63)
// and answers "produced N". It exits when stdin closes.
func kfakeChild(spec string) int {
	topic, parts, _ := strings.Cut(spec, ":")
	np, _ := strconv.Atoi(parts)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(np), topic))
	if err != nil {
		fmt.Fprintln(os.Stderr, "kfake:", err)
		return 1
	}
	defer c.Close()
	fmt.Println(strings.Join(c.ListenAddrs(), ","))
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var n, size int
		if _, err := fmt.Sscanf(sc.Text(), "produce %d %d", &n, &size); err != nil {
			fmt.Fprintln(os.Stderr, "bad command:", sc.Text())
			return 1
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic(topic),
			kgo.ProducerLinger(5*time.Millisecond))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		value := make([]byte, size)
		var failed atomic.Int64
		for i := range n {
			v := append(fmt.Appendf(nil, "%08d:", i), value[:max(0, size-9)]...)
			cl.Produce(context.Background(), &kgo.Record{Key: fmt.Appendf(nil, "k%d", i%64), Value: v},
				func(_ *kgo.Record, err error) {
					if err != nil {
						failed.Add(1)
					}
				})
		}
		err = cl.Flush(context.Background())
		cl.Close()
		if err != nil || failed.Load() > 0 {
			fmt.Fprintln(os.Stderr, "produce failed:", err, failed.Load())
			return 1
		}
		fmt.Printf("produced %d\n", n)
	}
	return 0
}

// childCluster is a kfake cluster in a child process.
type childCluster struct {
	brokers []string
	in      io.WriteCloser
	out     *bufio.Scanner
}

func startChildCluster(t *testing.T, topic string, partitions int) *childCluster {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s:%d", childEnv, topic, partitions))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		_ = cmd.Wait()
	})
	out := bufio.NewScanner(outPipe)
	if !out.Scan() {
		t.Fatal("kfake child printed no address")
	}
	return &childCluster{brokers: strings.Split(out.Text(), ","), in: in, out: out}
}

// produce asks the child to produce n records; it returns a channel that
// yields once they are all acknowledged.
func (c *childCluster) produce(t *testing.T, n, size int) <-chan error {
	done := make(chan error, 1)
	if _, err := fmt.Fprintf(c.in, "produce %d %d\n", n, size); err != nil {
		t.Fatal(err)
	}
	go func() {
		if !c.out.Scan() || c.out.Text() != fmt.Sprintf("produced %d", n) {
			done <- fmt.Errorf("kfake child: %q %v", c.out.Text(), c.out.Err())
			return
		}
		done <- nil
	}()
	return done
}

// switchableServer is the receiving end of the HTTP sink: a
// testutil.SwitchableServer (it can go down, its port refusing
// connections, and come back on the same address) that records the
// (partition, offset) of every record it accepts.
type switchableServer struct {
	*testutil.SwitchableServer
	mu   sync.Mutex
	seen map[[2]int64]int
	got  chan struct{} // signalled after each accepted request
}

func newSwitchableServer(t *testing.T) *switchableServer {
	s := &switchableServer{seen: map[[2]int64]int{}, got: make(chan struct{}, 1)}
	srv, err := testutil.NewSwitchableServer(http.HandlerFunc(s.serve))
	if err != nil {
		t.Fatal(err)
	}
	s.SwitchableServer = srv
	t.Cleanup(srv.Close)
	return s
}

func (s *switchableServer) serve(w http.ResponseWriter, r *http.Request) {
	var lines []sinks.Line
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, &lines); err != nil {
		var l sinks.Line
		if err := json.Unmarshal(body, &l); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		lines = []sinks.Line{l}
	}
	s.mu.Lock()
	for _, l := range lines {
		s.seen[[2]int64{int64(l.Partition), l.Offset}]++
	}
	s.mu.Unlock()
	select {
	case s.got <- struct{}{}:
	default:
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *switchableServer) counts() (distinct, total int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.seen {
		total += n
	}
	return len(s.seen), total
}

// waitProgress blocks until n distinct records have arrived. It fails the
// test when none arrives for stall, or when limit has passed.
func (s *switchableServer) waitProgress(t *testing.T, n int, stall, limit time.Duration) {
	t.Helper()
	deadline := time.After(limit)
	idle := time.NewTimer(stall)
	defer idle.Stop()
	last, _ := s.counts()
	for {
		d, _ := s.counts()
		if d >= n {
			return
		}
		if d > last {
			last = d
			idle.Reset(stall)
		}
		select {
		case <-s.got:
		case <-idle.C:
			t.Fatalf("stalled: no new record for %v, %d of %d arrived", stall, d, n)
		case <-deadline:
			t.Fatalf("timed out after %v: %d of %d records arrived", limit, d, n)
		}
	}
}

// rssBytes reads this process's resident set size.
func rssBytes(t *testing.T) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	t.Skip("no VmRSS in /proc/self/status")
	return 0
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestHTTPSinkOutageBackpressure: the HTTP sink is down for 60 s (set
// SLUICEDEV_TEST_OUTAGE to shorten it) while 100k records arrive. The breaker
// opens, the window fills to its budget and no further, fetching pauses,
// RSS stays flat; when the sink is back every record arrives.
func TestHTTPSinkOutageBackpressure(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPED in -short: a 60 s sink outage")
	}
	outage := 60 * time.Second
	if v := os.Getenv("SLUICEDEV_TEST_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("SLUICEDEV_TEST_OUTAGE=%q: %v", v, err)
		}
		outage = d
	}
	const (
		warm       = 5_000
		records    = 100_000
		size       = 1024
		partitions = 6
	)
	// Always the embedded broker, in a child process: the test produces
	// there and measures this process's RSS.
	topic := fmt.Sprintf("outage-%d", time.Now().UnixNano())
	child := startChildCluster(t, topic, partitions)
	brokers := child.brokers
	produce := func(n int) <-chan error { return child.produce(t, n, size) }

	srv := newSwitchableServer(t)
	httpSink, err := sinks.NewHTTP(sinks.HTTPConfig{URL: srv.URL() + "/hook", Timeout: 2 * time.Second,
		BatchMax: 100})
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	counted := &countingSink{next: httpSink, calls: &calls}
	breaker, err := sinks.NewBreaker(counted, "http", sinks.BreakerConfig{Failures: 5, OpenTimeout: 2 * time.Second},
		sinks.WithLogger(quietLog()))
	if err != nil {
		t.Fatal(err)
	}
	const maxRecords, maxBytes = 5_000, 8 << 20
	cfg := consumer.Config{
		MaxRecords: maxRecords, MaxBytes: maxBytes, Workers: 8,
		CommitInterval: 200 * time.Millisecond, RetryInitialBackoff: 50 * time.Millisecond, RetryMaxBackoff: time.Second,
		Kafka: consumer.KafkaConfig{Brokers: brokers, Topics: []string{topic}, Group: "g-" + topic,
			FetchMaxWait: 100 * time.Millisecond},
	}
	c, err := consumer.New(cfg, breaker, consumer.WithLogger(quietLog()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	// Warm up: the pipeline has been full once, so the heap has its size.
	start := time.Now()
	if err := <-produce(warm); err != nil {
		t.Fatal(err)
	}
	srv.waitProgress(t, warm, 30*time.Second, 5*time.Minute)
	// The server records a request before its answer reaches the sink:
	// going down in between closes the connection under it, the sink sees
	// a failure (net/http replays the request, which the Idempotency-Key
	// makes replayable, and reports the replay's refused dial) and the
	// records come again after the outage. So the outage starts only once
	// the sink has answered every warm-up record: nothing is in flight.
	answered := func() uint64 { return c.Stats().Completed }
	waitFor(t, 30*time.Second, func() bool { return answered() >= warm },
		func() string { return fmt.Sprintf("the sink answered %d of %d warm-up records", answered(), warm) })
	t.Logf("warm-up: %d records in %v", warm, time.Since(start).Round(time.Millisecond))

	// The outage.
	failedAtDown := counted.failed.Load()
	srv.Down()
	downAt := time.Now()
	produced := produce(records)
	callsAtDown := calls.Load()
	var rss []int64
	var maxWinRecs, maxWinBytes int64
	paused := false
	tick := time.NewTicker(250 * time.Millisecond)
	for time.Since(downAt) < outage {
		<-tick.C
		rss = append(rss, rssBytes(t))
		w := c.Window()
		maxWinRecs, maxWinBytes = max(maxWinRecs, w.Records()), max(maxWinBytes, w.Bytes())
		paused = paused || c.FlowState().Paused > 0
	}
	tick.Stop()
	select {
	case err := <-produced:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the producer did not finish within the outage + 1 min")
	}
	outageCalls := calls.Load() - callsAtDown
	st := c.Stats()

	// Back up: everything arrives. Failures are counted from just before
	// Up: a request the server took may fail right after it.
	failedAtUp := counted.failed.Load()
	if err := srv.Up(); err != nil {
		t.Fatal(err)
	}
	upAt := time.Now()
	// The claim is that everything arrives, not how fast a loaded machine
	// gets there: the bound is on a stall (nothing new for 30 s), with a
	// cap well inside the package's timeout.
	srv.waitProgress(t, warm+records, 30*time.Second, 10*time.Minute)
	recovery := time.Since(upAt)
	distinct, total := srv.counts()

	// RSS: the first sample after 10 s (the window has filled and the
	// breaker opened) against the largest sample after it.
	base := rss[min(len(rss)-1, int(10*time.Second/(250*time.Millisecond)))]
	peak := base
	for _, r := range rss[min(len(rss)-1, int(10*time.Second/(250*time.Millisecond))):] {
		peak = max(peak, r)
	}
	t.Logf("outage %v, %d records arrived meanwhile; RSS at 10 s %.1f MiB, peak after %.1f MiB (+%.1f MiB), min %.1f MiB",
		outage, records, mib(base), mib(peak), mib(peak-base), mib(minOf(rss)))
	t.Logf("window peak %d records / %.1f MiB of %d / %.1f MiB; pauses %d; sink calls during the outage %d (breaker)",
		maxWinRecs, mib(maxWinBytes), maxRecords, mib(maxBytes), st.Pauses, outageCalls)
	t.Logf("after recovery: %d distinct records in %v (%d deliveries, %d duplicates)",
		distinct, recovery.Round(time.Millisecond), total, total-distinct)

	if distinct != warm+records {
		t.Errorf("%d distinct records arrived, want %d", distinct, warm+records)
	}
	// A record can come twice only from a request that failed although
	// the server took it (a timeout on a loaded machine). The sink went
	// down with nothing in flight and a refused request delivers nothing,
	// so the failures during the outage are not such requests; those of
	// the warm-up and of the recovery may be.
	if dups, retried := total-distinct, failedAtDown+counted.failed.Load()-failedAtUp; int64(dups) > retried {
		t.Errorf("%d duplicates, but only %d records were in requests that failed while the sink was up", dups, retried)
	}
	if maxWinRecs > maxRecords || maxWinBytes > maxBytes {
		t.Errorf("window went over budget: %d records, %d bytes", maxWinRecs, maxWinBytes)
	}
	if !paused || st.Pauses == 0 {
		t.Error("fetching never paused during the outage")
	}
	if peak-base > 32<<20 {
		t.Errorf("RSS grew by %.1f MiB during the outage, want flat (< 32 MiB); %d records of %d B arrived",
			mib(peak-base), records, size)
	}
	// Open for all but a probe every 2 s: a handful of calls, not one per record per retry.
	if limit := int64(outage/(2*time.Second))*2 + 100; outageCalls > limit {
		t.Errorf("%d sink calls during the outage, want at most %d: the breaker should fail fast", outageCalls, limit)
	}
}

// countingSink counts the calls that reach the sink (one per message or
// batch), and the records of calls that failed: only those can arrive
// twice (a request the server took whose answer the client gave up on).
type countingSink struct {
	next   *sinks.HTTP
	calls  *atomic.Int64
	failed atomic.Int64
}

func (s *countingSink) Deliver(ctx context.Context, m *consumer.Message) error {
	s.calls.Add(1)
	err := s.next.Deliver(ctx, m)
	if err != nil {
		s.failed.Add(1)
	}
	return err
}

func (s *countingSink) DeliverBatch(ctx context.Context, msgs []*consumer.Message) (int, error) {
	s.calls.Add(1)
	n, err := s.next.DeliverBatch(ctx, msgs)
	if err != nil {
		s.failed.Add(int64(len(msgs) - n))
	}
	return n, err
}

// waitFor polls cond until it holds; it fails the test with what() when
// limit passes first.
func waitFor(t *testing.T, limit time.Duration, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", limit, what())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func minOf(xs []int64) int64 {
	m := xs[0]
	for _, x := range xs {
		m = min(m, x)
	}
	return m
}

// TestPoisonRecordGoesToTheDeadLetterTopic: a record the HTTP endpoint
// always rejects with 400 is dead-lettered at once (a permanent error), one
// it always fails with 500 after the configured attempts; meanwhile the rest
// of their partition keeps flowing, and every offset is committed.
func TestPoisonRecordGoesToTheDeadLetterTopic(t *testing.T) {
	const n = 2000
	cl, topics := kafkatest.New(t, 2, "poison", "dlq")
	topic, dlqTopic := topics[0], topics[1]
	poisonAt := map[int]string{500: "poison-400", 1300: "poison-500"}
	cl.Produce(topic, n, func(i int) ([]byte, []byte) {
		if p, ok := poisonAt[i]; ok {
			return []byte(p), []byte(p) // a key of its own: nothing queues behind it
		}
		return fmt.Appendf(nil, "k%d", i%40), fmt.Appendf(nil, "v%d", i)
	})

	var mu sync.Mutex
	seen := map[string]bool{}
	attempts := map[string]int{}
	flowed := make(chan struct{}) // closed once every good record arrived
	var closeFlowed sync.Once
	var flowedBeforeVerdict atomic.Bool
	w := newWebhook(t)
	w.setStatus(func(r *http.Request, lines []sinks.Line) (int, http.Header) {
		v := *lines[0].Value
		mu.Lock()
		attempts[v]++
		mu.Unlock()
		switch v {
		case "poison-400":
			// Hold the poison until the rest of the topic has arrived: that
			// only happens if its lane is the only one that waits.
			select {
			case <-flowed:
				flowedBeforeVerdict.Store(true)
			case <-time.After(30 * time.Second):
			}
			return http.StatusBadRequest, nil
		case "poison-500":
			return http.StatusInternalServerError, nil
		}
		mu.Lock()
		for _, l := range lines {
			seen[*l.Value] = true
		}
		if len(seen) == n-len(poisonAt) {
			closeFlowed.Do(func() { close(flowed) })
		}
		mu.Unlock()
		return 0, nil
	})
	httpSink, err := sinks.NewHTTP(sinks.HTTPConfig{URL: w.URL, Timeout: 45 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	breaker, err := sinks.NewBreaker(httpSink, "http", sinks.BreakerConfig{}, sinks.WithLogger(quietLog()))
	if err != nil {
		t.Fatal(err)
	}
	dlq, err := sinks.NewKafka(sinks.KafkaConfig{Brokers: cl.Brokers, Topic: dlqTopic})
	if err != nil {
		t.Fatal(err)
	}
	defer dlq.Close(context.Background())
	cfg := consumer.Config{
		Workers: 4, CommitInterval: 100 * time.Millisecond,
		RetryMaxAttempts: 3, RetryInitialBackoff: 20 * time.Millisecond, RetryMaxBackoff: 100 * time.Millisecond,
		Kafka: consumer.KafkaConfig{Brokers: cl.Brokers, Topics: []string{topic}, Group: "g-" + topic,
			FetchMaxWait: 100 * time.Millisecond},
	}
	c, err := consumer.New(cfg, breaker, consumer.WithLogger(quietLog()), consumer.WithDeadLetter(dlq))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(ctx) }()

	dead := readKafkaRecords(t, cl.Brokers, dlqTopic, len(poisonAt), time.Minute)
	select {
	case <-flowed:
	case <-time.After(time.Minute):
		t.Fatal("the good records did not all arrive")
	}
	// Everything is committed: the poison did not hold its partition back.
	deadline := time.Now().Add(30 * time.Second)
	ends := cl.EndOffsets(topic)
	for {
		committed := cl.Committed("g-"+topic, topic)
		all := true
		for p, end := range ends {
			all = all && committed[p] == end
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("committed %v, log ends %v", committed, ends)
		}
		time.Sleep(50 * time.Millisecond) // commits happen on the consumer's interval
	}
	cancel()
	if err := <-runErr; err != nil {
		t.Errorf("Run: %v", err)
	}

	if !flowedBeforeVerdict.Load() {
		t.Error("the rest of the topic did not flow while the poison record was being retried")
	}
	want := map[string]struct {
		reason   string
		attempts int
	}{"poison-400": {"permanent", 1}, "poison-500": {"max_attempts", 3}}
	for _, r := range dead {
		h := map[string]string{}
		for _, kv := range r.Headers {
			h[kv.Key] = string(kv.Value)
		}
		w, ok := want[string(r.Value)]
		if !ok {
			t.Errorf("unexpected dead letter %q", r.Value)
			continue
		}
		if string(r.Key) != string(r.Value) {
			t.Errorf("%s: key %q not kept", r.Value, r.Key)
		}
		if h[consumer.HeaderDLQTopic] != topic || h[consumer.HeaderDLQSource] != "kafka" ||
			h[consumer.HeaderDLQReason] != w.reason || h[consumer.HeaderDLQAttempts] != strconv.Itoa(w.attempts) ||
			h[consumer.HeaderDLQPartition] == "" || h[consumer.HeaderDLQOffset] == "" ||
			!strings.Contains(h[consumer.HeaderDLQError], "http") {
			t.Errorf("%s: dead-letter headers %v", r.Value, h)
		}
		mu.Lock()
		if attempts[string(r.Value)] != w.attempts {
			t.Errorf("%s: the endpoint saw %d attempts, want %d", r.Value, attempts[string(r.Value)], w.attempts)
		}
		mu.Unlock()
		// The headers point at the poison record in the source topic.
		part, _ := strconv.Atoi(h[consumer.HeaderDLQPartition])
		off, _ := strconv.ParseInt(h[consumer.HeaderDLQOffset], 10, 64)
		if src := readAt(t, cl.Brokers, topic, int32(part), off); string(src) != string(r.Value) {
			t.Errorf("%s: headers point at %s/%d@%d which holds %q", r.Value, topic, part, off, src)
		}
	}
	if len(dead) != len(poisonAt) {
		t.Errorf("%d dead letters, want %d", len(dead), len(poisonAt))
	}
}

func readKafkaRecords(t *testing.T, brokers []string, topic string, n int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	if len(out) < n {
		t.Fatalf("%s: %d of %d records within %v", topic, len(out), n, timeout)
	}
	return out
}

func readAt(t *testing.T, brokers []string, topic string, partition int32, offset int64) []byte {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		topic: {partition: kgo.NewOffset().At(offset)}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		var v []byte
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if v == nil && r.Offset == offset {
				v = r.Value
			}
		})
		if v != nil {
			return v
		}
	}
	t.Fatalf("no record at %s/%d@%d", topic, partition, offset)
	return nil
}

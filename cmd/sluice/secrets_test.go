package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/testutil"
)

// The secrets fed in. Letters and digits only, so that no encoding (URL,
// JSON, %q) could hide one from the search.
const (
	secretToken     = "BearerTok3nQx71"   // SLUICE_SINK_HTTP_HEADERS
	secretURLPass   = "UrlPassw0rdKk42"   // SLUICE_SINK_HTTP_URL userinfo
	secretURLQuery  = "UrlQueryK3yZz93"   // SLUICE_SINK_HTTP_URL query
	secretNATSPass  = "NatsUrlPassJj58"   // SLUICE_NATS_URL userinfo
	secretNATSQuery = "NatsUrlQueryHh27"  // SLUICE_NATS_URL query
	secretNATSPW    = "NatsPassw0rdGg64"  // SLUICE_NATS_PASSWORD
	secretPGPass    = "PgDsnPassw0rdFf36" // SLUICE_SINK_POSTGRES_DSN
	secretSASL      = "SaslPassw0rdDd15"  // SLUICE_KAFKA_SASL_PASSWORD
)

var allSecrets = []string{secretToken, secretURLPass, secretURLQuery, secretNATSPass, secretNATSQuery, secretNATSPW, secretPGPass, secretSASL}

// leakHunt gathers everything the service printed or wrote, and what it
// was given, to search the one for the other.
type leakHunt struct {
	mu      sync.Mutex
	outputs []string // "<where>\n<text>"
	inputs  []string
}

func (h *leakHunt) input(env ...string) []string {
	h.mu.Lock()
	h.inputs = append(h.inputs, env...)
	h.mu.Unlock()
	return env
}

func (h *leakHunt) output(where, text string) {
	h.mu.Lock()
	h.outputs = append(h.outputs, where+"\n"+text)
	h.mu.Unlock()
}

// runCmd runs the binary to its end (at most a minute) and keeps what it
// printed.
func (h *leakHunt) runCmd(t *testing.T, where string, env []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, sluiceBinary(t), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "SLUICE_HTTP_ADDR=127.0.0.1:0", "SLUICE_ADMIN_ADDR=127.0.0.1:0"}, h.input(env...)...)
	out, _ := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Errorf("%s: still running after a minute", where)
	}
	h.output(where, string(out))
	return string(out)
}

// TestNoSecretInAnyOutput feeds known secrets through every path that could
// print one, running the real binary: `sluice config` and `config --env`
// with good and bad values, start-up errors (a PostgreSQL and a NATS server
// that cannot be reached, NATS and SASL credentials that are refused),
// logs at debug, an HTTP sink that answers 400 with the token and the URL
// in its body, the dead-letter records and their headers, /readyz,
// /metrics and /debug/flow. Then it searches all of it for each secret.
//
// It can fail: it checks that each secret was given to the binary, that
// the sink received the token and the URL's secrets (so the sink's error
// path held them), and that each path produced what it is about (the bad
// variables named, the records dead-lettered, the refusals logged).
func TestNoSecretInAnyOutput(t *testing.T) {
	h := &leakHunt{}
	sinkURL := func(addr string) string {
		return "http://sinkuser:" + secretURLPass + "@" + addr + "/in?api_key=" + secretURLQuery
	}
	natsURL := func(addr string) string {
		return "nats://natsuser:" + secretNATSPass + "@" + addr + "/?token=" + secretNATSQuery
	}
	closed := testutil.FreeAddr(t) // nothing listens there

	// 1. Configuration: good values, then malformed ones, through `config`
	// and through `run` (which refuses them at start-up).
	good := []string{
		"SLUICE_KAFKA_BROKERS=127.0.0.1:9092", "SLUICE_KAFKA_TOPICS=t",
		"SLUICE_SINK=http", "SLUICE_SINK_HTTP_URL=" + sinkURL("127.0.0.1:9"),
		"SLUICE_SINK_HTTP_HEADERS=Authorization:Bearer " + secretToken,
		"SLUICE_NATS_URL=" + natsURL("127.0.0.1:4222"), "SLUICE_NATS_USER=u", "SLUICE_NATS_PASSWORD=" + secretNATSPW,
		"SLUICE_KAFKA_SASL_MECHANISM=plain", "SLUICE_KAFKA_SASL_USERNAME=u", "SLUICE_KAFKA_SASL_PASSWORD=" + secretSASL,
		"SLUICE_LOG_LEVEL=debug",
	}
	h.runCmd(t, "config (good)", good, "config")
	h.runCmd(t, "config --env", good, "config", "--env")
	pgGood := []string{"SLUICE_KAFKA_BROKERS=127.0.0.1:9092", "SLUICE_KAFKA_TOPICS=t", "SLUICE_SINK=postgres",
		"SLUICE_SINK_POSTGRES_DSN=postgres://pguser:" + secretPGPass + "@" + closed + "/db?sslmode=disable"}
	h.runCmd(t, "config (postgres)", pgGood, "config")
	for _, bad := range []struct {
		name string // the variable the error must name ("": not checked before connecting)
		env  []string
	}{
		{"SLUICE_SINK_HTTP_HEADERS", []string{"SLUICE_KAFKA_BROKERS=k:9092", "SLUICE_KAFKA_TOPICS=t", "SLUICE_SINK=http",
			"SLUICE_SINK_HTTP_URL=http://h/", "SLUICE_SINK_HTTP_HEADERS=Authorization Bearer " + secretToken}},
		{"SLUICE_SINK_HTTP_URL", []string{"SLUICE_KAFKA_BROKERS=k:9092", "SLUICE_KAFKA_TOPICS=t", "SLUICE_SINK=http",
			"SLUICE_SINK_HTTP_URL=http://sinkuser:" + secretURLPass + "@h:port/in?api_key=" + secretURLQuery}},
		{"SLUICE_SINK_POSTGRES_DSN", []string{"SLUICE_KAFKA_BROKERS=k:9092", "SLUICE_KAFKA_TOPICS=t", "SLUICE_SINK=postgres",
			"SLUICE_SINK_POSTGRES_DSN=postgres://pguser:" + secretPGPass + "@db:port/x"}},
		{"", []string{"SLUICE_SOURCE=jetstream", "SLUICE_NATS_STREAM=S",
			"SLUICE_NATS_URL=nats://natsuser:" + secretNATSPass + "@h:port/?token=" + secretNATSQuery}},
		{"SLUICE_KAFKA_SASL_MECHANISM", []string{"SLUICE_KAFKA_BROKERS=k:9092", "SLUICE_KAFKA_TOPICS=t",
			"SLUICE_KAFKA_SASL_MECHANISM=scram-sha-999", "SLUICE_KAFKA_SASL_PASSWORD=" + secretSASL}},
		{"SLUICE_KAFKA_SASL_USERNAME", []string{"SLUICE_KAFKA_BROKERS=k:9092", "SLUICE_KAFKA_TOPICS=t",
			"SLUICE_KAFKA_SASL_MECHANISM=plain", "SLUICE_KAFKA_SASL_PASSWORD=" + secretSASL}},
	} {
		for _, cmd := range []string{"config", "run"} {
			out := h.runCmd(t, fmt.Sprintf("%s (bad %s)", cmd, bad.env[len(bad.env)-1][:20]), bad.env, cmd)
			if bad.name != "" && !strings.Contains(out, bad.name) {
				t.Errorf("%s with a bad %s: the error does not name it:\n%s", cmd, bad.name, out)
			}
		}
	}

	// 2. Start-up errors: servers that cannot be reached, credentials that
	// are refused.
	h.runCmd(t, "run (postgres unreachable)", pgGood, "run")
	h.runCmd(t, "run (nats unreachable)", []string{"SLUICE_SOURCE=jetstream", "SLUICE_NATS_STREAM=S",
		"SLUICE_NATS_URL=" + natsURL(closed), "SLUICE_NATS_CONNECT_TIMEOUT=1s", "SLUICE_SINK=noop", "SLUICE_LOG_LEVEL=debug"}, "run")
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoLog: true, NoSigs: true, Username: "sluice", Password: "the-right-one"})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	out := h.runCmd(t, "run (nats password refused)", []string{"SLUICE_SOURCE=jetstream", "SLUICE_NATS_STREAM=S",
		"SLUICE_NATS_URL=" + ns.ClientURL(), "SLUICE_NATS_USER=sluice", "SLUICE_NATS_PASSWORD=" + secretNATSPW,
		"SLUICE_SINK=noop", "SLUICE_LOG_LEVEL=debug"}, "run")
	if !strings.Contains(out, "rejected the credentials") {
		t.Errorf("the refused NATS password was not reported:\n%s", out)
	}

	// 3. SASL refused by the broker, logs at debug, for a few seconds.
	fc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "sasl"),
		kfake.EnableSASL(), kfake.Superuser("PLAIN", "admin", "the-right-one"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fc.Close)
	p := startService(t, h.input("SLUICE_KAFKA_BROKERS="+strings.Join(fc.ListenAddrs(), ","), "SLUICE_KAFKA_TOPICS=sasl",
		"SLUICE_KAFKA_SASL_MECHANISM=plain", "SLUICE_KAFKA_SASL_USERNAME=admin", "SLUICE_KAFKA_SASL_PASSWORD="+secretSASL,
		"SLUICE_SINK=noop", "SLUICE_LOG_LEVEL=debug")...)
	// kfake ends the connection on a refused SASL exchange; franz-go logs
	// the failed authentication at debug ("connection initialization
	// failed" after "beginning sasl authentication").
	saslLogged := waitUntil(10*time.Second, func() bool {
		out := p.stderr.String()
		return strings.Contains(out, `"msg":"beginning sasl authentication"`) && strings.Contains(out, `"msg":"connection initialization failed"`)
	})
	_, readyz := httpDo(http.MethodGet, p.http+"/readyz")
	h.output("/readyz (sasl refused)", readyz)
	stopService(t, p)
	h.output("run (sasl refused) stdout", p.stdout.String())
	h.output("run (sasl refused) stderr", p.stderr.String())
	if !saslLogged {
		t.Errorf("no SASL failure logged within 10 s:\n%s", p.stderr.String())
	}

	// 4. The HTTP sink answers 400 with the token and the URL's secrets in
	// its body: the records are dead-lettered, logged at debug.
	var seenMu sync.Mutex
	var seen []string
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			return // readiness ping
		}
		_, _ = io.Copy(io.Discard, r.Body)
		user, pass, _ := r.BasicAuth()
		echo := fmt.Sprintf("rejected: authorization=%q user=%s password=%s uri=%s", r.Header.Get("Authorization"), user, pass, r.URL.RequestURI())
		seenMu.Lock()
		seen = append(seen, echo)
		seenMu.Unlock()
		http.Error(w, echo, http.StatusBadRequest)
	}))
	defer sink.Close()
	const n = 20
	cl, topics := kafkatest.New(t, 1, "leak", "leak-dlq")
	cl.Produce(topics[0], n, func(i int) ([]byte, []byte) { return []byte("k"), []byte(fmt.Sprint("v", i)) })
	p = startService(t, h.input(
		"SLUICE_KAFKA_BROKERS="+strings.Join(cl.Brokers, ","), "SLUICE_KAFKA_TOPICS="+topics[0], "SLUICE_KAFKA_GROUP=g-"+topics[0],
		"SLUICE_SINK=http", "SLUICE_SINK_HTTP_URL="+sinkURL(strings.TrimPrefix(sink.URL, "http://")),
		"SLUICE_SINK_HTTP_HEADERS=Authorization:Bearer "+secretToken,
		"SLUICE_DLQ_TOPIC="+topics[1], "SLUICE_RETRY_MAX_ATTEMPTS=1", "SLUICE_SINK_BREAKER_FAILURES=0",
		"SLUICE_NATS_URL="+natsURL("127.0.0.1:4222"), // read, unused by the kafka source
		"SLUICE_LOG_LEVEL=debug")...)
	dlqFull := waitUntil(time.Minute, func() bool {
		total := int64(0)
		for _, end := range cl.EndOffsets(topics[1]) {
			total += end
		}
		return total >= n
	})
	if !dlqFull {
		t.Fatalf("%d records not dead-lettered within a minute; stderr:\n%s", n, p.stderr.String())
	}
	for _, ep := range []string{p.http + "/readyz", p.http + "/metrics", p.admin + "/debug/flow"} {
		_, body := httpDo(http.MethodGet, ep)
		h.output(ep, body)
	}
	stopService(t, p)
	h.output("run (http sink 400) stdout", p.stdout.String())
	h.output("run (http sink 400) stderr", p.stderr.String())
	dlq := readAll(t, cl.Brokers, topics[1], n)
	h.output("dead letters", dlq)
	if !strings.Contains(dlq, "sluice-dlq-error") || !strings.Contains(dlq, "400") {
		t.Errorf("the dead letters carry no error header with the status:\n%s", dlq)
	}

	// It can fail: each secret went in, and the sink's error path held the
	// ones the receiver can see (the URL's userinfo is not sent: the
	// Authorization header replaces it; the sink's errors quote the URL).
	seenMu.Lock()
	seenAll := strings.Join(seen, "\n")
	seenMu.Unlock()
	for _, s := range []string{secretToken, secretURLQuery} {
		if !strings.Contains(seenAll, s) {
			t.Errorf("the sink never received %s: the sink path was not exercised with it", s)
		}
	}
	inputs := strings.Join(h.inputs, "\n")
	for _, s := range allSecrets {
		if !strings.Contains(inputs, s) {
			t.Errorf("secret %s was never given to the binary", s)
		}
	}
	searched := 0
	for _, o := range h.outputs {
		where, text, _ := strings.Cut(o, "\n")
		searched += len(text)
		for _, s := range allSecrets {
			if i := strings.Index(text, s); i >= 0 {
				t.Errorf("%s shows secret %s: ...%s...", where, s, text[max(0, i-120):min(len(text), i+len(s)+40)])
			}
		}
	}
	t.Logf("searched %d outputs, %d bytes, for %d secrets", len(h.outputs), searched, len(allSecrets))
}

// waitUntil polls cond until it holds or d passes.
func waitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond) // polling a process's output: no event to wait on
	}
	return true
}

// stopService sends SIGTERM and waits for the exit.
func stopService(t *testing.T, p *proc) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exitCode(time.Minute); code == -1 {
		t.Errorf("did not exit within a minute of SIGTERM")
	}
}

// readAll reads n records of topic and writes each with its headers.
func readAll(t *testing.T, brokers []string, topic string, n int) string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var b strings.Builder
	for got := 0; got < n && ctx.Err() == nil; {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			got++
			fmt.Fprintf(&b, "key=%s value=%s", r.Key, r.Value)
			for _, h := range r.Headers {
				fmt.Fprintf(&b, " %s=%s", h.Key, h.Value)
			}
			b.WriteString("\n")
		})
	}
	return b.String()
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/testutil"
)

func TestBadEnvironmentExitsTwoNamingEveryBadVariable(t *testing.T) {
	environ := []string{
		"SLUICE_BUFFER_MAX_BYTES=64XB",
		"SLUICE_BUFFER_MAX_RECORDS=lots",
		"SLUICE_WORKERS_MIN=0",
		"SLUICE_COMMIT_INTERVAL=soon",
		"SLUICE_ORDERING=random",
		"SLUICE_KAFKA_TLS_ENABLED=maybe",
		"SLUICE_BUFFER_HIGH_WATER=0.4",
		"SLUICE_WORKRS_MAX=3", // a typo: unknown variables are errors, not silently ignored
		"PATH=/usr/bin",       // not ours: ignored
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"run"}, environ, &stdout, &stderr)
	if code != 2 {
		t.Fatalf("exit code %d, want 2; stderr:\n%s", code, stderr.String())
	}
	for _, name := range []string{
		"SLUICE_BUFFER_MAX_BYTES", "SLUICE_BUFFER_MAX_RECORDS", "SLUICE_WORKERS_MIN",
		"SLUICE_COMMIT_INTERVAL", "SLUICE_ORDERING", "SLUICE_KAFKA_TLS_ENABLED",
		"SLUICE_BUFFER_LOW_WATER", // 0.5 default is no longer below the 0.4 high mark
		"SLUICE_WORKRS_MAX", "SLUICE_KAFKA_BROKERS", "SLUICE_KAFKA_TOPICS",
	} {
		if !strings.Contains(stderr.String(), name) {
			t.Errorf("stderr does not name %s:\n%s", name, stderr.String())
		}
	}
	if strings.Contains(stderr.String(), "PATH") {
		t.Errorf("stderr complains about a variable that is not Sluice's:\n%s", stderr.String())
	}
}

func TestConfigRedactsSecrets(t *testing.T) {
	environ := []string{
		"SLUICE_KAFKA_BROKERS=127.0.0.1:9092", "SLUICE_KAFKA_TOPICS=a,b",
		"SLUICE_KAFKA_SASL_MECHANISM=plain", "SLUICE_KAFKA_SASL_USERNAME=me",
		"SLUICE_KAFKA_SASL_PASSWORD=hunter2", "SLUICE_BUFFER_MAX_BYTES=32MiB",
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"config"}, environ, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	if strings.Contains(out, "hunter2") {
		t.Fatalf("config printed a secret:\n%s", out)
	}
	for _, want := range []string{"SLUICE_KAFKA_SASL_PASSWORD", "<redacted>", "SLUICE_KAFKA_TOPICS", "a,b", "32 MiB"} {
		if !strings.Contains(out, want) {
			t.Errorf("config output lacks %q:\n%s", want, out)
		}
	}
}

func TestServiceEndpointsAndDrain(t *testing.T) {
	const n = 500
	cl, topics := kafkatest.New(t, 3, "svc")
	cl.Produce(topics[0], n, func(i int) ([]byte, []byte) { return []byte("k"), []byte(fmt.Sprint(i)) })
	addr, adminAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	environ := []string{
		"SLUICE_KAFKA_BROKERS=" + strings.Join(cl.Brokers, ","), "SLUICE_KAFKA_TOPICS=" + topics[0],
		"SLUICE_KAFKA_GROUP=g-" + topics[0], "SLUICE_HTTP_ADDR=" + addr, "SLUICE_ADMIN_ADDR=" + adminAddr,
		"SLUICE_SINK=stdout", "SLUICE_COMMIT_INTERVAL=100ms", "SLUICE_KAFKA_FETCH_MAX_WAIT=100ms",
		"SLUICE_DRAIN_EXIT_AFTER=1m", // longer than the test: the process waits for its signal
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr testutil.SyncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, nil, environ, &stdout, &stderr) }()
	base, admin := "http://"+addr, "http://"+adminAddr

	get := func(path string) (int, string) {
		return httpDo(http.MethodGet, base+path)
	}
	getAdmin := func(path string) (int, string) {
		return httpDo(http.MethodGet, admin+path)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; stderr:\n%s", what, stderr.String())
			}
			time.Sleep(20 * time.Millisecond) // polling a server: no event to wait on
		}
	}
	waitFor("/healthz", func() bool { c, _ := get("/healthz"); return c == 200 })
	waitFor("/readyz", func() bool { c, _ := get("/readyz"); return c == 200 })
	waitFor("all records on stdout", func() bool { return strings.Count(stdout.String(), "\n") >= n })

	code, body := get("/metrics")
	for _, m := range []string{"sluice_window_records", "sluice_window_max_bytes", "sluice_records_delivered_total 500",
		"sluice_fetch_pauses_total{reason=\"window_high\"} 0", "go_goroutines", "process_resident_memory_bytes"} {
		if code != 200 || !strings.Contains(body, m) {
			t.Errorf("/metrics lacks %q", m)
		}
	}
	// The admin endpoints answer on the admin address only.
	for _, ep := range []struct{ method, path string }{
		{http.MethodPost, "/drain"}, {http.MethodGet, "/debug/flow"}, {http.MethodGet, "/debug/pprof/"},
		{http.MethodGet, "/debug/pprof/goroutine"},
	} {
		if c, b := httpDo(ep.method, base+ep.path); c != http.StatusNotFound && c != http.StatusMethodNotAllowed {
			t.Errorf("public %s %s = %d %q, want 404 or 405", ep.method, ep.path, c, b)
		}
	}
	if c, b := getAdmin("/debug/pprof/goroutine?debug=1"); c != 200 || !strings.Contains(b, "goroutine profile") {
		t.Errorf("admin /debug/pprof/goroutine = %d %.200q", c, b)
	}
	code, body = getAdmin("/debug/flow")
	var flow struct {
		Window struct {
			MaxRecords int64 `json:"max_records"`
		} `json:"window"`
		Partitions []struct {
			Committed int64 `json:"committed_offset"`
		} `json:"partitions"`
	}
	if err := json.Unmarshal([]byte(body), &flow); code != 200 || err != nil || flow.Window.MaxRecords != 100000 || len(flow.Partitions) != 3 {
		t.Errorf("/debug/flow = %d %s (err %v)", code, body, err)
	}

	if c, b := httpDo(http.MethodPost, admin+"/drain"); c != 200 || !strings.Contains(b, "drained") {
		t.Fatalf("POST /drain = %d %s", c, b)
	}
	if c, b := get("/readyz"); c != http.StatusServiceUnavailable || !strings.HasPrefix(b, "not ready: drained: ") {
		t.Errorf("/readyz after drain = %d %q, want 503 not ready: drained: ...", c, b)
	}
	if c, _ := get("/healthz"); c != 200 {
		t.Errorf("/healthz after drain = %d, want 200: the process lives until its signal", c)
	}
	ends := cl.EndOffsets(topics[0])
	committed := cl.Committed("g-"+topics[0], topics[0])
	for p, end := range ends {
		if committed[p] != end {
			t.Errorf("after drain partition %d committed %d, want %d", p, committed[p], end)
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("serve did not return after its context ended")
	}
	if got := strings.Count(stdout.String(), "\n"); got != n {
		t.Errorf("stdout has %d lines, want %d", got, n)
	}
}

// httpDo sends an empty request and returns the status and body (0 and
// the error's text when there is no answer).
func httpDo(method, url string) (int, string) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0, err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/testutil"
)

// inProcess is serve running in the test's process.
type inProcess struct {
	http, admin string
	stderr      *testutil.SyncBuffer
	cancel      context.CancelFunc // the signal
	done        chan int           // the exit code
}

func serveInProcess(t *testing.T, env ...string) *inProcess {
	t.Helper()
	httpAddr, adminAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	s := &inProcess{http: "http://" + httpAddr, admin: "http://" + adminAddr, stderr: new(testutil.SyncBuffer),
		cancel: cancel, done: make(chan int, 1)}
	env = append([]string{"SLUICE_HTTP_ADDR=" + httpAddr, "SLUICE_ADMIN_ADDR=" + adminAddr}, env...)
	go func() { s.done <- run(ctx, nil, env, io.Discard, s.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(time.Minute):
			t.Error("serve did not return within a minute of its signal")
		}
	})
	return s
}

// readyzUntil polls /readyz until cond holds for its status and body, and
// returns the body.
func (s *inProcess) readyzUntil(t *testing.T, what string, cond func(code int, body string) bool) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, b := httpDo(http.MethodGet, s.http+"/readyz")
		if cond(c, b) {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never showed %s; last %d %q; stderr:\n%s", what, c, b, s.stderr.String())
		}
		time.Sleep(20 * time.Millisecond) // polling a server: no event to wait on
	}
}

// With its brokers unreachable, /readyz says it is joining and quotes the
// client's warning, with the broker's address, within seconds.
func TestReadyzExplainsJoining(t *testing.T) {
	nobody := testutil.FreeAddr(t) // nothing listens there
	start := time.Now()
	s := serveInProcess(t, "SLUICE_KAFKA_BROKERS="+nobody, "SLUICE_KAFKA_TOPICS=t", "SLUICE_SINK=noop")
	first := s.readyzUntil(t, "a 503", func(c int, _ string) bool { return c == http.StatusServiceUnavailable })
	if !strings.HasPrefix(first, "not ready: joining: ") {
		t.Errorf("/readyz before joining = %q, want not ready: joining: ...", first)
	}
	body := s.readyzUntil(t, "the broker's error", func(c int, b string) bool {
		return c == http.StatusServiceUnavailable && strings.Contains(b, "unable to open connection to broker")
	})
	t.Logf("after %v: %s", time.Since(start).Round(time.Millisecond), body)
	if time.Since(start) > 5*time.Second {
		t.Errorf("the broker's error reached /readyz only after %v", time.Since(start))
	}
	for _, want := range []string{"not ready: joining: ", "last warning ", nobody, "connection refused"} {
		if !strings.Contains(body, want) {
			t.Errorf("/readyz lacks %q: %q", want, body)
		}
	}
}

// While a drain waits for a delivery in flight /readyz says draining, then
// drained once it completed; while a shutdown on a signal waits for one,
// shutting_down.
func TestReadyzExplainsDrainAndShutdown(t *testing.T) {
	for _, how := range []string{"drain", "signal"} {
		t.Run(how, func(t *testing.T) {
			release := make(chan struct{})
			var releaseOnce sync.Once
			inFlight := make(chan struct{}, 1) // a delivery reached the sink
			sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodHead {
					return // the readiness ping
				}
				select {
				case inFlight <- struct{}{}:
				default:
				}
				select {
				case <-release:
				case <-r.Context().Done():
				}
			}))
			t.Cleanup(sink.Close) // after serve's cleanup: cleanups run last first
			cl, topics := kafkatest.New(t, 1, "readyz")
			cl.Produce(topics[0], 3, func(i int) ([]byte, []byte) { return []byte("k"), []byte(fmt.Sprint(i)) })
			s := serveInProcess(t, "SLUICE_KAFKA_BROKERS="+strings.Join(cl.Brokers, ","), "SLUICE_KAFKA_TOPICS="+topics[0],
				"SLUICE_KAFKA_GROUP=g-"+topics[0], "SLUICE_SINK=http", "SLUICE_SINK_HTTP_URL="+sink.URL,
				"SLUICE_DRAIN_EXIT_AFTER=1m", "SLUICE_SHUTDOWN_TIMEOUT=20s")
			t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) }) // before serve's: a failed test ends at once
			s.readyzUntil(t, "ready", func(c int, _ string) bool { return c == http.StatusOK })
			select {
			case <-inFlight:
			case <-time.After(30 * time.Second):
				t.Fatalf("no delivery reached the sink; stderr:\n%s", s.stderr.String())
			}

			if how == "signal" {
				s.cancel() // a delivery is in flight: the shutdown waits for it
				s.readyzUntil(t, "shutting_down", func(c int, b string) bool {
					return c == http.StatusServiceUnavailable && strings.HasPrefix(b, "not ready: shutting_down: ")
				})
				releaseOnce.Do(func() { close(release) })
				if code := <-s.done; code != 0 {
					t.Fatalf("exit %d; stderr:\n%s", code, s.stderr.String())
				}
				s.done <- 0 // for the cleanup
				return
			}
			drained := make(chan string, 1)
			go func() {
				c, b := httpDo(http.MethodPost, s.admin+"/drain")
				drained <- fmt.Sprint(c, " ", b)
			}()
			s.readyzUntil(t, "draining", func(c int, b string) bool {
				return c == http.StatusServiceUnavailable && strings.HasPrefix(b, "not ready: draining: ")
			})
			releaseOnce.Do(func() { close(release) })
			if got := <-drained; !strings.HasPrefix(got, "200 drained") {
				t.Fatalf("POST /drain = %s", got)
			}
			s.readyzUntil(t, "drained", func(c int, b string) bool {
				return c == http.StatusServiceUnavailable && strings.HasPrefix(b, "not ready: drained: ") && strings.Contains(b, "1m0s")
			})
		})
	}
}

// The warning kept for /readyz is scrubbed of secrets and bounded.
func TestLastWarningRedactsAndBounds(t *testing.T) {
	w := new(lastWarning)
	log := newLogger(io.Discard, "info", w).With("component", "nats")
	log.Info("not kept")
	if w.String() != "" {
		t.Fatalf("an Info record was kept: %q", w.String())
	}
	log.Warn("nats disconnected", "error", "read nats://sluice:pa55word@host:4222/?token=t0ken: EOF", "password", "hunter2")
	got := w.String()
	for _, secret := range []string{"pa55word", "t0ken", "hunter2"} {
		if strings.Contains(got, secret) {
			t.Errorf("the kept warning shows %q: %s", secret, got)
		}
	}
	if !strings.Contains(got, "nats disconnected") || !strings.Contains(got, `component="nats"`) || !strings.Contains(got, "host:4222") {
		t.Errorf("the kept warning lost what it is about: %s", got)
	}
	log.Warn(strings.Repeat("x", 2000))
	if n := len(w.String()); n > maxWarningText+100 {
		t.Errorf("kept warning is %d bytes long", n)
	}
	var _ slog.Handler = warnHandler{}
}

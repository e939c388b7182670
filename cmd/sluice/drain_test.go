package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/testutil"
)

// proc is the service binary running as a process, as in a container.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr testutil.SyncBuffer
	done           chan struct{} // closed when it has exited
	err            error         // Wait's, once done is closed
	http, admin    string        // base URLs
}

// startService runs `sluice run` with env (SLUICE_* only: nothing of the
// test's own environment but PATH), on free loopback ports; it is killed
// at the end of the test if still running.
func startService(t *testing.T, env ...string) *proc {
	t.Helper()
	httpAddr, adminAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	p := &proc{done: make(chan struct{}), http: "http://" + httpAddr, admin: "http://" + adminAddr}
	p.cmd = exec.Command(sluiceBinary(t), "run")
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "SLUICE_HTTP_ADDR=" + httpAddr, "SLUICE_ADMIN_ADDR=" + adminAddr}, env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }() // owned by the cleanup below, which waits for done
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// exitCode waits up to d for the exit and returns the code (-1 if it did
// not exit in time).
func (p *proc) exitCode(d time.Duration) int {
	select {
	case <-p.done:
	case <-time.After(d):
		return -1
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		return -1
	}
	return 0
}

// waitReady polls /readyz until it answers 200.
func (p *proc) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		c, body := httpDo(http.MethodGet, p.http+"/readyz")
		if c == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready within a minute: %d %q; stderr:\n%s", c, body, p.stderr.String())
		}
		select {
		case <-p.done:
			t.Fatalf("exited before it was ready: %v; stderr:\n%s", p.err, p.stderr.String())
		case <-time.After(20 * time.Millisecond): // polling a server: no event to wait on
		}
	}
}

// drainCmdRun runs `sluice drain` as a preStop hook does: the binary, in
// an environment that names the admin address.
func (p *proc) drainCmdRun(t *testing.T) {
	t.Helper()
	cmd := exec.Command(sluiceBinary(t), "drain")
	cmd.Env = []string{"SLUICE_ADMIN_ADDR=" + strings.TrimPrefix(p.admin, "http://")}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "drained") {
		t.Fatalf("sluice drain: %v: %s", err, out)
	}
}

func kafkaEnv(t *testing.T, n int) []string {
	cl, topics := kafkatest.New(t, 2, "drain")
	cl.Produce(topics[0], n, func(i int) ([]byte, []byte) { return []byte("k"), []byte(fmt.Sprint(i)) })
	return []string{
		"SLUICE_KAFKA_BROKERS=" + strings.Join(cl.Brokers, ","), "SLUICE_KAFKA_TOPICS=" + topics[0],
		"SLUICE_KAFKA_GROUP=g-" + topics[0], "SLUICE_SINK=stdout", "SLUICE_KAFKA_FETCH_MAX_WAIT=100ms",
	}
}

// A drain that no signal follows (an operator's, a stray one) ends the
// process by itself, exit 0, SLUICE_DRAIN_EXIT_AFTER after the drain
// completed, and not before: a preStop hook's SIGTERM has that long to
// come. Until then /readyz says so. The public port refuses /drain.
func TestDrainWithoutSignalExitsWithinTheBound(t *testing.T) {
	const exitAfter = 2 * time.Second
	p := startService(t, append(kafkaEnv(t, 100), "SLUICE_DRAIN_EXIT_AFTER="+exitAfter.String())...)
	p.waitReady(t)

	if c, b := httpDo(http.MethodPost, p.http+"/drain"); c != http.StatusNotFound && c != http.StatusMethodNotAllowed {
		t.Fatalf("POST /drain on the public port = %d %q, want 404 or 405", c, b)
	}
	if c, b := httpDo(http.MethodGet, p.http+"/readyz"); c != http.StatusOK {
		t.Fatalf("/readyz after a refused drain = %d %q: the public port drained it", c, b)
	}

	p.drainCmdRun(t)
	drained := time.Now()
	if c, b := httpDo(http.MethodGet, p.http+"/readyz"); c != http.StatusServiceUnavailable ||
		!strings.HasPrefix(b, "not ready: drained: ") || !strings.Contains(b, "SLUICE_DRAIN_EXIT_AFTER") {
		t.Errorf("/readyz while drained = %d %q", c, b)
	}
	code := p.exitCode(exitAfter + 10*time.Second)
	took := time.Since(drained)
	t.Logf("exit %d, %v after the drain's answer (SLUICE_DRAIN_EXIT_AFTER=%v)", code, took.Round(time.Millisecond), exitAfter)
	if code != 0 {
		t.Fatalf("exit %d, want 0 within %v of the drain; stderr:\n%s", code, exitAfter+10*time.Second, p.stderr.String())
	}
	// The timer starts when the drain completed, a moment before its answer
	// reached the command: allow that moment.
	if took < exitAfter-200*time.Millisecond {
		t.Errorf("exited %v after the drain, before SLUICE_DRAIN_EXIT_AFTER=%v: a preStop hook's SIGTERM may not have come yet", took, exitAfter)
	}
	if took > exitAfter+5*time.Second {
		t.Errorf("exited %v after the drain, well past SLUICE_DRAIN_EXIT_AFTER=%v", took, exitAfter)
	}
	if !strings.Contains(p.stderr.String(), `"msg":"exiting: no signal came after the drain"`) {
		t.Errorf("the log does not say why it exited:\n%s", p.stderr.String())
	}
}

// The preStop sequence: `sluice drain`, then SIGTERM at once. The process
// exits 0 on the signal, long before SLUICE_DRAIN_EXIT_AFTER, having shut
// the consumer down once.
func TestPreStopDrainThenSIGTERMExitsOnce(t *testing.T) {
	p := startService(t, append(kafkaEnv(t, 100), "SLUICE_DRAIN_EXIT_AFTER=1m")...)
	p.waitReady(t)
	if !waitUntil(time.Minute, func() bool { return strings.Count(p.stdout.String(), "\n") >= 100 }) {
		t.Fatalf("the 100 records were not delivered within a minute; stderr:\n%s", p.stderr.String())
	}
	p.drainCmdRun(t)
	sent := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code := p.exitCode(20 * time.Second)
	t.Logf("exit %d, %v after SIGTERM", code, time.Since(sent).Round(time.Millisecond))
	if code != 0 {
		t.Fatalf("exit %d after drain and SIGTERM, want 0; stderr:\n%s", code, p.stderr.String())
	}
	log := p.stderr.String()
	for msg, want := range map[string]int{`"msg":"shutting down"`: 1, `"msg":"stopped"`: 1, `"msg":"exiting: no signal came after the drain"`: 0} {
		if n := strings.Count(log, msg); n != want {
			t.Errorf("the log has %s %d times, want %d:\n%s", msg, n, want, log)
		}
	}
	if got := strings.Count(p.stdout.String(), "\n"); got != 100 {
		t.Errorf("delivered %d records, want 100", got)
	}
}

// `sluice drain` with nothing at the admin address fails, exit 1, naming
// the address it tried.
func TestDrainCommandFailsWithoutAService(t *testing.T) {
	var stdout, stderr testutil.SyncBuffer
	addr := testutil.FreeAddr(t) // nothing listens there
	code := run(context.Background(), []string{"drain", "--timeout", "2s"}, []string{"SLUICE_ADMIN_ADDR=" + addr}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), addr) {
		t.Fatalf("drain of nothing: exit %d, stderr %q", code, stderr.String())
	}
}

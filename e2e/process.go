package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluicehq/sluice/internal/testutil"
)

// Process is one running `sluice run`: the real binary, a separate process,
// its stdout (the stdout sink's JSON lines) appended to a ledger file and
// its stderr (JSON logs) to a log file.
type Process struct {
	Name      string
	HTTPAddr  string // public: /metrics, /healthz, /readyz
	AdminAddr string // admin: /drain, /debug/flow, /debug/pprof/
	Ledger    string // path of this process's ledger file
	LogFile   string

	cmd    *exec.Cmd
	done   chan struct{}
	waitEr error
	out    *os.File
	errf   *os.File
}

// StartSluice runs bin with the given SLUICE_* settings (on top of an
// environment from which every other SLUICE_* variable is removed), its
// HTTP server and its admin server on free loopback ports.
func StartSluice(bin, name, ledger, logFile string, env map[string]string) (*Process, error) {
	port, err := testutil.FreePort()
	if err != nil {
		return nil, err
	}
	adminPort, err := testutil.FreePort()
	if err != nil {
		return nil, err
	}
	out, err := os.OpenFile(ledger, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	errf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		out.Close()
		return nil, err
	}
	p := &Process{Name: name, HTTPAddr: fmt.Sprintf("127.0.0.1:%d", port), AdminAddr: fmt.Sprintf("127.0.0.1:%d", adminPort),
		Ledger: ledger, LogFile: logFile, done: make(chan struct{}), out: out, errf: errf}
	var environ []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLUICE_") {
			environ = append(environ, kv)
		}
	}
	environ = append(environ, "SLUICE_HTTP_ADDR="+p.HTTPAddr, "SLUICE_ADMIN_ADDR="+p.AdminAddr)
	if _, ok := env["SLUICE_SINK"]; !ok {
		environ = append(environ, "SLUICE_SINK=stdout")
	}
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	p.cmd = exec.Command(bin, "run")
	p.cmd.Env = environ
	p.cmd.Stdout = out
	p.cmd.Stderr = errf
	// Its own process group: a Ctrl-C on the harness reaches the harness,
	// which then stops its children itself.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	fmt.Fprintf(errf, "{\"e2e\":\"start %s\",\"time\":%q}\n", name, time.Now().Format(time.RFC3339Nano))
	if err := p.cmd.Start(); err != nil {
		out.Close()
		errf.Close()
		return nil, err
	}
	go func() {
		p.waitEr = p.cmd.Wait()
		out.Close()
		errf.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig (syscall.SIGTERM, syscall.SIGKILL).
func (p *Process) Signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits up to d for the process to exit and returns its exit code, or
// an error if it is still running (it is then SIGKILLed).
func (p *Process) Wait(d time.Duration) (int, error) {
	select {
	case <-p.done:
	case <-time.After(d):
		p.Signal(syscall.SIGKILL)
		<-p.done
		return -1, fmt.Errorf("%s did not exit within %s: killed", p.Name, d)
	}
	if p.waitEr == nil {
		return 0, nil
	}
	if ee, ok := p.waitEr.(*exec.ExitError); ok {
		return ee.ExitCode(), nil
	}
	return -1, p.waitEr
}

// Stop sends SIGTERM and waits up to d; it returns an error if the exit was
// not clean.
func (p *Process) Stop(d time.Duration) error {
	p.Signal(syscall.SIGTERM)
	code, err := p.Wait(d)
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("%s exited %d after SIGTERM (log: %s)", p.Name, code, p.LogFile)
	}
	return nil
}

// Kill sends SIGKILL and waits for the exit.
func (p *Process) Kill() {
	p.Signal(syscall.SIGKILL)
	<-p.done
}

// Flow reads /debug/flow (on the admin address).
func (p *Process) Flow(ctx context.Context) (*Flow, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.AdminAddr+"/debug/flow", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var f Flow
	if err := json.NewDecoder(resp.Body).Decode(&f); err != nil {
		return nil, err
	}
	return &f, nil
}

// Ready reports whether /readyz answers 200.
func (p *Process) Ready(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.HTTPAddr+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Drain POSTs /drain to the admin address, as the preStop hook's `sluice
// drain` does, and waits for the answer.
func (p *Process) Drain(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+p.AdminAddr+"/drain", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("drain: %s", resp.Status)
	}
	return nil
}

// RSS is the resident set size in bytes, from /proc (0 if unknown).
func (p *Process) RSS() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// Flow is the part of /debug/flow the suite reads.
type Flow struct {
	Window struct {
		Records     int64   `json:"records"`
		MaxRecords  int64   `json:"max_records"`
		Fill        float64 `json:"fill"`
		PeakRecords int64   `json:"peak_records"`
	} `json:"window"`
	Paused     int `json:"paused_partitions"`
	Partitions []struct {
		Topic     string `json:"topic"`
		Partition int32  `json:"partition"`
		Paused    bool   `json:"paused"`
	} `json:"partitions"`
}

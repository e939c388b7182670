package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/autoscale"
	"github.com/sluicehq/sluice/consumer"
	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/control"
	"github.com/sluicehq/sluice/sinks"
)

// serve runs the service until ctx ends, or DrainExitAfter after a drain
// completed (see awaitSignalAfterDrain). It serves the public endpoints
// (metrics, probes) on HTTPAddr and the admin ones (drain, flow state,
// pprof) on AdminAddr. Shutdown is ordered: the consumer stops intake,
// drains, commits and leaves the group; the controller stops with it; the
// HTTP servers stop last so metrics and probes answer until the end; the
// sinks are closed after that.
func serve(ctx context.Context, environ []string, stdout, stderr io.Writer) int {
	cfg, err := config.Load(environ)
	if err != nil {
		printErr(stderr, err)
		return 2
	}
	warnings := new(lastWarning)
	log := newLogger(stderr, cfg.LogLevel, warnings)
	memLimit := setMemoryLimit(environ, cfg.Consumer.MaxBytes)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), newBuildInfo())

	sink, dlq, err := buildSinks(ctx, cfg, stdout, reg, log)
	if err != nil {
		printErr(stderr, err)
		return 2
	}
	defer closeSinks(sink, dlq)
	c, err := consumer.New(cfg.Consumer, sink, consumer.WithLogger(log), consumer.WithRegisterer(reg), consumer.WithDeadLetter(dlq))
	if err != nil {
		printErr(stderr, err)
		return 2
	}
	var ctl *autoscale.Controller
	if cfg.AutoscaleOn {
		if ctl, err = control.New(cfg.Autoscale, c, cfg.Consumer.Source == consumer.SourceKafka, log, reg); err != nil {
			printErr(stderr, err)
			return 2
		}
	}
	st := &status{c: c, signal: ctx, exitAfter: cfg.DrainExitAfter, warnings: warnings}
	servers := []*listener{
		{name: "http", addr: cfg.HTTPAddr, handler: newPublicMux(st, sink, reg)},
		{name: "admin", addr: cfg.AdminAddr, handler: newAdminMux(st, ctl, cfg.Consumer.ShutdownTimeout)},
	}
	for i, s := range servers {
		if err := s.listen(); err != nil {
			for _, opened := range servers[:i] {
				opened.ln.Close()
			}
			log.Error("cannot listen", "listener", s.name, "addr", s.addr, "error", err)
			return 1
		}
	}
	log.Info("started", "version", version, "source", cfg.Consumer.Source, "sink", cfg.Sink,
		"http_addr", servers[0].ln.Addr().String(), "admin_addr", servers[1].ln.Addr().String(),
		"workers", cfg.Consumer.Workers, "autoscale", cfg.AutoscaleOn, "memory_limit_bytes", memLimit)

	// The HTTP servers and the controller run beside the consumer, which
	// runs here until ctx ends or a drain completes.
	var g errgroup.Group
	for _, s := range servers {
		g.Go(s.serve)
	}
	if ctl != nil {
		g.Go(func() error { return control.Run(ctx, ctl, c) }) // ends when the consumer has stopped
	}
	runErr := c.Run(ctx)
	if runErr == nil && ctx.Err() == nil {
		awaitSignalAfterDrain(ctx, cfg.DrainExitAfter, log)
	}
	// Both servers stop together, last: the probes answer (503, saying
	// why) until the end, and the drain's answer goes out before the exit.
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var stops errgroup.Group
	for _, s := range servers {
		stops.Go(func() error { return s.srv.Shutdown(sctx) })
	}
	_ = stops.Wait()
	if err := g.Wait(); err != nil {
		log.Error("failed", "error", consumer.RedactText(err.Error()))
	}
	if runErr != nil {
		log.Error("exiting", "error", consumer.RedactText(runErr.Error()))
		return 1
	}
	return 0
}

// awaitSignalAfterDrain waits, after a drain completed, for the signal the
// drain is the prelude to (a pod's preStop hook drains, then the kubelet
// sends SIGTERM at once), or for exitAfter, whichever comes first. So a
// drain that no signal follows (an operator's, a stray one) ends the
// process within exitAfter, and with exit code 0: a supervisor restarts it
// (in Kubernetes, restartPolicy Always), rather than leaving a live
// process that consumes nothing. exitAfter must outlast the gap between
// the drain's answer and the signal, or a preStop hook would see the
// container stop under it.
func awaitSignalAfterDrain(ctx context.Context, exitAfter time.Duration, log *slog.Logger) {
	log.Info("drained; exiting unless a signal comes first", "reason", "drain", "exit_after", exitAfter.String())
	t := time.NewTimer(exitAfter)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
		log.Info("exiting: no signal came after the drain", "reason", "drain_exit_after", "exit_after", exitAfter.String())
	}
}

// listener is one HTTP server and its listener.
type listener struct {
	name, addr string
	handler    http.Handler
	ln         net.Listener
	srv        *http.Server
}

func (s *listener) listen() (err error) {
	s.ln, err = net.Listen("tcp", s.addr)
	s.srv = &http.Server{Handler: s.handler, ReadHeaderTimeout: 5 * time.Second}
	return err
}

// serve serves until Shutdown.
func (s *listener) serve() error {
	if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s server: %w", s.name, err)
	}
	return nil
}

// printErr prints an error that stops the service, scrubbed of secrets:
// a client library's error may quote the URL or DSN it was given in full.
func printErr(w io.Writer, err error) {
	fmt.Fprintln(w, "sluice:", consumer.RedactText(err.Error()))
}

// closeSinks closes the sink and the dead-letter destination (nil when
// none), within a bound of its own.
func closeSinks(sink, dlq consumer.Sink) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = sinks.Close(ctx, sink)
	if dlq != nil {
		_ = sinks.Close(ctx, dlq)
	}
}

// setMemoryLimit gives the Go runtime a soft memory limit that follows the
// window's byte budget (budget + 40 MiB), unless GOMEMLIMIT is set,
// and returns the limit in force. Without it the heap may grow to twice
// the live data before a collection (GOGC=100): with a full window that is
// another budget's worth of garbage. Measured with `sluice-dev bench memory`
// (32 MiB budget, sink 100x slower than the producer, 60 s): peak RSS
// 99.7 MiB without the limit, 82.7 MiB with it, flat after the window filled.
func setMemoryLimit(environ []string, budget int64) int64 {
	for _, kv := range environ {
		if strings.HasPrefix(kv, "GOMEMLIMIT=") {
			return debug.SetMemoryLimit(-1) // -1 reads the limit without changing it
		}
	}
	limit := budget + 40<<20
	debug.SetMemoryLimit(limit)
	return limit
}

// newLogger writes JSON to w at level and up; the last record at Warn or
// above also goes to warnings, for /readyz.
func newLogger(w io.Writer, level string, warnings *lastWarning) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level)) // validated by config.Load
	return slog.New(warnHandler{next: slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}), keep: warnings})
}

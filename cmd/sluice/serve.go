package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
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
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicehq/sluice/autoscale"
	"github.com/sluicehq/sluice/consumer"
	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/sinks"
)

// serve runs the service until ctx ends. Shutdown is ordered: the consumer
// stops intake, drains, commits and leaves the group; the HTTP server stops
// last so metrics and probes answer until the end.
func serve(ctx context.Context, environ []string, stdout, stderr io.Writer) int {
	cfg, err := config.Load(environ)
	if err != nil {
		fmt.Fprintln(stderr, "sluice:", err)
		return 2
	}
	log := newLogger(stderr, cfg.LogLevel)
	memLimit := setMemoryLimit(environ, cfg.Consumer.MaxBytes)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), newBuildInfo())

	sink, dlq, err := buildSinks(ctx, cfg, stdout, reg, log)
	if err != nil {
		fmt.Fprintln(stderr, "sluice:", err)
		return 2
	}
	c, err := consumer.New(cfg.Consumer, sink, consumer.WithLogger(log), consumer.WithRegisterer(reg), consumer.WithDeadLetter(dlq))
	if err != nil {
		fmt.Fprintln(stderr, "sluice:", err)
		return 2
	}
	var ctl *autoscale.Controller
	if cfg.AutoscaleOn {
		if ctl, err = newController(cfg.Autoscale, c, cfg.Consumer.Source == consumer.SourceKafka, log, reg); err != nil {
			fmt.Fprintln(stderr, "sluice:", err)
			return 2
		}
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		log.Error("cannot listen", "addr", cfg.HTTPAddr, "error", err)
		return 1
	}
	srv := &http.Server{
		Handler:           newMux(c, ctl, sink, reg, cfg.Consumer.ShutdownTimeout),
		ReadHeaderTimeout: 5 * time.Second,
	}
	httpDone := make(chan error, 1)
	go func() { httpDone <- srv.Serve(ln) }()
	log.Info("started", "version", version, "source", cfg.Consumer.Source, "sink", cfg.Sink,
		"http_addr", ln.Addr().String(), "workers", cfg.Consumer.Workers, "autoscale", cfg.AutoscaleOn,
		"memory_limit_bytes", memLimit)

	stopController := func() {}
	if ctl != nil {
		stopController = runController(ctx, ctl, c)
	}
	runErr := c.Run(ctx)
	stopController()
	if runErr == nil && ctx.Err() == nil {
		log.Info("drained; waiting for the signal to exit", "reason", "drain")
		<-ctx.Done()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err := <-httpDone; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("http server failed", "error", err)
	}
	if closer, ok := sink.(interface{ Close(context.Context) error }); ok {
		_ = closer.Close(sctx)
	}
	if dlq != nil {
		_ = sinks.Close(sctx, dlq)
	}
	if runErr != nil {
		log.Error("exiting", "error", runErr)
		return 1
	}
	return 0
}

// setMemoryLimit gives the Go runtime a soft memory limit that follows the
// window's byte budget (budget + 40 MiB), unless GOMEMLIMIT is set,
// and returns the limit in force. Without it the heap may grow to twice
// the live data before a collection (GOGC=100): with a full window that is
// another budget's worth of garbage. Measured with `sluice bench memory`
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

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level)) // validated by config.Load
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// newMux serves the metrics, probes, the flow-state debug view and drain.
func newMux(c *consumer.Consumer, ctl *autoscale.Controller, sink consumer.Sink, reg *prometheus.Registry, shutdownTimeout time.Duration) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !c.Ready() {
			http.Error(w, "not ready: not in the group yet, or draining", http.StatusServiceUnavailable)
			return
		}
		if p, ok := sink.(consumer.Pinger); ok {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if err := p.Ping(ctx); err != nil {
				http.Error(w, "not ready: sink unreachable: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("GET /debug/flow", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		view := struct {
			consumer.FlowState
			Autoscale *autoscaleView `json:"autoscale,omitempty"`
		}{FlowState: c.FlowState()}
		if ctl != nil {
			v := viewOf(ctl.View())
			view.Autoscale = &v
		}
		_ = enc.Encode(view)
	})
	mux.HandleFunc("POST /drain", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), shutdownTimeout+5*time.Second)
		defer cancel()
		if err := c.Drain(ctx); err != nil {
			http.Error(w, "drain did not finish: "+err.Error(), http.StatusGatewayTimeout)
			return
		}
		fmt.Fprintln(w, "drained")
	})
	return mux
}

// drainCmd asks a local sluice to drain: the pod's preStop hook runs it,
// since a distroless image has no curl.
func drainCmd(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("drain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "address of sluice's HTTP server (default: from SLUICE_HTTP_ADDR, else :8080)")
	timeout := fs.Duration("timeout", 0, "how long to wait (default: SLUICE_SHUTDOWN_TIMEOUT + 10s)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	vars := map[string]string{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	if *addr == "" {
		*addr = vars["SLUICE_HTTP_ADDR"]
		if *addr == "" {
			*addr = ":8080"
		}
	}
	if *timeout == 0 {
		d, err := time.ParseDuration(vars["SLUICE_SHUTDOWN_TIMEOUT"])
		if err != nil {
			d = 30 * time.Second
		}
		*timeout = d + 10*time.Second
	}
	host, port, err := net.SplitHostPort(*addr)
	if err != nil {
		fmt.Fprintln(stderr, "sluice drain: bad address:", err)
		return 2
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+net.JoinHostPort(host, port)+"/drain", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "sluice drain:", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Fprint(stdout, string(body))
	if resp.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicehq/sluice/autoscale"
	"github.com/sluicehq/sluice/consumer"
)

// newPublicMux serves what anyone who can reach SLUICE_HTTP_ADDR may read:
// the metrics and the probes. Nothing here changes the service's state.
//
// /readyz answers 200 "ready", or 503 with one line
// "not ready: <stage>: <explanation>" (see status.notReady; the sink
// stage is sink_unreachable).
func newPublicMux(st *status, sink consumer.Sink, reg *prometheus.Registry) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if why := st.notReady(); why != "" {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		if p, ok := sink.(consumer.Pinger); ok {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if err := p.Ping(ctx); err != nil {
				http.Error(w, "not ready: sink_unreachable: "+consumer.RedactText(err.Error()), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

// newAdminMux serves what only an operator may use, on SLUICE_ADMIN_ADDR
// (loopback by default): the drain, the flow-state view (partitions,
// offsets, limits: the shape of the workload) and the Go profiler.
func newAdminMux(st *status, ctl *autoscale.Controller, shutdownTimeout time.Duration) *http.ServeMux {
	c := st.c
	mux := http.NewServeMux()
	mux.HandleFunc("POST /drain", func(w http.ResponseWriter, r *http.Request) {
		st.drainAsked.Store(true)
		ctx, cancel := context.WithTimeout(r.Context(), shutdownTimeout+5*time.Second)
		defer cancel()
		if err := c.Drain(ctx); err != nil {
			http.Error(w, "drain did not finish: "+err.Error(), http.StatusGatewayTimeout)
			return
		}
		fmt.Fprintln(w, "drained")
	})
	mux.HandleFunc("GET /debug/flow", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		view := struct {
			consumer.FlowState
			Autoscale *autoscale.Decision `json:"autoscale,omitempty"` // the controller's latest
		}{FlowState: c.FlowState()}
		if ctl != nil {
			d := ctl.View()
			view.Autoscale = &d
		}
		_ = enc.Encode(view)
	})
	mux.HandleFunc("GET /debug/pprof/", pprof.Index) // and the named profiles: heap, goroutine, ...
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}

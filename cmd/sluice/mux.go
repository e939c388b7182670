package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicehq/sluice/autoscale"
	"github.com/sluicehq/sluice/consumer"
)

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
			Autoscale *autoscale.Decision `json:"autoscale,omitempty"` // the controller's latest
		}{FlowState: c.FlowState()}
		if ctl != nil {
			d := ctl.View()
			view.Autoscale = &d
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

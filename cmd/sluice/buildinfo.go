package main

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// newBuildInfo returns the sluice_build_info gauge: always 1, with the
// version set at build time (-X main.version), the Go version that built the
// binary and the VCS revision Go recorded at build time ("-dirty" appended
// when the tree had changes; "unknown" when built outside a checkout, e.g.
// from a Docker context without .git). Join on it to see which version a
// pod runs: `sluice_build_info * on (pod) group_left ...`.
func newBuildInfo() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sluice_build_info",
		Help: "Always 1; the labels say which build is running: version, goversion, revision.",
		ConstLabels: prometheus.Labels{
			"version":   version,
			"goversion": runtime.Version(),
			"revision":  vcsRevision(),
		},
	}, func() float64 { return 1 })
}

// vcsRevision is the commit Go stamped into the binary, or "unknown".
func vcsRevision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "unknown"
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

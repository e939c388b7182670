package autoscale

import (
	"math"
	"time"
)

// MaxDrainSeconds caps PodSignal.DrainSeconds when a member has lag but
// completes nothing: a finite value that Kubernetes quantities and
// dashboards can carry (one day).
const MaxDrainSeconds = 86400

// PodInput is what the pod signal is computed from.
type PodInput struct {
	// Lag is the member's broker lag in records (see Sample.Lag).
	Lag int64
	// LagSlope is the fitted slope of Lag in records per second (positive:
	// the lag grows).
	LagSlope float64
	// CompletionRate is the member's completion rate in records per second.
	CompletionRate float64
	// Latency is the sink time per completed record; zero if unknown.
	Latency time.Duration
	// Usable is how many workers this member can usefully run: Max, cut by
	// the sink's declared maximum and by a learned sink ceiling.
	Usable int
	// Partitions caps the signal (see Sample.Partitions); <= 0: no cap.
	Partitions int
	// HoldBack is set when more pods would only hurt the sink: it is the
	// bottleneck, or too many of its calls fail.
	HoldBack bool
	// DrainTime is the horizon over which lag should be cleared.
	DrainTime time.Duration
}

// PodSignal is what one member exports for pod autoscaling.
//
// DesiredReplicas is this member's share of the work in units of one pod's
// capacity: the workers its load needs, divided by the workers one pod can
// run. The load is the production rate of its partitions (completion rate +
// lag slope) plus Lag/DrainTime, times the sink time per record. Summed over
// all members it is the number of pods the group needs, so:
//   - an HPA v2 "Pods" metric with target.type AverageValue and averageValue
//     1 (or 800m for 20 % headroom) sizes the group to ceil(sum/target);
//   - a KEDA Prometheus trigger queries sum(sluice_autoscale_desired_replicas)
//     with metricType AverageValue and threshold "1": ceil(sum/threshold).
//
// It is capped at Partitions (a member cannot spread its work over more pods
// than it has partitions, so the sum is capped at the topic's partition
// count), and when HoldBack is set it is capped at 1: this member asks for
// no more pods than itself, though it may still ask for fewer.
//
// DrainSeconds is the member's lag expressed in time: Lag/CompletionRate,
// the seconds this member would need to clear its lag at its current
// completion rate if nothing new arrived (MaxDrainSeconds if it has lag and
// completes nothing; 0 without lag). It is an observation, not vetoed by the
// bottleneck: alert or graph on max() across members; scale on
// DesiredReplicas.
type PodSignal struct {
	DesiredReplicas float64 `json:"desired_replicas"`
	DrainSeconds    float64 `json:"drain_seconds"`
	// HeldBack reports that HoldBack lowered DesiredReplicas.
	HeldBack bool `json:"held_back"`
	// Capped reports that Partitions lowered DesiredReplicas.
	Capped bool `json:"capped"`
}

// NewPodSignal computes the pod signal. It is pure.
func NewPodSignal(in PodInput) PodSignal {
	var ps PodSignal
	switch {
	case in.Lag <= 0:
		ps.DrainSeconds = 0
	case in.CompletionRate <= 0:
		ps.DrainSeconds = MaxDrainSeconds
	default:
		ps.DrainSeconds = min(float64(in.Lag)/in.CompletionRate, MaxDrainSeconds)
	}

	var r float64
	switch {
	case in.Latency <= 0 && in.Lag <= 0:
		r = 0 // nothing to do and nothing known: needs no pod
	case in.Latency <= 0 || in.Usable <= 0:
		r = 1 // lag but no completions to measure: ask for what we have
	default:
		production := max(0, in.CompletionRate+in.LagSlope)
		drain := 0.0
		if in.DrainTime > 0 && in.Lag > 0 {
			drain = float64(in.Lag) / in.DrainTime.Seconds()
		}
		needed := (production + drain) * in.Latency.Seconds()
		r = needed / float64(in.Usable)
	}
	if in.HoldBack && r > 1 {
		r, ps.HeldBack = 1, true
	}
	if in.Partitions > 0 && r > float64(in.Partitions) {
		r, ps.Capped = float64(in.Partitions), true
	}
	if math.IsNaN(r) || r < 0 {
		r = 0
	}
	ps.DesiredReplicas = r
	return ps
}

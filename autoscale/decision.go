package autoscale

import (
	"encoding/json"
	"time"
)

// Directions of a Decision. They are metric label values.
const (
	Up   = "up"
	Down = "down"
	Hold = "hold"
)

// Reasons of a Decision: a small fixed set, used as a metric label and in
// log lines.
const (
	// ReasonWarmup: the first sample, or the first after counters went
	// backwards; there is nothing to differentiate yet.
	ReasonWarmup = "warmup"
	// ReasonNoSignal: no record has completed yet, so the sink latency is
	// unknown. The policy holds rather than guess (a sink that fails every
	// call never gets more workers).
	ReasonNoSignal = "no_signal"
	// ReasonSteady: the recommendation equals the current size.
	ReasonSteady = "steady"
	// ReasonDeadBand: the recommendation is within the dead band.
	ReasonDeadBand = "dead_band"
	// ReasonDemand: Little's law on the arrival or completion rate moved the
	// target (up: more records arrive than the pool can serve; down: fewer).
	ReasonDemand = "demand"
	// ReasonBacklog: up to drain records already waiting, or hold a shrink
	// while the queue still grows.
	ReasonBacklog = "backlog"
	// ReasonIdle: down because nothing arrives or completes.
	ReasonIdle = "idle"
	// ReasonWorkersIdle: growth held because workers sit idle (the limit is
	// not the number of workers: e.g. ordering lanes or the fetcher).
	ReasonWorkersIdle = "workers_idle"
	// ReasonStabilising: a shrink held by the scale-down window.
	ReasonStabilising = "stabilising"
	// ReasonReversalGuard: a change of direction soon after a change the
	// other way, held until a second sample agrees.
	ReasonReversalGuard = "reversal_guard"
	// ReasonSinkBottleneck: adding workers raised sink latency or errors
	// instead of throughput: step back, or hold at the learned ceiling.
	ReasonSinkBottleneck = "sink_bottleneck"
	// ReasonSinkErrors: growth held because too many sink calls fail.
	ReasonSinkErrors = "sink_errors"
	// ReasonSinkLimit: held or cut at the sink's declared maximum concurrency.
	ReasonSinkLimit = "sink_limit"
	// ReasonBounds: moved into [Min, Max].
	ReasonBounds = "bounds"
)

// directions and reasons list every label value a Decision can carry, so
// that metric series can be created up front.
var (
	directions = []string{Up, Down, Hold}
	reasons    = []string{
		ReasonWarmup, ReasonNoSignal, ReasonSteady, ReasonDeadBand, ReasonDemand,
		ReasonBacklog, ReasonIdle, ReasonWorkersIdle, ReasonStabilising,
		ReasonReversalGuard, ReasonSinkBottleneck, ReasonSinkErrors,
		ReasonSinkLimit, ReasonBounds,
	}
)

// Decision is what the policy wants, why, and what it saw. The view fields
// are computed over the interval between the previous sample and this one.
type Decision struct {
	// At is the time of the sample this decision answers.
	At time.Time `json:"at"`
	// Target is the wanted pool size.
	Target int `json:"target_workers"`
	// Direction is Up, Down or Hold (Target compared with Current).
	Direction string `json:"direction"`
	// Reason is one of the Reason constants.
	Reason string `json:"reason"`

	// Current is the pool size in the sample.
	Current int `json:"current_workers"`
	// Busy is the number of workers inside a sink call at the sample.
	Busy int `json:"busy_workers"`
	// Depth is the queue depth at the sample.
	Depth int `json:"depth"`
	// Ideal is the unrounded Little's-law recommendation, before bounds,
	// step limit and guards: (DemandRate + max(Depth, Lag)/DrainTime) ×
	// MeanLatency × (1+Headroom). Zero while the latency is unknown.
	Ideal float64 `json:"ideal_workers"`

	// MeanLatency is the sink time per completed record over the interval
	// (dSinkTime/dCompleted); when nothing completed it carries the last
	// known value. JSON: sink_latency_seconds (see MarshalJSON).
	MeanLatency time.Duration `json:"-"`
	// DepthSlope is the least-squares slope of Depth over SlopeWindow, in
	// records per second (positive: the queue grows).
	DepthSlope float64 `json:"depth_slope_per_second"`
	// ArrivalRate (admissions) and CompletionRate are in records per second.
	ArrivalRate    float64 `json:"arrival_rate"`
	CompletionRate float64 `json:"completion_rate"`
	// DemandRate is the rate the pool is sized for, in records per second:
	// the production rate CompletionRate + dLag/dt when the sample reports
	// lag, else ArrivalRate.
	DemandRate float64 `json:"demand_rate"`
	// BusyRatio is the share of worker time spent inside sink calls.
	BusyRatio float64 `json:"busy_ratio"`
	// ErrorRate is the share of sink attempts that failed, estimated as
	// dErrors / (dCompleted + dErrors).
	ErrorRate float64 `json:"error_rate"`
	// SinkBottleneck is true while the policy holds a learned ceiling
	// because adding workers raised sink latency or errors instead of
	// throughput.
	SinkBottleneck bool `json:"sink_bottleneck"`
	// Ceiling is that learned ceiling (0 when none).
	Ceiling int `json:"ceiling_workers"`

	// Pod is the pod scale signal computed from this sample.
	Pod PodSignal `json:"pod"`
}

// MarshalJSON writes the decision with snake_case names (the /debug/flow
// view), MeanLatency as sink_latency_seconds.
func (d Decision) MarshalJSON() ([]byte, error) {
	type plain Decision // without this method
	return json.Marshal(struct {
		plain
		MeanLatencySeconds float64 `json:"sink_latency_seconds"`
	}{plain(d), d.MeanLatency.Seconds()})
}

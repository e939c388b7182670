package sim

import (
	"math"

	"github.com/sluicehq/sluice/autoscale"
)

// Summary is what a run is judged on.
type Summary struct {
	// T90 is the time from the scenario's event to the end of the first
	// interval whose throughput reached 90 % of the oracle's in the same
	// interval, in seconds; -1 if it never did.
	T90 float64 `json:"t90_s"`
	// Share is the throughput as a share of the best achievable:
	// sum over intervals of min(done, oracle) / sum of oracle.
	Share float64 `json:"throughput_share"`
	// Workers and Optimum are the mean pool size and the mean Little's-law
	// optimum over the steady-state window; Ratio is Workers/Optimum.
	Workers float64 `json:"workers_steady"`
	Optimum float64 `json:"optimum_steady"`
	Ratio   float64 `json:"workers_vs_optimum"`
	// Reversals counts changes of direction of the pool size over the run;
	// SteadyReversalsPerMin over the steady-state window.
	Reversals             int     `json:"reversals"`
	SteadyReversalsPerMin float64 `json:"steady_reversals_per_min"`
	// Changes counts resizes over the run.
	Changes int `json:"resizes"`
	// Peak is the highest sink concurrency seen.
	Peak float64 `json:"peak_concurrency"`
	// OverCapacity counts intervals whose peak concurrency exceeded the
	// sink's capacity C. Step is the step the controller took when its pool
	// first went above C, and OverStep counts the intervals whose peak
	// concurrency exceeded C + Step. Zero when the sink has no capacity.
	OverCapacity int `json:"intervals_over_capacity"`
	Step         int `json:"step_over_capacity"`
	OverStep     int `json:"intervals_over_capacity_plus_step"`
	// FinalReplicas is the adaptive controller's pod signal at the end.
	FinalReplicas float64 `json:"desired_replicas_final"`
	// PeakReplicas is its highest value during the run, leaving out samples
	// taken before any record completed (the signal is then 1 by design).
	PeakReplicas float64 `json:"desired_replicas_peak"`
}

func summarise(sc Scenario, cfg autoscale.Config, pts []Point) Summary {
	var s Summary
	s.T90 = -1
	event := sc.Event.Seconds()
	steadyFrom := (sc.Duration - sc.Steady).Seconds()
	var sumMin, sumOracle, sumW, sumOpt float64
	var nSteady int
	lastDir, prevN := 0, -1
	for i, p := range pts {
		sumMin += math.Min(p.Done, p.Oracle)
		sumOracle += p.Oracle
		if s.T90 < 0 && p.T > event && p.Oracle > 0 && p.Done >= 0.9*p.Oracle {
			s.T90 = p.T - event
		}
		if p.T > steadyFrom {
			sumW += float64(p.Workers)
			sumOpt += p.Optimum
			nSteady++
		}
		if prevN >= 0 && p.Workers != prevN {
			s.Changes++
			dir := 1
			if p.Workers < prevN {
				dir = -1
			}
			if lastDir != 0 && dir != lastDir {
				s.Reversals++
				if p.T > steadyFrom {
					s.SteadyReversalsPerMin++
				}
			}
			lastDir = dir
		}
		s.Peak = math.Max(s.Peak, p.Peak)
		if c := sc.Capacity; c > 0 {
			if p.Peak > float64(c)+0.5 {
				s.OverCapacity++
			}
			if s.Step == 0 && p.Workers > c {
				before := cfg.Min
				if i > 0 {
					before = pts[i-1].Workers
				}
				s.Step = max(1, p.Workers-before)
			}
			if s.Step > 0 && p.Peak > float64(c+s.Step)+0.5 {
				s.OverStep++
			}
		}
		if p.Reason != autoscale.ReasonWarmup && p.Reason != autoscale.ReasonNoSignal {
			s.PeakReplicas = math.Max(s.PeakReplicas, p.Replicas)
		}
		prevN = p.Workers
	}
	if sumOracle > 0 {
		s.Share = sumMin / sumOracle
	}
	if nSteady > 0 {
		s.Workers = sumW / float64(nSteady)
		s.Optimum = sumOpt / float64(nSteady)
		if s.Optimum > 0 {
			s.Ratio = s.Workers / s.Optimum
		}
		s.SteadyReversalsPerMin /= sc.Steady.Minutes()
	}
	if len(pts) > 0 {
		s.FinalReplicas = pts[len(pts)-1].Replicas
	}
	return s
}

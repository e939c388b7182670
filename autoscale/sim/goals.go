package sim

import "fmt"

// Goal is one of the goals checked against a comparison.
type Goal struct {
	Scenario string `json:"scenario"`
	Goal     string `json:"goal"`
	Got      string `json:"got"`
	OK       bool   `json:"ok"`
}

// The goals, as the issue states them.
const (
	GoalT90           = 5.0  // seconds after a latency step to reach 90 % of the best throughput
	GoalSteadyBand    = 0.15 // steady-state workers within ±15 % of the optimum
	GoalReversalsRate = 1.0  // at most 1 reversal per minute at steady state
	GoalOverStep      = 1    // intervals above C + step in the saturating case
)

// CheckGoals evaluates the named controller's results against the goals
// ("adaptive" for the policy under test).
func CheckGoals(cmps []Comparison, controller string) []Goal {
	var out []Goal
	for _, c := range cmps {
		var r *Result
		for i := range c.Results {
			if c.Results[i].Controller == controller {
				r = &c.Results[i]
			}
		}
		if r == nil {
			continue
		}
		s, name := r.Summary, c.Scenario.Name
		if name == "latency-step" {
			out = append(out, Goal{name, fmt.Sprintf("throughput >= 90%% of optimum within %.0f s of the step", GoalT90),
				fmt.Sprintf("%.1f s", s.T90), s.T90 >= 0 && s.T90 <= GoalT90})
		}
		out = append(out, Goal{name, fmt.Sprintf("steady-state workers within ±%.0f%% of optimum", 100*GoalSteadyBand),
			fmt.Sprintf("%.1f vs %.1f (%+.1f%%)", s.Workers, s.Optimum, 100*(s.Ratio-1)),
			s.Ratio >= 1-GoalSteadyBand && s.Ratio <= 1+GoalSteadyBand})
		out = append(out, Goal{name, fmt.Sprintf("<= %.0f reversal per minute at steady state", GoalReversalsRate),
			fmt.Sprintf("%.1f/min", s.SteadyReversalsPerMin), s.SteadyReversalsPerMin <= GoalReversalsRate})
		if c.Scenario.Capacity > 0 {
			out = append(out, Goal{name, fmt.Sprintf("concurrency above C+step for at most %d interval", GoalOverStep),
				fmt.Sprintf("%d intervals (C=%d, step %d, peak %.0f; above C: %d)", s.OverStep, c.Scenario.Capacity, s.Step, s.Peak, s.OverCapacity),
				s.OverStep <= GoalOverStep})
		}
	}
	return out
}

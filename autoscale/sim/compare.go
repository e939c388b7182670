package sim

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/sluicehq/sluice/autoscale"
)

// Controllers returns the controllers every scenario is run with: the
// adaptive policy, fixed pools at Min and Max, and the naive depth threshold.
func Controllers(cfg autoscale.Config) ([]Controller, error) {
	a, err := NewAdaptive(cfg)
	if err != nil {
		return nil, err
	}
	cfg = a.p.Config()
	return []Controller{
		a,
		Fixed{Label: "fixed-min", N: cfg.Min},
		Fixed{Label: "fixed-max", N: cfg.Max},
		NewThreshold(),
	}, nil
}

// Comparison is every controller run through one scenario.
type Comparison struct {
	Scenario Scenario
	Results  []Result
}

// Compare runs each scenario with fresh controllers.
func Compare(scenarios []Scenario, o Options) ([]Comparison, error) {
	var out []Comparison
	for _, sc := range scenarios {
		cs, err := Controllers(o.Config)
		if err != nil {
			return nil, err
		}
		cmp := Comparison{Scenario: sc}
		for _, c := range cs {
			r, err := Run(sc, c, o)
			if err != nil {
				return nil, err
			}
			cmp.Results = append(cmp.Results, r)
		}
		out = append(out, cmp)
	}
	return out, nil
}

// WriteTable prints one row per scenario and controller.
func WriteTable(w io.Writer, cmps []Comparison) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tcontroller\tT90 (s)\tthroughput\tworkers\toptimum\tw/opt\treversals\tsteady rev/min\tpeak conc\tpods peak/end\t")
	for _, c := range cmps {
		for _, r := range c.Results {
			s := r.Summary
			t90 := "never"
			if s.T90 >= 0 {
				t90 = fmt.Sprintf("%.0f", s.T90)
			}
			pods := "-"
			if r.Controller == "adaptive" {
				pods = fmt.Sprintf("%.2f/%.2f", s.PeakReplicas, s.FinalReplicas)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f%%\t%.1f\t%.1f\t%.2f\t%d\t%.1f\t%.0f\t%s\t\n",
				c.Scenario.Name, r.Controller, t90, 100*s.Share, s.Workers, s.Optimum, s.Ratio,
				s.Reversals, s.SteadyReversalsPerMin, s.Peak, pods)
		}
	}
	return tw.Flush()
}

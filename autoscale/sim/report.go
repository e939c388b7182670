package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// Report is the machine-readable result of a comparison: the last line
// `sluice-dev bench autoscale` prints.
type Report struct {
	Seed      uint64           `json:"seed"`
	Scenarios []ScenarioReport `json:"scenarios"`
	Goals     []Goal           `json:"goals"` // the adaptive controller's
	OK        bool             `json:"goals_met"`
}

// ScenarioReport holds per-controller figures for one scenario.
type ScenarioReport struct {
	Name        string             `json:"name"`
	Title       string             `json:"title"`
	Capacity    int                `json:"sink_capacity,omitempty"`
	Controllers map[string]Summary `json:"controllers"`
}

// NewReport builds the Report for cmps.
func NewReport(seed uint64, cmps []Comparison) Report {
	r := Report{Seed: seed, Goals: CheckGoals(cmps, "adaptive"), OK: true}
	for _, c := range cmps {
		sr := ScenarioReport{Name: c.Scenario.Name, Title: c.Scenario.Title, Capacity: c.Scenario.Capacity,
			Controllers: map[string]Summary{}}
		for _, res := range c.Results {
			sr.Controllers[res.Controller] = res.Summary
		}
		r.Scenarios = append(r.Scenarios, sr)
	}
	for _, g := range r.Goals {
		r.OK = r.OK && g.OK
	}
	return r
}

// WriteJSON writes r as one line.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w) // one line, with a newline
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

// WriteGoals prints the goals as a table.
func WriteGoals(w io.Writer, goals []Goal) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tgoal\tgot\t")
	for _, g := range goals {
		mark := "ok"
		if !g.OK {
			mark = "MISSED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", g.Scenario, g.Goal, g.Got, mark)
	}
	return tw.Flush()
}

package sim

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/autoscale"
)

// compareAll runs the standard comparison once per test binary.
var compared []Comparison

func compareAll(t *testing.T) []Comparison {
	t.Helper()
	if compared == nil {
		cmps, err := Compare(Scenarios(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		compared = cmps
	}
	return compared
}

func result(t *testing.T, cmps []Comparison, scenario, controller string) Summary {
	t.Helper()
	for _, c := range cmps {
		if c.Scenario.Name != scenario {
			continue
		}
		for _, r := range c.Results {
			if r.Controller == controller {
				return r.Summary
			}
		}
	}
	t.Fatalf("no result for %s/%s", scenario, controller)
	return Summary{}
}

// The goals, on the standard scenarios.
func TestGoals(t *testing.T) {
	for _, g := range CheckGoals(compareAll(t), "adaptive") {
		if !g.OK {
			t.Errorf("%s: %s: got %s", g.Scenario, g.Goal, g.Got)
		}
	}
}

// The goals hold for other seeds too, not just the one in the docs.
func TestGoalsOtherSeeds(t *testing.T) {
	if testing.Short() {
		t.Skip("several simulated hours")
	}
	for _, seed := range []uint64{2, 3} {
		var cmps []Comparison
		for _, sc := range Scenarios() {
			a, err := NewAdaptive(autoscale.Config{})
			if err != nil {
				t.Fatal(err)
			}
			r, err := Run(sc, a, Options{Seed: seed})
			if err != nil {
				t.Fatal(err)
			}
			cmps = append(cmps, Comparison{Scenario: sc, Results: []Result{r}})
		}
		for _, g := range CheckGoals(cmps, "adaptive") {
			if !g.OK {
				t.Errorf("seed %d: %s: %s: got %s", seed, g.Scenario, g.Goal, g.Got)
			}
		}
	}
}

// The goals are real checks: a crippled policy misses them.
func TestGoalsCanFail(t *testing.T) {
	scs := Scenarios()
	tests := []struct {
		name     string
		cfg      autoscale.Config
		scenario Scenario
		goal     string
	}{
		{"one worker per step is too slow after a latency step", autoscale.Config{MaxStep: 1}, scs[0], "within 5 s"},
		{"50 % headroom is outside the steady band", autoscale.Config{Headroom: 0.5}, scs[0], "steady-state workers"},
		{"no scale-down window flaps", autoscale.Config{ScaleDownWindow: time.Nanosecond, DeadBand: 1e-9}, flapping(), "reversal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := NewAdaptive(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			r, err := Run(tt.scenario, a, Options{Config: tt.cfg})
			if err != nil {
				t.Fatal(err)
			}
			missed := false
			for _, g := range CheckGoals([]Comparison{{Scenario: tt.scenario, Results: []Result{r}}}, "adaptive") {
				if strings.Contains(g.Goal, tt.goal) && !g.OK {
					missed = true
				}
			}
			if !missed {
				t.Errorf("goal %q met with %+v: %+v", tt.goal, tt.cfg, r.Summary)
			}
		})
	}
}

// The naive depth threshold, which knows nothing of the sink, misses the
// saturation goal and the reversal goal.
func TestGoalsThresholdMisses(t *testing.T) {
	missed := map[string]bool{}
	for _, g := range CheckGoals(compareAll(t), "depth-threshold") {
		if !g.OK {
			missed[g.Scenario+": "+g.Goal] = true
		}
	}
	for _, want := range []string{
		"saturating: concurrency above C+step for at most 1 interval",
		"latency-step: <= 1 reversal per minute at steady state",
		"latency-step: throughput >= 90% of optimum within 5 s of the step",
	} {
		if !missed[want] {
			t.Errorf("the naive threshold met %q", want)
		}
	}
}

// flapping is a scenario with a slow, noisy arrival rate around a small
// pool, where a policy without stabilisation reverses often.
func flapping() Scenario {
	return Scenario{
		Name: "flapping", Title: "noisy 200 rec/s, sink 20 ms", Duration: 120 * sec, Event: 0,
		Arrival: func(t time.Duration) float64 {
			// ±30 % every 3 s
			if (t/(3*sec))%2 == 0 {
				return 260
			}
			return 140
		},
		Latency: fixedLatency(20 * time.Millisecond),
	}
}

// The adaptive controller against the baselines, on claims that hold by a
// wide margin.
func TestAgainstBaselines(t *testing.T) {
	cmps := compareAll(t)
	for _, c := range cmps {
		a := result(t, cmps, c.Scenario.Name, "adaptive")
		if a.Share < 0.9 {
			t.Errorf("%s: adaptive throughput share %.3f, want >= 0.9", c.Scenario.Name, a.Share)
		}
		if min := result(t, cmps, c.Scenario.Name, "fixed-min"); a.Share < 5*min.Share {
			t.Errorf("%s: adaptive share %.3f not far above fixed-min %.3f", c.Scenario.Name, a.Share, min.Share)
		}
		if th := result(t, cmps, c.Scenario.Name, "depth-threshold"); a.Reversals > th.Reversals && c.Scenario.Name != "saturating" {
			t.Errorf("%s: adaptive reversed %d times, the naive threshold %d", c.Scenario.Name, a.Reversals, th.Reversals)
		}
	}
	// A saturating sink: more workers only hurt. Fixed max and the naive
	// threshold drive it to 256 and get a quarter of the throughput.
	a := result(t, cmps, "saturating", "adaptive")
	for _, name := range []string{"fixed-max", "depth-threshold"} {
		if b := result(t, cmps, "saturating", name); a.Share < 3*b.Share {
			t.Errorf("saturating: adaptive share %.3f, %s %.3f: want 3× better", a.Share, name, b.Share)
		}
	}
	if a.FinalReplicas != 1 {
		t.Errorf("saturating: pod signal %v, want it held back at 1 (more pods would only hurt the sink)", a.FinalReplicas)
	}
	if s := result(t, cmps, "latency-step", "adaptive"); s.FinalReplicas <= 0 || s.FinalReplicas >= 1 {
		t.Errorf("latency-step: pod signal %v, want a share below one pod (50 of 256 workers)", s.FinalReplicas)
	}
}

// A sink whose throughput is flat beyond its capacity (latency grows in
// proportion), climbed with a fixed step: above C+step for at most one
// interval (the step that crosses C may look worth it, the next cannot).
func TestSaturatingFlatSink(t *testing.T) {
	for _, step := range []int{2, 4, 8} {
		sc := Scenario{
			Name: "saturating-flat", Duration: 300 * sec, Capacity: 24,
			Arrival: constant(8000),
			Latency: func(_ time.Duration, c float64) time.Duration {
				return time.Duration(float64(4*time.Millisecond) * math.Max(1, c/24))
			},
		}
		cfg := autoscale.Config{MaxStep: step}
		a, err := NewAdaptive(cfg)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Run(sc, a, Options{Config: cfg})
		if err != nil {
			t.Fatal(err)
		}
		s := r.Summary
		if s.OverStep > GoalOverStep || s.Peak > float64(sc.Capacity+2*step)+0.5 {
			t.Errorf("step %d: peak %.0f with C=%d, %d intervals above C+step", step, s.Peak, sc.Capacity, s.OverStep)
		}
		if s.Ratio < 0.85 || s.Ratio > 1.15 || s.Share < 0.9 {
			t.Errorf("step %d: steady workers %.1f vs %.1f, share %.3f", step, s.Workers, s.Optimum, s.Share)
		}
	}
}

func TestDeterministic(t *testing.T) {
	sc := Scenarios()[1]
	run := func() Result {
		a, _ := NewAdaptive(autoscale.Config{})
		r, err := Run(sc, a, Options{Seed: 7})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if a, b := run(), run(); !reflect.DeepEqual(a, b) {
		t.Error("two runs with one seed differ")
	}
}

func TestReportAndSVG(t *testing.T) {
	cmps := compareAll(t)
	var b bytes.Buffer
	rep := NewReport(1, cmps)
	if err := rep.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(b.String(), "\n"); n != 1 {
		t.Errorf("JSON report spans %d lines, want 1", n)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Scenarios) != len(cmps) || len(back.Scenarios[0].Controllers) != 4 || !back.OK {
		t.Errorf("report = %+v", back)
	}

	for _, c := range cmps {
		b.Reset()
		if err := WriteSVG(&b, c, 256); err != nil {
			t.Fatal(err)
		}
		d := xml.NewDecoder(bytes.NewReader(b.Bytes()))
		lines := 0
		for {
			tok, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: SVG is not well-formed XML: %v", c.Scenario.Name, err)
			}
			if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
				lines++
			}
		}
		if want := 3*len(c.Results) + 2; lines != want {
			t.Errorf("%s: %d polylines, want %d", c.Scenario.Name, lines, want)
		}
	}
}

// A sink at its capacity slows down 25x (as the demo's sink does): the
// pool may overshoot while the change is under way, but settles at the
// sink's limit, not at Max. Onsets on and between sampling instants, three
// seeds. (The pool went to 64, 8x the limit, and stayed there while each
// increase's latency rise excused the next.)
func TestSinkSlowsAtItsCapacity(t *testing.T) {
	const c = 8
	for _, onset := range []time.Duration{30 * sec, 30*sec + 500*time.Millisecond} {
		for _, seed := range []uint64{1, 2, 3} {
			sc := Scenario{
				Name: "slows-at-capacity", Duration: 90 * sec, Capacity: c,
				Arrival: constant(30000), // 6.3 workers at 0.2 ms, with headroom 7-8
				Latency: func(t time.Duration, n float64) time.Duration {
					base := 200 * time.Microsecond
					if t >= onset {
						base = 5 * time.Millisecond
					}
					return time.Duration(float64(base) * math.Max(1, n/c))
				},
			}
			cfg := autoscale.Config{Max: 64}
			a, err := NewAdaptive(cfg)
			if err != nil {
				t.Fatal(err)
			}
			r, err := Run(sc, a, Options{Seed: seed, Config: cfg})
			if err != nil {
				t.Fatal(err)
			}
			at, peak, sum, k := 0, 0, 0, 0
			for _, p := range r.Points {
				if p.T <= onset.Seconds() {
					at = p.Workers
				}
				peak = max(peak, p.Workers)
				if p.T > 60 {
					sum += p.Workers
					k++
				}
			}
			mean := float64(sum) / float64(k)
			t.Logf("onset %v, seed %d: %d workers at the onset, peak %d, mean %.1f over the last 30 s", onset, seed, at, peak, mean)
			// One doubling is no test of the sink (its latency was rising
			// on its own), the next is judged: at most 4x the pool at the
			// onset, for one interval.
			if peak > 4*at || mean < c || mean > 1.5*c {
				t.Errorf("onset %v, seed %d: %d workers at the onset, peak %d, mean %.1f over the last 30 s; want peak <= %d, mean in [%d, %.0f]",
					onset, seed, at, peak, mean, 4*at, c, 1.5*c)
			}
		}
	}
}

package sim

import (
	"fmt"

	"github.com/sluicehq/sluice/autoscale"
)

// Adaptive runs the real autoscale.Policy.
type Adaptive struct {
	p    *autoscale.Policy
	last autoscale.Decision
}

// NewAdaptive returns the adaptive controller for cfg.
func NewAdaptive(cfg autoscale.Config) (*Adaptive, error) {
	p, err := autoscale.NewPolicy(sized(cfg))
	if err != nil {
		return nil, err
	}
	return &Adaptive{p: p}, nil
}

func (a *Adaptive) Name() string { return "adaptive" }

func (a *Adaptive) Next(s autoscale.Sample) int {
	a.last = a.p.Decide(s)
	return a.last.Target
}

// LastDecision is the policy's latest decision.
func (a *Adaptive) LastDecision() autoscale.Decision { return a.last }

// Fixed is a pool that never changes size.
type Fixed struct {
	Label string
	N     int
}

func (f Fixed) Name() string              { return f.Label }
func (f Fixed) Initial() int              { return f.N }
func (f Fixed) Next(autoscale.Sample) int { return f.N }
func (f Fixed) String() string            { return fmt.Sprintf("%s(%d)", f.Label, f.N) }

// Threshold is the naive queue-depth controller that is often written first:
// above High waiting records add Step workers, below Low remove one. Bounds
// are applied by the harness.
type Threshold struct {
	High, Low, Step int
}

// NewThreshold returns the naive controller used in the comparison:
// add 4 workers above 1000 waiting records, remove 1 below 100.
func NewThreshold() *Threshold { return &Threshold{High: 1000, Low: 100, Step: 4} }

func (t *Threshold) Name() string { return "depth-threshold" }

func (t *Threshold) Next(s autoscale.Sample) int {
	n := s.Workers
	switch {
	case s.Depth > t.High:
		n += t.Step
	case s.Depth < t.Low && n > 1:
		n--
	}
	return n
}

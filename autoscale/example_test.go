package autoscale_test

import (
	"fmt"
	"time"

	"github.com/sluicehq/sluice/autoscale"
)

// A sink that slows from 1 ms to 10 ms per record while 2000 records/s keep
// arriving: the policy follows Little's law up (2000/s × 10 ms × 1.05, plus
// the queue that built up), adding at most max(4, n) workers per step.
func ExamplePolicy_Decide() {
	p, err := autoscale.NewPolicy(autoscale.Config{})
	if err != nil {
		panic(err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := autoscale.Sample{At: at, Workers: 3}
	latency := time.Millisecond
	for i := range 6 {
		if i == 2 {
			latency = 10 * time.Millisecond
		}
		if i > 0 {
			// One second: 2000 arrive; the pool completes what it can.
			done := min(2000, float64(s.Workers)/latency.Seconds())
			s.At = s.At.Add(time.Second)
			s.Arrived += 2000
			s.Completed += uint64(done)
			s.SinkTime += time.Duration(done) * latency
			s.BusyTime += time.Duration(done) * latency
			s.Depth += 2000 - int(done)
			s.Busy = s.Workers
		}
		d := p.Decide(s)
		fmt.Printf("%d → %d %s (%s)\n", d.Current, d.Target, d.Direction, d.Reason)
		s.Workers = d.Target
	}
	// Output:
	// 3 → 3 hold (warmup)
	// 3 → 3 hold (steady)
	// 3 → 7 up (demand)
	// 7 → 14 up (demand)
	// 14 → 25 up (demand)
	// 25 → 25 hold (steady)
}

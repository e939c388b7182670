package sim

import (
	"math"
	"time"
)

const sec = time.Second

func constant(v float64) func(time.Duration) float64 { return func(time.Duration) float64 { return v } }

func fixedLatency(d time.Duration) func(time.Duration, float64) time.Duration {
	return func(time.Duration, float64) time.Duration { return d }
}

// Scenarios returns the standard scenarios, in the order they are reported.
func Scenarios() []Scenario {
	return []Scenario{
		{
			Name:     "latency-step",
			Title:    "sink latency steps 1 ms -> 10 ms at t=60s, 5000 rec/s offered",
			Duration: 180 * sec,
			Event:    60 * sec,
			Arrival:  constant(5000),
			Latency: func(t time.Duration, _ float64) time.Duration {
				if t < 60*sec {
					return time.Millisecond
				}
				return 10 * time.Millisecond
			},
		},
		{
			Name:     "burst",
			Title:    "arrivals 2000 -> 20000 rec/s for 30 s at t=60s, sink 5 ms",
			Duration: 210 * sec,
			Event:    60 * sec,
			Arrival: func(t time.Duration) float64 {
				if t >= 60*sec && t < 90*sec {
					return 20000
				}
				return 2000
			},
			Latency: fixedLatency(5 * time.Millisecond),
		},
		{
			Name:     "saturating",
			Title:    "sink capacity C=16: latency 5 ms x (c/16)^1.5 above it; 5000 rec/s offered (more than it can take)",
			Duration: 300 * sec,
			Event:    0,
			Arrival:  constant(5000),
			Latency: func(_ time.Duration, c float64) time.Duration {
				return time.Duration(float64(5*time.Millisecond) * math.Pow(math.Max(1, c/16), 1.5))
			},
			Capacity: 16,
		},
		{
			Name:     "error-spike",
			Title:    "30 % of sink calls fail for 20 s at t=60s, 5000 rec/s offered, sink 10 ms",
			Duration: 180 * sec,
			Event:    60 * sec,
			Arrival:  constant(5000),
			Latency:  fixedLatency(10 * time.Millisecond),
			Errors: func(t time.Duration, _ float64) float64 {
				if t >= 60*sec && t < 80*sec {
					return 0.3
				}
				return 0
			},
		},
		{
			Name:     "idle",
			Title:    "5000 rec/s, nothing from t=60s to t=120s, then 5000 rec/s again; sink 10 ms",
			Duration: 240 * sec,
			Event:    120 * sec,
			Arrival: func(t time.Duration) float64 {
				if t >= 60*sec && t < 120*sec {
					return 0
				}
				return 5000
			},
			Latency: fixedLatency(10 * time.Millisecond),
		},
	}
}

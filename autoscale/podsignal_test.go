package autoscale

import (
	"testing"
	"time"
)

func TestPodSignal(t *testing.T) {
	ms10 := 10 * time.Millisecond
	tests := []struct {
		name     string
		in       PodInput
		replicas float64
		drain    float64
		heldBack bool
		capped   bool
	}{
		{
			name: "idle member with nothing known needs no pod",
			in:   PodInput{Usable: 100, DrainTime: time.Minute},
		},
		{
			name:     "lag but nothing completed: ask for what it has",
			in:       PodInput{Lag: 5000, Usable: 100, DrainTime: time.Minute},
			replicas: 1, drain: MaxDrainSeconds,
		},
		{
			name: "keeping up at half a pod's capacity",
			// 5000/s × 10ms = 50 workers of 100
			in:       PodInput{CompletionRate: 5000, Latency: ms10, Usable: 100, DrainTime: time.Minute},
			replicas: 0.5,
		},
		{
			name: "falling behind: production = completions + lag slope, plus lag/DrainTime",
			// (10000 + 2000 + 60000/60) × 10ms = 130 workers of 100
			in:       PodInput{Lag: 60000, LagSlope: 2000, CompletionRate: 10000, Latency: ms10, Usable: 100, DrainTime: time.Minute},
			replicas: 1.3, drain: 6,
		},
		{
			name:     "capped at the member's partitions",
			in:       PodInput{Lag: 600000, CompletionRate: 10000, Latency: ms10, Usable: 10, Partitions: 3, DrainTime: time.Minute},
			replicas: 3, drain: 60, capped: true,
		},
		{
			name:     "no partition cap when Partitions <= 0",
			in:       PodInput{Lag: 600000, CompletionRate: 10000, Latency: ms10, Usable: 10, DrainTime: time.Minute},
			replicas: 20, drain: 60,
		},
		{
			name:     "sink is the bottleneck: never more than itself",
			in:       PodInput{Lag: 600000, CompletionRate: 10000, Latency: ms10, Usable: 10, Partitions: 3, HoldBack: true, DrainTime: time.Minute},
			replicas: 1, drain: 60, heldBack: true,
		},
		{
			name:     "hold back does not raise a small share",
			in:       PodInput{CompletionRate: 1000, Latency: ms10, Usable: 100, HoldBack: true, DrainTime: time.Minute},
			replicas: 0.1,
		},
		{
			name:     "shrinking lag lowers the production estimate, never below zero",
			in:       PodInput{Lag: 1000, LagSlope: -50000, CompletionRate: 10000, Latency: ms10, Usable: 100, DrainTime: 10 * time.Second},
			replicas: 0.01, drain: 0.1, // (0 + 1000/10) × 10ms = 1 worker of 100
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NewPodSignal(tt.in)
			if !near(got.DesiredReplicas, tt.replicas) || !near(got.DrainSeconds, tt.drain) ||
				got.HeldBack != tt.heldBack || got.Capped != tt.capped {
				t.Errorf("NewPodSignal(%+v) = %+v; want replicas %v, drain %v, heldBack %v, capped %v",
					tt.in, got, tt.replicas, tt.drain, tt.heldBack, tt.capped)
			}
		})
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

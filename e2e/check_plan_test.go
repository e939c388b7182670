package e2e

import (
	"reflect"
	"testing"
)

// TestCheckPlanDeterministic: a seed is a schedule; replaying it replays
// the same faults, records and sink behaviour.
func TestCheckPlanDeterministic(t *testing.T) {
	for seed := uint64(0); seed < 50; seed++ {
		for _, src := range []string{"kafka", "kafka-share", "jetstream"} {
			a, b := NewPlan(seed, src, PlanOptions{}), NewPlan(seed, src, PlanOptions{})
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("seed %d %s: two plans differ", seed, src)
			}
			if len(a.Keys) != a.Records || len(a.Sizes) != a.Records {
				t.Fatalf("seed %d: %d keys, %d sizes for %d records", seed, len(a.Keys), len(a.Sizes), a.Records)
			}
			// Every step names a member that exists and can take it.
			alive := map[string]bool{}
			for _, m := range a.Initial {
				alive[m] = true
			}
			for _, s := range a.Steps {
				switch s.Kind {
				case StepJoin:
					alive[s.Member] = true
				case StepLeave, StepKill:
					if !alive[s.Member] {
						t.Fatalf("seed %d: %s of a member not running", seed, s)
					}
					delete(alive, s.Member)
				case StepFreeze, StepBlackhole:
					if !alive[s.Member] || s.Dur <= checkSessionTimeout {
						t.Fatalf("seed %d: %s: not running, or not longer than the session timeout", seed, s)
					}
				}
				if s.At+s.Dur > a.Length+checkSessionTimeout+2e9 {
					t.Fatalf("seed %d: %s ends after the schedule", seed, s)
				}
			}
			if len(alive) == 0 {
				t.Fatalf("seed %d: no member left at the end", seed)
			}
		}
	}
	if reflect.DeepEqual(NewPlan(1, "kafka", PlanOptions{}), NewPlan(2, "kafka", PlanOptions{})) {
		t.Fatal("seeds 1 and 2 give the same plan")
	}
}

// TestCheckPlanShare: a share group's plan is the consumer group's plan of
// the same seed (records, faults, sink spans) with ordering none, so a seed
// found on one replays its faults on the other.
func TestCheckPlanShare(t *testing.T) {
	for seed := uint64(0); seed < 50; seed++ {
		k, s := NewPlan(seed, "kafka", PlanOptions{}), NewPlan(seed, "kafka-share", PlanOptions{})
		if s.Ordering != "none" {
			t.Fatalf("seed %d: share plan ordering %q, want none", seed, s.Ordering)
		}
		k.Source, k.Ordering = s.Source, s.Ordering
		if !reflect.DeepEqual(k, s) {
			t.Fatalf("seed %d: the share plan differs from the kafka plan beyond source and ordering", seed)
		}
	}
}

// TestCheckPlanSummary prints what the first seeds cover (go test -v -run Summary).
func TestCheckPlanSummary(t *testing.T) {
	for seed := uint64(1); seed <= 40; seed++ {
		for _, src := range []string{"kafka", "jetstream"} {
			p := NewPlan(seed, src, PlanOptions{})
			kinds := map[string]int{}
			for _, s := range p.Steps {
				k := string(s.Kind)
				if s.Kind == StepSink {
					k = string(s.Mode)
				}
				kinds[k]++
			}
			t.Logf("%s seed %2d: %-9s large=%d clean=%v poison=%d %v", src, seed, p.Ordering, p.LargeCount, p.Clean, len(p.Poison), kinds)
		}
	}
}

// checkTestPlan is the plan TestCheckSmoke runs: short, with a crash, a
// silent member and sink faults.
var checkTestPlan = PlanOptions{Records: 600, Length: 16e9}

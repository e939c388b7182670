package autoscale

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestDecisionJSON: the decision /debug/flow shows is the Decision itself,
// in snake_case, latency in seconds; a new field without a JSON name fails.
func TestDecisionJSON(t *testing.T) {
	for _, typ := range []reflect.Type{reflect.TypeFor[Decision](), reflect.TypeFor[PodSignal]()} {
		for i := range typ.NumField() {
			if f := typ.Field(i); f.Tag.Get("json") == "" {
				t.Errorf("%s.%s has no json tag", typ.Name(), f.Name)
			}
		}
	}
	d := Decision{Target: 7, Current: 5, Direction: Up, MeanLatency: 250 * time.Millisecond,
		Pod: PodSignal{DesiredReplicas: 2.5}}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	pod, _ := m["pod"].(map[string]any)
	if m["target_workers"] != 7.0 || m["current_workers"] != 5.0 || m["direction"] != "up" ||
		m["sink_latency_seconds"] != 0.25 || pod["desired_replicas"] != 2.5 {
		t.Errorf("decision JSON %s", b)
	}
	if strings.Contains(string(b), "MeanLatency") || strings.Contains(string(b), "250000000") {
		t.Errorf("latency in nanoseconds or under its Go name: %s", b)
	}
}

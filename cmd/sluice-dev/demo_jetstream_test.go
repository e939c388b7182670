package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestDemoSource(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, ""},
		{[]string{"--duration", "5s"}, ""},
		{[]string{"--source", "jetstream", "--duration", "5s"}, "jetstream"},
		{[]string{"--duration=5s", "-source=jetstream"}, "jetstream"},
		{[]string{"--source=kafka"}, "kafka"},
		{[]string{"--", "--source", "jetstream"}, ""},
	} {
		if got := demoSource(tc.args); got != tc.want {
			t.Errorf("demoSource(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestDemoJetStreamLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a few seconds")
	}
	var stdout, stderr bytes.Buffer
	code := demoJetStream(context.Background(), []string{"--source", "jetstream", "--duration", "3s", "--rate", "500"},
		&stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var res demoJetStreamResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("last line is not the JSON summary: %v\n%s", err, stdout.String())
	}
	if res.Produced == 0 || res.Lost != 0 || res.Duplicates != 0 || res.Pulls == 0 {
		t.Errorf("summary: %+v", res)
	}
}

func TestBenchNATSPrintsRatio(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a few seconds")
	}
	var stdout, stderr bytes.Buffer
	code := benchNATS(context.Background(), []string{"-records", "3000", "-rounds", "1"}, nil, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var res map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("last line is not one JSON object: %v\n%s", err, stdout.String())
	}
	if r, ok := res["ratio"].(float64); !ok || r <= 0 {
		t.Errorf("ratio %v in %v", res["ratio"], res)
	}
}

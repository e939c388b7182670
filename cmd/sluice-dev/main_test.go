package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestDemoReportsEveryRecordDelivered(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo for 6 s")
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"demo", "--duration", "6s"}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("demo exit %d; stderr:\n%s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var res demoResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("last line is not the JSON summary: %v\n%s", err, stdout.String())
	}
	if res.Produced == 0 || res.Lost != 0 || res.Delivered < int(res.Produced) {
		t.Errorf("summary %+v: want records produced, none lost, all delivered", res)
	}
	if res.PeakWindowBytes > res.BudgetBytes || res.PeakWindowRecords > res.BudgetRecords {
		t.Errorf("window peaked over its budget: %+v", res)
	}
}

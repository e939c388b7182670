package charttest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// The metrics Sluice exports that the dashboard and the autoscalers may use
// (names fixed by the service; see docs/KUBERNETES.md).
var sluiceMetrics = []string{
	"sluice_records_fetched_total", "sluice_records_delivered_total", "sluice_records_failed_total",
	"sluice_records_dead_lettered_total", "sluice_window_records", "sluice_window_bytes",
	"sluice_window_max_records", "sluice_window_max_bytes", "sluice_fetch_paused_partitions",
	"sluice_fetch_pauses_total", "sluice_pool_workers", "sluice_pool_busy_workers",
	"sluice_autoscale_target_workers", "sluice_sink_latency_seconds", "sluice_consumer_lag_records",
	"sluice_autoscale_desired_replicas", "sluice_autoscale_drain_seconds", "sluice_commits_total",
}

// TestDashboard: the chart ships docs/grafana/sluice.json byte for byte, it
// is valid dashboard JSON, every query uses only Sluice's metric names, and
// it shows what the issue asks for.
func TestDashboard(t *testing.T) {
	src, err := os.ReadFile("../../docs/grafana/sluice.json")
	if err != nil {
		t.Fatal(err)
	}
	shipped, err := os.ReadFile(filepath.Join(chartDir, "dashboards", "sluice.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(src, shipped) {
		t.Fatalf("helm/sluice/dashboards/sluice.json differs from docs/grafana/sluice.json: cp docs/grafana/sluice.json helm/sluice/dashboards/")
	}
	var dash struct {
		UID    string `json:"uid"`
		Title  string `json:"title"`
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(src, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if dash.UID == "" || dash.Title == "" {
		t.Errorf("dashboard without uid or title")
	}
	metricName := regexp.MustCompile(`\bsluice_[a-z_]+`)
	used := map[string]bool{}
	var titles []string
	for _, p := range dash.Panels {
		titles = append(titles, strings.ToLower(p.Title))
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range metricName.FindAllString(tg.Expr, -1) {
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
				if !slices.Contains(sluiceMetrics, base) {
					t.Errorf("panel %q queries %s, which Sluice does not export", p.Title, m)
				}
				used[base] = true
			}
			if strings.Count(tg.Expr, "(") != strings.Count(tg.Expr, ")") || strings.Count(tg.Expr, "{") != strings.Count(tg.Expr, "}") {
				t.Errorf("panel %q: unbalanced query %q", p.Title, tg.Expr)
			}
		}
	}
	for _, want := range []string{"throughput", "window fill", "paused partitions", "workers vs target", "sink latency", "lag", "dead letter"} {
		if !slices.ContainsFunc(titles, func(s string) bool { return strings.Contains(s, want) }) {
			t.Errorf("no panel about %q (titles: %v)", want, titles)
		}
	}
	for _, m := range sluiceMetrics {
		if !used[m] {
			t.Errorf("the dashboard does not show %s", m)
		}
	}

	// In the chart: a ConfigMap with the sidecar's label and the JSON as is.
	vals := merge(readValues(t, "default"), map[string]any{"grafanaDashboard": map[string]any{"enabled": true}})
	r, err := render(t, loadChart(t), vals, nil)
	if err != nil {
		t.Fatal(err)
	}
	var objs []object
	for _, d := range r.docs {
		o, err := decode(t, d)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o)
	}
	cms := find[*corev1.ConfigMap](objs)
	if len(cms) != 1 {
		t.Fatalf("want one dashboard ConfigMap, got %d", len(cms))
	}
	if cms[0].Labels["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap lacks the sidecar label grafana_dashboard=1: %v", cms[0].Labels)
	}
	if got := cms[0].Data["sluice.json"]; got != strings.TrimRight(string(src), "\n") {
		t.Errorf("the ConfigMap's sluice.json is not the dashboard file")
	}
}

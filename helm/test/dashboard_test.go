package charttest

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// TestDashboard: the chart ships docs/grafana/sluice.json byte for byte, it
// is valid dashboard JSON with a title and a query in every panel, and each
// release's ConfigMap gives it a uid, a title and a key of its own, so two
// releases never replace each other's dashboard. Which metrics the queries
// name is not checked here against a list: e2e/monitoring_test.go has a real
// Prometheus evaluate every query against the real binary.
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
	type dashboard struct {
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
	var dash dashboard
	if err := json.Unmarshal(src, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if dash.UID == "" || dash.Title == "" {
		t.Errorf("dashboard without uid or title")
	}
	for _, p := range dash.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
	}

	// In the chart: a ConfigMap per release with the sidecar's label, the
	// JSON as it is but for its uid and title.
	vals := merge(readValues(t, "default"), map[string]any{"grafanaDashboard": map[string]any{"enabled": true}})
	ch := loadChart(t)
	uids := map[string]string{}
	for _, release := range []string{releaseName, releaseName + "-eu"} {
		r, err := renderAs(t, release, ch, vals, nil)
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
		if len(cms[0].Data) != 1 {
			t.Fatalf("dashboard ConfigMap: want one key, got %d", len(cms[0].Data))
		}
		for key, got := range cms[0].Data {
			if !strings.Contains(key, release) || !strings.HasSuffix(key, ".json") {
				t.Errorf("dashboard key %q does not name the release %s", key, release)
			}
			var d dashboard
			if err := json.Unmarshal([]byte(got), &d); err != nil {
				t.Fatalf("the ConfigMap's dashboard: %v", err)
			}
			if len(d.UID) == 0 || len(d.UID) > 40 || d.UID == dash.UID {
				t.Errorf("release %s: dashboard uid %q: want one of its own, at most 40 characters", release, d.UID)
			}
			if !strings.Contains(d.Title, release) {
				t.Errorf("release %s: dashboard title %q does not name it", release, d.Title)
			}
			uids[release] = d.UID
			// Apart from uid and title, the file as it is.
			back := strings.Replace(strings.Replace(got, `"uid": "`+d.UID+`"`, `"uid": "`+dash.UID+`"`, 1),
				`"title": "`+d.Title+`"`, `"title": "`+dash.Title+`"`, 1)
			if back != strings.TrimRight(string(src), "\n") {
				t.Errorf("release %s: the ConfigMap's dashboard differs from the file in more than uid and title", release)
			}
		}
	}
	if uids[releaseName] == uids[releaseName+"-eu"] {
		t.Errorf("two releases get the same dashboard uid %q", uids[releaseName])
	}
}

// TestPrometheusRule: with the prometheus-operator API (or force) and
// prometheusRule.enabled, the chart ships rules/sluice.rules.yaml (the file
// promtool tests and the e2e Prometheus loads) as a PrometheusRule: every
// alert, each expression scoped to the release's namespace and metrics
// Service, the per-alert overrides applied; without the API it renders
// nothing, and an unknown alert name is refused.
func TestPrometheusRule(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartDir, "rules", "sluice.rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	type rule struct {
		Alert       string            `json:"alert"`
		Expr        string            `json:"expr"`
		For         string            `json:"for"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	}
	type groups struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []rule `json:"rules"`
		} `json:"groups"`
	}
	var file groups
	if err := yaml.UnmarshalStrict(raw, &file); err != nil {
		t.Fatal(err)
	}
	want := map[string]rule{}
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			want[r.Alert] = r
		}
	}
	if len(want) == 0 {
		t.Fatal("no alerts in rules/sluice.rules.yaml")
	}
	ch := loadChart(t)
	rules := func(t *testing.T, set map[string]any, apis []string) []object {
		t.Helper()
		r, err := render(t, ch, merge(readValues(t, "default"), set), apis)
		if err != nil {
			t.Fatal(err)
		}
		var out []object
		for _, d := range r.docs {
			o, err := decode(t, d)
			if err != nil {
				t.Fatal(err)
			}
			if o.gvk.Kind == "PrometheusRule" {
				out = append(out, o)
			}
		}
		return out
	}
	on := func(extra map[string]any) map[string]any {
		pr := map[string]any{"enabled": true}
		for k, v := range extra {
			pr[k] = v
		}
		return map[string]any{"metrics": map[string]any{"prometheusRule": pr}}
	}
	const api = "monitoring.coreos.com/v1/PrometheusRule"

	t.Run("off by default", func(t *testing.T) {
		if got := rules(t, nil, []string{api}); len(got) != 0 {
			t.Errorf("a PrometheusRule without prometheusRule.enabled")
		}
	})
	t.Run("only with the API", func(t *testing.T) {
		if got := rules(t, on(nil), nil); len(got) != 0 {
			t.Errorf("a PrometheusRule although the cluster does not serve %s", api)
		}
		if got := rules(t, on(map[string]any{"force": true}), nil); len(got) != 1 {
			t.Errorf("force: want one PrometheusRule, got %d", len(got))
		}
	})
	t.Run("every alert, scoped, overrides applied", func(t *testing.T) {
		got := rules(t, on(map[string]any{
			"ruleLabels": map[string]any{"team": "data"},
			"alerts": map[string]any{
				"SluiceLagGrowing":       map[string]any{"for": "30m", "severity": "critical"},
				"SluiceNATSDisconnected": map[string]any{"enabled": false},
			},
		}), []string{api})
		if len(got) != 1 {
			t.Fatalf("want one PrometheusRule, got %d", len(got))
		}
		b, _ := json.Marshal(got[0].raw["spec"])
		var spec groups
		if err := json.Unmarshal(b, &spec); err != nil {
			t.Fatal(err)
		}
		scope := regexp.MustCompile(`\{namespace="` + regexp.QuoteMeta(namespace) + `", service="[^"]+"`)
		seen := map[string]bool{}
		for _, g := range spec.Groups {
			for _, r := range g.Rules {
				seen[r.Alert] = true
				w, ok := want[r.Alert]
				if !ok {
					t.Errorf("alert %s is not in the rule file", r.Alert)
					continue
				}
				if strings.Contains(r.Expr, `job!=""`) || strings.Count(r.Expr, "{") != len(scope.FindAllString(r.Expr, -1)) {
					t.Errorf("alert %s: not every selector is scoped to the release: %s", r.Alert, r.Expr)
				}
				wantFor, wantSev := w.For, w.Labels["severity"]
				if r.Alert == "SluiceLagGrowing" {
					wantFor, wantSev = "30m", "critical"
				}
				if r.For != wantFor || r.Labels["severity"] != wantSev || r.Labels["team"] != "data" {
					t.Errorf("alert %s: for %q labels %v; want for %q, severity %q, team data", r.Alert, r.For, r.Labels, wantFor, wantSev)
				}
				if !maps.Equal(r.Annotations, w.Annotations) {
					t.Errorf("alert %s: annotations %v, want the file's %v", r.Alert, r.Annotations, w.Annotations)
				}
			}
		}
		for name := range want {
			if seen[name] == (name == "SluiceNATSDisconnected") {
				t.Errorf("alert %s: rendered %v", name, seen[name])
			}
		}
	})
	t.Run("unknown alert refused", func(t *testing.T) {
		_, err := render(t, ch, merge(readValues(t, "default"), on(map[string]any{
			"alerts": map[string]any{"SluiceLagGrowingg": map[string]any{"for": "1h"}}})), []string{api})
		if err == nil || !strings.Contains(err.Error(), "metrics.prometheusRule.alerts.SluiceLagGrowingg: no such alert") {
			t.Errorf("want the unknown alert named, got %v", err)
		}
	})
}

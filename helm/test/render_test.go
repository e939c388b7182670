package charttest

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/releaseutil"
	"sigs.k8s.io/yaml"
)

const (
	chartDir    = "../sluice"
	releaseName = "demo"
	namespace   = "sluice-test"
	kubeVersion = "v1.33.0"
)

// Optional APIs the chart asks .Capabilities about.
var (
	apiServiceMonitor = "monitoring.coreos.com/v1/ServiceMonitor"
	apiKEDA           = "keda.sh/v1alpha1/ScaledObject"
	withOperators     = []string{"monitoring.coreos.com/v1", apiServiceMonitor, "keda.sh/v1alpha1", apiKEDA}
)

func loadChart(t testing.TB) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	return ch
}

// rendered is one release rendered the way `helm template` does.
type rendered struct {
	docs  []string // manifests, in install order
	notes string
}

// render renders the chart with vals (the user-supplied values, coalesced
// with values.yaml by Helm, validated against values.schema.json) as if the
// cluster served the extra apiVersions.
func render(t testing.TB, ch *chart.Chart, vals map[string]any, apiVersions []string) (rendered, error) {
	t.Helper()
	return renderAs(t, releaseName, ch, vals, apiVersions)
}

// renderAs is render with another release name.
func renderAs(t testing.TB, release string, ch *chart.Chart, vals map[string]any, apiVersions []string) (rendered, error) {
	t.Helper()
	install := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	install.DryRun = true
	install.ClientOnly = true
	install.Replace = true
	install.ReleaseName = release
	install.Namespace = namespace
	install.DisableHooks = false
	kv, err := chartutil.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	install.KubeVersion = kv
	install.APIVersions = chartutil.VersionSet(apiVersions)
	rel, err := install.Run(ch, vals)
	if err != nil {
		return rendered{}, err
	}
	manifests := releaseutil.SplitManifests(rel.Manifest)
	keys := slices.Collect(maps.Keys(manifests))
	sort.Sort(releaseutil.BySplitManifestsOrder(keys))
	var r rendered
	for _, k := range keys {
		if strings.TrimSpace(manifests[k]) != "" {
			r.docs = append(r.docs, manifests[k])
		}
	}
	for _, h := range rel.Hooks {
		r.docs = append(r.docs, h.Manifest)
	}
	if rel.Info != nil {
		r.notes = rel.Info.Notes
	}
	return r, nil
}

// readValues reads ci/<name>-values.yaml.
func readValues(t testing.TB, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir, "ci", name+"-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return parseValues(t, string(b))
}

func parseValues(t testing.TB, s string) map[string]any {
	t.Helper()
	v := map[string]any{}
	if err := yaml.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("values %q: %v", s, err)
	}
	return v
}

// merge returns base with over laid on top, maps merged key by key.
func merge(base, over map[string]any) map[string]any {
	out := maps.Clone(base)
	if out == nil {
		out = map[string]any{}
	}
	for k, v := range over {
		if bm, ok := out[k].(map[string]any); ok {
			if om, ok := v.(map[string]any); ok {
				out[k] = merge(bm, om)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// ciCases lists the values files in ../sluice/ci (chart-testing's layout).
func ciCases(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no values files in %s/ci: %v", chartDir, err)
	}
	var names []string
	for _, f := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(f), "-values.yaml"))
	}
	return names
}

func mustJoin(docs []string) string {
	var b strings.Builder
	for _, d := range docs {
		fmt.Fprintf(&b, "---\n%s\n", strings.TrimSpace(d))
	}
	return b.String()
}

package charttest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// matrixCase is one rendering: a ci/ values file, optional overrides, and
// the optional APIs the "cluster" has.
type matrixCase struct {
	name        string
	file        string         // ci/<file>-values.yaml
	set         map[string]any // laid over the file
	apiVersions []string
}

func matrix(t *testing.T) []matrixCase {
	var cases []matrixCase
	for _, f := range ciCases(t) {
		// Every values file twice: a bare cluster, and one with the
		// prometheus-operator and KEDA CRDs (the ServiceMonitor appears).
		cases = append(cases,
			matrixCase{name: f, file: f},
			matrixCase{name: f + "-operators", file: f, apiVersions: withOperators})
	}
	cases = append(cases,
		matrixCase{name: "servicemonitor-off", file: "default", apiVersions: withOperators,
			set: map[string]any{"metrics": map[string]any{"serviceMonitor": map[string]any{"enabled": false}}}},
		matrixCase{name: "no-pdb-no-drain-no-sa", file: "default",
			set: map[string]any{
				"podDisruptionBudget":     map[string]any{"enabled": false},
				"drain":                   map[string]any{"enabled": false},
				"serviceAccount":          map[string]any{"create": false},
				"goMemLimitFromResources": false,
				"resources":               map[string]any{},
			}},
	)
	return cases
}

// TestMatrix renders every case, decodes every document strictly, and checks
// the invariants. With SLUICEDEV_RENDER_DIR set it writes each case there for
// scripts/k8s.sh.
func TestMatrix(t *testing.T) {
	ch := loadChart(t)
	outDir := os.Getenv("SLUICEDEV_RENDER_DIR")
	for _, tc := range matrix(t) {
		t.Run(tc.name, func(t *testing.T) {
			vals := merge(readValues(t, tc.file), tc.set)
			r, err := render(t, ch, vals, tc.apiVersions)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			var objs []object
			for _, doc := range r.docs {
				o, err := decode(t, doc)
				if err != nil {
					t.Errorf("strict decode: %v\n%s", err, doc)
					continue
				}
				objs = append(objs, o)
			}
			if t.Failed() {
				return
			}
			checkInvariants(t, tc, vals, objs, r)
			if outDir != "" {
				if err := os.WriteFile(filepath.Join(outDir, tc.name+".yaml"), []byte(mustJoin(r.docs)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func find[T any](objs []object) []T {
	var out []T
	for _, o := range objs {
		if v, ok := o.typed.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func kinds(objs []object, kind string) []object {
	var out []object
	for _, o := range objs {
		if o.gvk.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

func checkInvariants(t *testing.T, tc matrixCase, vals map[string]any, objs []object, r rendered) {
	t.Helper()
	deps := find[*appsv1.Deployment](objs)
	if len(deps) != 1 {
		t.Fatalf("want 1 Deployment, got %d", len(deps))
	}
	dep := deps[0]
	pod := dep.Spec.Template
	podLabels := labels.Set(pod.Labels)

	// Every object is namespaced to the release and carries the standard labels.
	for _, o := range objs {
		meta, _ := o.raw["metadata"].(map[string]any)
		lbl, _ := meta["labels"].(map[string]any)
		for _, k := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "helm.sh/chart"} {
			if _, ok := lbl[k]; !ok {
				t.Errorf("%s: no label %s", o, k)
			}
		}
	}

	// Selectors: the Deployment's, the Service's, the PDB's and the
	// ServiceMonitor's must select the pods (the Service monitor: the Service).
	sel, err := metav1LabelSelector(dep.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(podLabels) {
		t.Errorf("Deployment selector %v does not match pod labels %v (%v)", dep.Spec.Selector, pod.Labels, err)
	}
	var metricsSvc *corev1.Service
	for _, svc := range find[*corev1.Service](objs) {
		if !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) || len(svc.Spec.Selector) == 0 {
			t.Errorf("Service %s selector %v does not match pod labels", svc.Name, svc.Spec.Selector)
		}
		metricsSvc = svc
		port := svc.Spec.Ports[0]
		if port.TargetPort.StrVal != "http" || !slices.ContainsFunc(pod.Spec.Containers[0].Ports, func(p corev1.ContainerPort) bool { return p.Name == "http" }) {
			t.Errorf("Service %s targets port %v, which the container does not name", svc.Name, port.TargetPort)
		}
	}
	for _, pdb := range find[*policyv1.PodDisruptionBudget](objs) {
		s, err := metav1LabelSelector(pdb.Spec.Selector)
		if err != nil || s.Empty() || !s.Matches(podLabels) {
			t.Errorf("PDB selector %v does not match pod labels", pdb.Spec.Selector)
		}
		if (pdb.Spec.MinAvailable == nil) == (pdb.Spec.MaxUnavailable == nil) {
			t.Errorf("PDB must set exactly one of minAvailable and maxUnavailable")
		}
	}
	sms := kinds(objs, "ServiceMonitor")
	smWanted := slices.Contains(tc.apiVersions, apiServiceMonitor) || boolAt(vals, "metrics", "serviceMonitor", "force")
	if v, ok := at(vals, "metrics", "serviceMonitor", "enabled").(bool); ok && !v {
		smWanted = false
	}
	if (len(sms) == 1) != smWanted {
		t.Errorf("ServiceMonitor rendered %d times, want it %v (APIs %v)", len(sms), smWanted, tc.apiVersions)
	}
	for _, sm := range sms {
		if metricsSvc == nil {
			t.Fatalf("ServiceMonitor without a metrics Service")
		}
		ml := at(sm.raw, "spec", "selector", "matchLabels").(map[string]any)
		for k, v := range ml {
			if metricsSvc.Labels[k] != v {
				t.Errorf("ServiceMonitor selects %s=%v, the metrics Service has %q", k, v, metricsSvc.Labels[k])
			}
		}
		if ep := at(sm.raw, "spec", "endpoints").([]any)[0].(map[string]any); ep["port"] != metricsSvc.Spec.Ports[0].Name {
			t.Errorf("ServiceMonitor scrapes port %v, the Service names %q", ep["port"], metricsSvc.Spec.Ports[0].Name)
		}
	}

	// Autoscaling: HPA xor ScaledObject, both aimed at the Deployment, and
	// then the Deployment leaves replicas alone.
	hpas := find[*autoscalingv2.HorizontalPodAutoscaler](objs)
	sos := kinds(objs, "ScaledObject")
	if len(hpas) > 0 && len(sos) > 0 {
		t.Errorf("both an HPA and a KEDA ScaledObject rendered")
	}
	for _, h := range hpas {
		if h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != dep.Name {
			t.Errorf("HPA targets %v, not the Deployment %s", h.Spec.ScaleTargetRef, dep.Name)
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas > h.Spec.MaxReplicas {
			t.Errorf("HPA minReplicas %v > maxReplicas %d", h.Spec.MinReplicas, h.Spec.MaxReplicas)
		}
		if p := intAt(vals, "autoscaling", "partitions"); p > 0 && int(h.Spec.MaxReplicas) > p && strAt(vals, "config", "source") != "kafka-share" {
			t.Errorf("HPA maxReplicas %d above the %d partitions", h.Spec.MaxReplicas, p)
		}
		m := h.Spec.Metrics[0]
		if m.Type != autoscalingv2.ExternalMetricSourceType || m.External.Metric.Name != "sluice_autoscale_desired_replicas" ||
			m.External.Target.Type != autoscalingv2.AverageValueMetricType || m.External.Target.AverageValue.String() != "1" {
			t.Errorf("HPA metric is not the pod scale signal with averageValue 1: %+v", m)
		}
		if metricsSvc != nil && m.External.Metric.Selector.MatchLabels["service"] != metricsSvc.Name {
			t.Errorf("HPA metric selector %v does not name the metrics Service %s", m.External.Metric.Selector, metricsSvc.Name)
		}
		if b := h.Spec.Behavior; b == nil || b.ScaleDown == nil || b.ScaleDown.StabilizationWindowSeconds == nil || *b.ScaleDown.StabilizationWindowSeconds < 60 {
			t.Errorf("HPA has no scale-down stabilisation window")
		}
	}
	for _, so := range sos {
		if at(so.raw, "spec", "scaleTargetRef", "name") != dep.Name {
			t.Errorf("ScaledObject targets %v, not %s", at(so.raw, "spec", "scaleTargetRef"), dep.Name)
		}
		if min, max := numAt(so.raw, "spec", "minReplicaCount"), numAt(so.raw, "spec", "maxReplicaCount"); min > max {
			t.Errorf("ScaledObject minReplicaCount %v > maxReplicaCount %v", min, max)
		}
		trig := at(so.raw, "spec", "triggers").([]any)[0].(map[string]any)
		if q, _ := at(trig, "metadata", "query").(string); !strings.Contains(q, "sluice_autoscale_desired_replicas") || !strings.Contains(q, metricsSvc.Name) {
			t.Errorf("KEDA Prometheus query %q is not the pod scale signal of this release", q)
		}
	}
	if autoscaled := len(hpas)+len(sos) > 0; autoscaled != (dep.Spec.Replicas == nil) {
		t.Errorf("Deployment replicas set=%v with autoscaling=%v: an autoscaler and helm upgrade would fight", dep.Spec.Replicas != nil, autoscaled)
	}

	// The drain: the grace period outlasts SLUICE_SHUTDOWN_TIMEOUT, and the
	// preStop hook runs `sluice drain` without a shell.
	c := pod.Spec.Containers[0]
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e // the last one wins, as in Kubernetes
	}
	shutdown := 30 * time.Second
	if e, ok := env["SLUICE_SHUTDOWN_TIMEOUT"]; ok {
		if shutdown, err = time.ParseDuration(e.Value); err != nil {
			t.Errorf("SLUICE_SHUTDOWN_TIMEOUT %q: %v", e.Value, err)
		}
	}
	if g := pod.Spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= shutdown {
		t.Errorf("terminationGracePeriodSeconds %v is not longer than SLUICE_SHUTDOWN_TIMEOUT %v", g, shutdown)
	}
	if boolAt(vals, "drain", "enabled") || at(vals, "drain", "enabled") == nil {
		if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Exec == nil ||
			!slices.Equal(c.Lifecycle.PreStop.Exec.Command, []string{"/sluice", "drain"}) {
			t.Errorf("preStop is not exec [/sluice drain]: %+v", c.Lifecycle)
		}
	}

	// Probes on the named port; security context as the issue asks.
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		want := map[string]string{"liveness": "/healthz", "readiness": "/readyz"}[name]
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != want || p.HTTPGet.Port.StrVal != "http" {
			t.Errorf("%s probe is not GET %s on port http: %+v", name, want, p)
		}
	}
	port := c.Ports[0].ContainerPort
	if addr, ok := env["SLUICE_HTTP_ADDR"]; ok && !strings.HasSuffix(addr.Value, ":"+itoa(int(port))) {
		t.Errorf("containerPort %d does not match SLUICE_HTTP_ADDR %q", port, addr.Value)
	}
	// The admin port (drain, pprof, flow state) is never published: in no
	// containerPort, so no Service can name it.
	adminAddr := "127.0.0.1:8081" // the binary's default
	if a, ok := env["SLUICE_ADMIN_ADDR"]; ok {
		adminAddr = a.Value
	}
	for _, p := range c.Ports {
		if strings.HasSuffix(adminAddr, ":"+itoa(int(p.ContainerPort))) {
			t.Errorf("containerPort %s/%d publishes the admin address %s", p.Name, p.ContainerPort, adminAddr)
		}
	}
	psc, sc := pod.Spec.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext is not non-root with RuntimeDefault seccomp: %+v", psc)
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container securityContext is not read-only, no escalation, drop ALL: %+v", sc)
	}

	// Secrets: never a value, only references; a file setting points into a
	// mounted Secret volume.
	for _, e := range c.Env {
		if isSecretish(e.Name) && e.Value != "" && !strings.HasSuffix(e.Name, "_FILE") {
			t.Errorf("%s carries a plain value; it must come from a Secret", e.Name)
		}
		if strings.HasSuffix(e.Name, "_FILE") && strings.HasPrefix(e.Value, "/etc/sluice/secrets/") {
			if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return strings.HasPrefix(e.Value, m.MountPath+"/") }) {
				t.Errorf("%s=%s is under no volume mount", e.Name, e.Value)
			}
		}
	}
	// The root filesystem is read-only: the file sink must write under a
	// writable volume mount (TestBinaryAcceptsRenderedEnv relies on it when it
	// moves that mount to a temporary directory).
	if e, ok := env["SLUICE_SINK_FILE_PATH"]; ok && e.Value != "" {
		if m, ok := mountOf(c.VolumeMounts, e.Value); !ok || m.ReadOnly {
			t.Errorf("SLUICE_SINK_FILE_PATH=%s is under no writable volume mount (the root filesystem is read-only)", e.Value)
		}
	}
	for _, o := range objs {
		if o.gvk.Kind == "Secret" {
			t.Errorf("the chart rendered a Secret (%s): secrets are only referenced", o.name)
		}
	}
	mounts := map[string]bool{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = true
	}
	for _, v := range pod.Spec.Volumes {
		if !mounts[v.Name] {
			t.Errorf("volume %s is not mounted", v.Name)
		}
		delete(mounts, v.Name)
	}
	for m := range mounts {
		t.Errorf("volume mount %s has no volume", m)
	}

	// Pass-through env comes after the chart's, so it wins.
	if extra, ok := vals["env"].([]any); ok && len(extra) > 0 {
		first := extra[0].(map[string]any)["name"].(string)
		if c.Env[len(c.Env)-len(extra)].Name != first {
			t.Errorf("env pass-through is not after the chart's variables")
		}
	}

	if !strings.Contains(r.notes, dep.Name) {
		t.Errorf("NOTES.txt does not name the Deployment:\n%s", r.notes)
	}
	if raw, err := json.Marshal(c.Env); err == nil && strings.Contains(string(raw), "e+") {
		t.Errorf("a number rendered in exponent form: %s", raw)
	}
}

func isSecretish(name string) bool {
	for _, s := range []string{"PASSWORD", "TOKEN", "DSN", "NKEY", "CREDS"} {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}

package charttest

import (
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// TestNetworkPolicy: off by default; on (ci/full-values.yaml), one policy
// that selects the release's pods, restricts ingress only, and opens the
// http port alone (never the admin port) to the listed namespaces and
// peers only.
func TestNetworkPolicy(t *testing.T) {
	ch := loadChart(t)
	policies := func(file string) ([]*networkingv1.NetworkPolicy, *appsv1.Deployment) {
		r, err := render(t, ch, readValues(t, file), nil)
		if err != nil {
			t.Fatalf("%s: render: %v", file, err)
		}
		var nps []*networkingv1.NetworkPolicy
		var dep *appsv1.Deployment
		for _, d := range r.docs {
			o, err := decode(t, d)
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			switch v := o.typed.(type) {
			case *networkingv1.NetworkPolicy:
				nps = append(nps, v)
			case *appsv1.Deployment:
				dep = v
			}
		}
		return nps, dep
	}
	if nps, _ := policies("default"); len(nps) != 0 {
		t.Errorf("the default values render %d NetworkPolicies, want none", len(nps))
	}

	nps, dep := policies("full")
	if len(nps) != 1 || dep == nil {
		t.Fatalf("ci/full-values.yaml renders %d NetworkPolicies (want 1) and a Deployment: %v", len(nps), dep != nil)
	}
	np := nps[0]
	sel, err := metav1LabelSelector(&np.Spec.PodSelector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(dep.Spec.Template.Labels)) {
		t.Errorf("podSelector %v does not select the pods %v (or selects every pod)", np.Spec.PodSelector, dep.Spec.Template.Labels)
	}
	if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
		t.Errorf("policyTypes %v, want [Ingress] (egress to brokers and sinks stays open)", np.Spec.PolicyTypes)
	}
	c := dep.Spec.Template.Spec.Containers[0]
	var httpPort int32
	for _, p := range c.Ports {
		if p.Name == "http" {
			httpPort = p.ContainerPort
		}
	}
	if len(np.Spec.Ingress) != 1 {
		t.Fatalf("%d ingress rules, want 1", len(np.Spec.Ingress))
	}
	rule := np.Spec.Ingress[0]
	if len(rule.Ports) != 1 || rule.Ports[0].Port == nil || rule.Ports[0].Port.IntValue() != int(httpPort) ||
		rule.Ports[0].Protocol == nil || *rule.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("ingress ports %+v, want only TCP %d (the http port)", rule.Ports, httpPort)
	}
	var admin string
	for _, e := range c.Env {
		if e.Name == "SLUICE_ADMIN_ADDR" {
			admin = e.Value
		}
	}
	if admin != "127.0.0.1:9091" {
		t.Errorf("SLUICE_ADMIN_ADDR = %q, want ci/full-values.yaml's 127.0.0.1:9091", admin)
	}
	var monitoring, keda bool
	for _, peer := range rule.From {
		if ns := peer.NamespaceSelector; ns != nil && peer.PodSelector == nil && ns.MatchLabels["kubernetes.io/metadata.name"] == "monitoring" {
			monitoring = true
		}
		if ns := peer.NamespaceSelector; ns != nil && peer.PodSelector != nil && ns.MatchLabels["kubernetes.io/metadata.name"] == "keda" {
			keda = true
		}
	}
	if !monitoring || !keda || len(rule.From) != 2 {
		t.Errorf("from %+v: want the monitoring namespace and the keda peer, nothing else", rule.From)
	}
}

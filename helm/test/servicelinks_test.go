package charttest

import (
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestServiceLinksOff: every rendered Deployment turns service links off,
// so no Service in the namespace can put variables into Sluice's
// environment.
func TestServiceLinksOff(t *testing.T) {
	ch := loadChart(t)
	for _, tc := range matrix(t) {
		t.Run(tc.name, func(t *testing.T) {
			r, err := render(t, ch, merge(readValues(t, tc.file), tc.set), tc.apiVersions)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			n := 0
			for _, d := range r.docs {
				if o, err := decode(t, d); err == nil {
					if dep, ok := o.typed.(*appsv1.Deployment); ok {
						n++
						if e := dep.Spec.Template.Spec.EnableServiceLinks; e == nil || *e {
							t.Errorf("%s: enableServiceLinks is not false", dep.Name)
						}
					}
				}
			}
			if n == 0 {
				t.Fatal("no Deployment")
			}
		})
	}
}

// TestBinaryAcceptsServiceLinks: `helm install sluice` creates the Service
// sluice-metrics. Were service links on (a pod of another chart in the
// namespace has them on by default, and so had Sluice's before), the kubelet
// would inject SLUICE_METRICS_SERVICE_HOST and friends. The binary must
// start with exactly those variables beside the chart's own (it exited 2:
// a crash loop on the first install), and still refuse a typo.
func TestBinaryAcceptsServiceLinks(t *testing.T) {
	bin := sluiceBinary(t)
	r, err := renderAs(t, "sluice", loadChart(t), readValues(t, "default"), withOperators)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	var dep *appsv1.Deployment
	var links []string
	for i, d := range r.docs {
		o, err := decode(t, d)
		if err != nil {
			continue
		}
		switch v := o.typed.(type) {
		case *appsv1.Deployment:
			dep = v
		case *corev1.Service:
			links = append(links, kubeletServiceEnv(v, fmt.Sprintf("10.96.0.%d", 10+i))...)
		}
	}
	if dep == nil {
		t.Fatal("no Deployment")
	}
	if !strings.Contains(strings.Join(links, "\n"), "SLUICE_METRICS_SERVICE_HOST=") {
		t.Fatalf("release sluice has no Service whose links start with SLUICE_: the test would prove nothing\n%v", links)
	}
	env, _ := containerEnv(t, dep, fakeSecretFiles(t))
	cmd := exec.Command(bin, "config")
	cmd.Env = append(env, links...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sluice config refused the kubelet's service links: %v\n%s\nlinks: %v", err, out, links)
	}

	cmd = exec.Command(bin, "config")
	cmd.Env = append(append(env, links...), "SLUICE_METRICS_SERVICE_HOTS=10.96.0.10")
	out, err := cmd.CombinedOutput()
	if _, exit := err.(*exec.ExitError); !exit || !strings.Contains(string(out), "SLUICE_METRICS_SERVICE_HOTS: unknown variable") {
		t.Fatalf("sluice config accepted a typo beside the service links: %v\n%s", err, out)
	}
}

// kubeletServiceEnv is what the kubelet injects for svc when service links
// are on (Kubernetes' "Service discovery: environment variables"), with ip
// standing for the cluster IP the API server would allocate.
func kubeletServiceEnv(svc *corev1.Service, ip string) []string {
	if svc.Spec.ClusterIP == corev1.ClusterIPNone {
		return nil // headless: no variables
	}
	n := strings.ToUpper(strings.ReplaceAll(svc.Name, "-", "_"))
	env := []string{n + "_SERVICE_HOST=" + ip}
	for i, p := range svc.Spec.Ports {
		port := strconv.Itoa(int(p.Port))
		proto := string(p.Protocol)
		if proto == "" {
			proto = string(corev1.ProtocolTCP)
		}
		url := strings.ToLower(proto) + "://" + net.JoinHostPort(ip, port)
		if i == 0 {
			env = append(env, n+"_SERVICE_PORT="+port, n+"_PORT="+url)
		}
		if p.Name != "" {
			env = append(env, n+"_SERVICE_PORT_"+strings.ToUpper(strings.ReplaceAll(p.Name, "-", "_"))+"="+port)
		}
		pre := n + "_PORT_" + port + "_" + strings.ToUpper(proto)
		env = append(env, pre+"="+url, pre+"_PROTO="+strings.ToLower(proto), pre+"_PORT="+port, pre+"_ADDR="+ip)
	}
	return env
}

package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
)

// kubeletServiceEnv is what the kubelet puts into a container for a Service
// (name, cluster IP, ports as name/number/protocol), as documented for
// "Environment variables" under Kubernetes' Service discovery.
func kubeletServiceEnv(name, ip string, ports ...struct {
	name, proto string
	port        string
}) []string {
	n := strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
	env := []string{n + "_SERVICE_HOST=" + ip}
	for i, p := range ports {
		proto := strings.ToUpper(p.proto)
		url := strings.ToLower(p.proto) + "://" + net.JoinHostPort(ip, p.port)
		if i == 0 {
			env = append(env, n+"_SERVICE_PORT="+p.port, n+"_PORT="+url)
		}
		if p.name != "" {
			env = append(env, n+"_SERVICE_PORT_"+strings.ToUpper(strings.ReplaceAll(p.name, "-", "_"))+"="+p.port)
		}
		pre := n + "_PORT_" + p.port + "_" + proto
		env = append(env, pre+"="+url, pre+"_PROTO="+strings.ToLower(p.proto), pre+"_PORT="+p.port, pre+"_ADDR="+ip)
	}
	return env
}

type linkPort = struct {
	name, proto string
	port        string
}

// TestServiceLinksAreNotUnknownVariables: `helm install sluice` creates the
// Service sluice-metrics; with service links on, every pod in the namespace
// gets SLUICE_METRICS_SERVICE_HOST and friends. sluice must start with them
// (it exited 2 before), and a typo beside them must still be refused.
func TestServiceLinksAreNotUnknownVariables(t *testing.T) {
	base := []string{"SLUICE_KAFKA_BROKERS=127.0.0.1:9092", "SLUICE_KAFKA_TOPICS=orders", "PATH=/usr/bin"}
	links := kubeletServiceEnv("sluice-metrics", "10.96.12.7", linkPort{"http", "TCP", "8080"})
	// Other Services a namespace may hold: one named sluice itself, one
	// whose name ends in -service, one with several named ports.
	links = append(links, kubeletServiceEnv("sluice", "10.96.0.3", linkPort{"", "TCP", "80"})...)
	links = append(links, kubeletServiceEnv("sluice-service", "fd00::12", linkPort{"grpc", "TCP", "9000"}, linkPort{"dns", "UDP", "53"})...)
	if !strings.Contains(strings.Join(links, " "), "SLUICE_METRICS_PORT_8080_TCP_ADDR=10.96.12.7") {
		t.Fatalf("the generator does not write what the kubelet writes: %v", links)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"config"}, append(base, links...), &stdout, &stderr); code != 0 {
		t.Fatalf("sluice config with the kubelet's service links: exit %d, want 0\n%s", code, stderr.String())
	}

	for _, typo := range []string{
		"SLUICE_WORKRS_MAX=3",
		"SLUICE_METRICS_SERVICE_HOST=sluice-metrics", // the shape, but not an address
		"SLUICE_KAFKA_PORT=9092",                     // a script's setting, not a link: tcp://ip:port
		"SLUICE_METRICS_PORT_8080_TCP_PROTO=http",
		"SLUICE_SERVICE_PORT=eighty",
	} {
		stdout.Reset()
		stderr.Reset()
		code := run(context.Background(), []string{"config"}, append(append(base, links...), typo), &stdout, &stderr)
		name, _, _ := strings.Cut(typo, "=")
		if code != 2 || !strings.Contains(stderr.String(), name+": unknown variable") {
			t.Errorf("%s: exit %d, want 2 naming it as unknown\n%s", typo, code, stderr.String())
		}
		if strings.Contains(stderr.String(), "SERVICE_HOST=") || strings.Count(stderr.String(), "unknown variable") != 1 {
			t.Errorf("%s: the service links themselves were refused:\n%s", typo, stderr.String())
		}
	}
}

// Command coredns is CoreDNS trimmed to what the test cluster of
// scripts/k8s-cluster.sh needs: the cluster's DNS (kubernetes), everything
// else forwarded to the host's resolver, a cache, /health, and bind (to listen on one address only). It runs on the
// host, behind a kube-dns Service without a selector.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
)

func init() {
	// The order in which a query passes the plugins (CoreDNS's own list,
	// less the plugins left out).
	dnsserver.Directives = []string{"bind", "errors", "health", "cache", "kubernetes", "forward"}
}

func main() { coremain.Run() }

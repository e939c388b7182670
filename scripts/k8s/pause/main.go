// Command pause is the test cluster's pod sandbox process (scripts/k8s-cluster.sh
// packages it as the image containerd's sandbox_image names: no registry
// outside is reachable). It holds the pod's namespaces open until SIGTERM or
// SIGINT, and, as PID 1 of a pod that shares its PID namespace, reaps the
// orphans handed to it.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestServiceBinaryLinksTheServiceOnly builds the service binary as the
// image does and reads its module list (`go version -m`): the embedded
// Kafka cluster, the NATS server and the autoscale simulator belong to
// sluice-dev (demo and benchmarks), never to what runs in production.
func TestServiceBinaryLinksTheServiceOnly(t *testing.T) {
	bin := sluiceBinary(t)
	out, err := exec.Command("go", "version", "-m", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m: %v\n%s", err, out)
	}
	mods := string(out)
	if !strings.Contains(mods, "github.com/twmb/franz-go") || !strings.Contains(mods, "github.com/nats-io/nats.go") {
		t.Fatalf("the module list lacks the clients the service uses: not a module list?\n%s", mods)
	}
	for _, banned := range []string{
		"github.com/twmb/franz-go/pkg/kfake",
		"github.com/nats-io/nats-server",
		"github.com/sluicehq/sluice/autoscale/sim", // a package, not a module: checked with go list below
	} {
		if strings.Contains(mods, banned) {
			t.Errorf("the service binary links %s:\n%s", banned, mods)
		}
	}
	// Packages of the main module do not appear in the module list: ask go
	// list which the binary is built from.
	deps, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, deps)
	}
	for _, banned := range []string{"github.com/sluicehq/sluice/autoscale/sim", "github.com/twmb/franz-go/pkg/kfake",
		"github.com/nats-io/nats-server/v2/server"} {
		for _, p := range strings.Fields(string(deps)) {
			if p == banned {
				t.Errorf("the service binary is built from %s", banned)
			}
		}
	}
}

var (
	binOnce sync.Once
	binDir  string // removed by TestMain
	binPath string
	binErr  error
)

// sluiceBinary builds the service binary once for the package's tests that
// run it as a process. The image builds with CGO_ENABLED=0 -trimpath; the
// module list and the behaviour are the same either way, and the default
// flags reuse the build cache.
func sluiceBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "sluice-bin-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "sluice")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

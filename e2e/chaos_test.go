package e2e

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// Environment switches of the end-to-end tests.
const (
	// EnvChaos runs the whole fault suite in `go test` (scripts/chaos.sh
	// and `make chaos` run it through ./e2e/cmd/chaos instead).
	EnvChaos = "SLUICEDEV_CHAOS"
	// EnvBrokers points the smoke test at a running real cluster, as for
	// the consumer's integration tests.
	EnvBrokers = "SLUICEDEV_TEST_KAFKA_BROKERS"
)

// smoke is small enough for every `go test ./...`: a few seconds per scenario.
var smoke = Size{Records: 6000, Rate: 3000, Window: 1000, Partitions: 4,
	Cut: 3 * time.Second, Outage: 2 * time.Second, Fault: 3 * time.Second, SinkDown: 10 * time.Second,
	Timeout: 2 * time.Minute}

// TestE2ESmoke runs the real binary against a broker: SIGTERM and restart
// (scenario 1), and on kfake commit failures (scenario 8). With
// SLUICEDEV_TEST_KAFKA_BROKERS set it runs scenario 1 against that cluster.
func TestE2ESmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped in -short")
	}
	s := newSuite(t, smoke)
	only := []int{1, 8}
	if s.Broker.Fake() == nil {
		only = []int{1}
	}
	check(t, s, s.Run(t.Context(), only))
}

// TestChaos runs every scenario, CI-sized, when SLUICEDEV_CHAOS=1.
func TestChaos(t *testing.T) {
	if os.Getenv(EnvChaos) == "" {
		t.Skipf("the fault suite runs with %s=1 (or scripts/chaos.sh, make chaos)", EnvChaos)
	}
	s := newSuite(t, Short)
	check(t, s, s.Run(t.Context(), nil))
}

func newSuite(t *testing.T, size Size) *Suite {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin, err := Build(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	var b Broker
	if env := os.Getenv(EnvBrokers); env != "" {
		b = NewExternal(strings.Split(env, ","))
	} else if b, err = NewFake(dir + "/kfake-data"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	s := &Suite{Bin: bin, Broker: b, Dir: dir, Size: size, Logf: t.Logf}
	t.Cleanup(s.Close)
	return s
}

func check(t *testing.T, s *Suite, rs []Result) {
	t.Helper()
	var buf bytes.Buffer
	ok := Table(&buf, s.Broker.Kind(), rs)
	t.Log("\n" + buf.String())
	if !ok {
		t.Errorf("fault suite failed (ledgers and logs in %s)", s.Dir)
	}
}

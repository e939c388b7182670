package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Build compiles cmd/sluice from the repository root into dir and returns
// the binary's path.
func Build(ctx context.Context, dir string) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "sluice")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/sluice")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/sluice: %v\n%s", err, out)
	}
	return bin, nil
}

// Options configures RunSuite.
type Options struct {
	Bin    string // the sluice binary; built into Dir when empty
	Dir    string // work dir (ledgers, logs, broker data)
	Broker string // "kfake" or "kafka" (a real broker via scripts/kafka.sh)
	Size   Size
	Only   []int
	// KafkaPort and ProxyPort place the real broker and its proxy (the
	// controller takes KafkaPort+1).
	KafkaPort, ProxyPort int
	Out                  io.Writer // the table
	Logf                 func(format string, args ...any)
}

// RunSuite starts the broker, runs the scenarios, prints the table and
// returns the results. It returns ErrNoJava when the real broker cannot run.
func RunSuite(ctx context.Context, o Options) ([]Result, error) {
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	if o.Bin == "" {
		bin, err := Build(ctx, o.Dir)
		if err != nil {
			return nil, err
		}
		o.Bin = bin
	}
	var b Broker
	var err error
	t0 := time.Now()
	switch o.Broker {
	case "kfake", "":
		b, err = NewFake(filepath.Join(o.Dir, "kfake-data"))
	case "kafka":
		root, rerr := repoRoot()
		if rerr != nil {
			return nil, rerr
		}
		b, err = NewReal(ctx, RealConfig{
			Script: filepath.Join(root, "scripts", "kafka.sh"),
			RunDir: filepath.Join(o.Dir, "kafka"),
			Port:   o.KafkaPort, ProxyPort: o.ProxyPort, Logf: o.Logf,
		})
	default:
		return nil, fmt.Errorf("unknown broker %q: want kfake or kafka", o.Broker)
	}
	if err != nil {
		if errors.Is(err, ErrNoJava) {
			return nil, err
		}
		return nil, fmt.Errorf("start %s: %w", o.Broker, err)
	}
	defer b.Close()
	if o.Logf != nil {
		o.Logf("%s up in %s; sluice connects through proxy %s", b.Kind(), time.Since(t0).Round(100*time.Millisecond), b.Addr())
	}
	s := &Suite{Bin: o.Bin, Broker: b, Dir: o.Dir, Size: o.Size, Logf: o.Logf}
	defer s.Close()
	rs := s.Run(ctx, o.Only)
	if o.Out != nil {
		Table(o.Out, b.Kind(), rs)
	}
	return rs, nil
}

// Command sluice consumes from Kafka and hands each message to a sink,
// with a bounded in-flight window, pause/resume backpressure and a worker
// pool. Configuration comes from SLUICE_* environment variables only.
//
//	sluice [run]        the service
//	sluice config       validate and print the effective configuration
//	sluice drain        ask a running sluice to drain (a pod's preStop hook)
//	sluice version      print the version
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/sluicehq/sluice/internal/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: sluice [command]

commands:
  run       run the service (the default); configured by SLUICE_* variables
  config    validate the configuration and print it (--env: list every variable)
  drain     ask the local service to drain (--addr, default SLUICE_ADMIN_ADDR)
  version   print the version

The demo and the benchmarks are a separate command, sluice-dev
(go run ./cmd/sluice-dev demo), so that this binary links the service only.
`

// run is main without the process: it returns the exit code. 2 means bad
// configuration or usage.
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return serve(ctx, environ, stdout, stderr)
	case "config":
		return configCmd(args, environ, stdout, stderr)
	case "demo", "bench":
		fmt.Fprintf(stderr, "sluice: %s is not in the service binary; run it with sluice-dev: go run ./cmd/sluice-dev %s\n", cmd, cmd)
		return 2
	case "drain":
		return drainCmd(ctx, args, environ, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "sluice", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "sluice: unknown command %q\n\n%s", cmd, usage)
	return 2
}

func configCmd(args, environ []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "--env" {
		config.EnvTable(stdout)
		return 0
	}
	cfg, err := config.Load(environ)
	if err != nil {
		printErr(stderr, err)
		return 2
	}
	config.Print(stdout, environ, cfg)
	return 0
}

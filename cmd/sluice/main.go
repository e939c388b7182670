// Command sluice consumes from Kafka and hands each message to a sink,
// with a bounded in-flight window, pause/resume backpressure and a worker
// pool. Configuration comes from SLUICE_* environment variables only.
//
//	sluice [run]        the service
//	sluice config       validate and print the effective configuration
//	sluice demo         a self-contained demo on an embedded Kafka cluster
//	sluice bench ...    benchmarks (overhead, autoscale)
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
  demo      run a demo on an embedded Kafka cluster (--duration 30s; --source jetstream: an embedded nats-server)
  bench     benchmarks: overhead (pipeline vs raw franz-go), nats-overhead (vs a raw JetStream loop),
            autoscale (controller scenarios),
            workers (the controller on the real pipeline with a 1 ms sink),
            sinks (noop vs HTTP vs PostgreSQL on the same data),
            memory (the service's RSS with a sink 100x slower than the producer)
  drain     ask the local service to drain (--addr, default from SLUICE_HTTP_ADDR)
  version   print the version
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
	case "demo":
		if demoSource(args) == "jetstream" {
			return demoJetStream(ctx, args, stdout, stderr)
		}
		return demo(ctx, args, stdout, stderr)
	case "bench":
		if len(args) == 0 {
			fmt.Fprintln(stderr, "usage: sluice bench overhead|nats-overhead|autoscale|workers|sinks|memory [flags]")
			return 2
		}
		switch args[0] {
		case "overhead":
			return benchOverhead(ctx, args[1:], environ, stdout, stderr)
		case "autoscale":
			return benchAutoscale(ctx, args[1:], stdout, stderr)
		case "workers":
			return benchWorkers(ctx, args[1:], stdout, stderr)
		case "sinks":
			return benchSinks(ctx, args[1:], environ, stdout, stderr)
		case "nats-overhead":
			return benchNATS(ctx, args[1:], environ, stdout, stderr)
		case "memory":
			return benchMemory(ctx, args[1:], stdout, stderr)
		case "broker": // the memory bench's out-of-process broker
			return benchBroker(ctx, args[1:], stderr)
		}
		fmt.Fprintf(stderr, "sluice bench: unknown benchmark %q\n", args[0])
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
		fmt.Fprintln(stderr, "sluice:", err)
		return 2
	}
	config.Print(stdout, environ, cfg)
	return 0
}

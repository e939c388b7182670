// Command sluice-dev is Sluice's demo and benchmarks. They live apart from
// the service binary (cmd/sluice) so that it links the service only: no
// embedded Kafka cluster (kfake), no nats-server, no autoscale simulator.
//
//	sluice-dev demo [--duration 30s] [--source jetstream]
//	sluice-dev bench overhead|nats-overhead|share|autoscale|workers|sinks|memory [flags]
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: sluice-dev command

commands:
  demo      run a demo on an embedded Kafka cluster (--duration 30s; --source jetstream: an embedded nats-server)
  bench     benchmarks: overhead (pipeline vs raw franz-go), nats-overhead (vs a raw JetStream loop),
            share (share group vs consumer group with a slow sink; vs a raw share-group loop),
            autoscale (controller scenarios),
            workers (the controller on the real pipeline with a 1 ms sink),
            sinks (noop vs HTTP vs PostgreSQL on the same data),
            memory (the service's RSS with a sink 100x slower than the producer; --sluice: the service binary)
`

// run is main without the process: it returns the exit code, 2 for bad
// usage.
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "demo":
		if demoSource(args) == "jetstream" {
			return demoJetStream(ctx, args, stdout, stderr)
		}
		return demo(ctx, args, stdout, stderr)
	case "bench":
		if len(args) == 0 {
			fmt.Fprintln(stderr, "usage: sluice-dev bench overhead|nats-overhead|share|autoscale|workers|sinks|memory [flags]")
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
		case "share":
			return benchShare(ctx, args[1:], environ, stdout, stderr)
		case "memory":
			return benchMemory(ctx, args[1:], stdout, stderr)
		case "broker": // the memory bench's out-of-process broker
			return benchBroker(ctx, args[1:], stderr)
		}
		fmt.Fprintf(stderr, "sluice-dev bench: unknown benchmark %q\n", args[0])
		return 2
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "sluice-dev: unknown command %q\n\n%s", cmd, usage)
	return 2
}

// Command chaos runs Sluice's fault suite: the real sluice binary as
// separate processes against kfake (default) or a real Apache Kafka broker,
// SIGTERM, SIGKILL, broker restarts, network cuts, rebalance storms and
// commit failures, and a ledger that checks nothing was lost.
//
//	go run ./e2e/cmd/chaos                   CI-sized run on kfake
//	go run ./e2e/cmd/chaos -broker kafka     against a real broker (scripts/kafka.sh)
//	go run ./e2e/cmd/chaos -long             the soak
//	go run ./e2e/cmd/chaos -only 1,2         some scenarios
//
// It prints one table and a totals line, and exits 1 if any scenario failed.
// Exit code 3: -broker kafka but java or mvn is missing (the run is skipped).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluicehq/sluice/e2e"
)

func main() {
	bin := flag.String("bin", "", "sluice binary (default: build ./cmd/sluice into the work dir)")
	dir := flag.String("dir", "", "work dir for ledgers, logs and broker data (default: build/chaos/<time>)")
	broker := flag.String("broker", "kfake", "kfake or kafka (a real broker started with scripts/kafka.sh)")
	long := flag.Bool("long", false, "soak: more records and longer faults")
	only := flag.String("only", "", "comma-separated scenario numbers (default: all)")
	records := flag.Int("records", 0, "records per scenario (default: 20000, or 300000 with -long)")
	kport := flag.Int("kafka-port", 19292, "real broker port (the controller takes the next one)")
	pport := flag.Int("proxy-port", 19296, "port of the proxy the real broker advertises")
	timeout := flag.Duration("timeout", 0, "give up after this long (default: 20m, or 2h with -long)")
	svg := flag.String("svg", "", "also draw the results as an SVG chart to this file")
	flag.Parse()

	size := e2e.Short
	if *long {
		size = e2e.Long
	}
	if *records > 0 {
		size.Records = *records
	}
	if *timeout == 0 {
		*timeout = 20 * time.Minute
		if *long {
			*timeout = 2 * time.Hour
		}
	}
	var ids []int
	for _, f := range strings.Split(*only, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			fmt.Fprintf(os.Stderr, "chaos: -only wants numbers, got %q\n", f)
			os.Exit(2)
		}
		ids = append(ids, n)
	}
	if *dir == "" {
		*dir = filepath.Join("build", "chaos", time.Now().Format("20060102-150405")+"-"+*broker)
	}
	abs, _ := filepath.Abs(*dir)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	start := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	logf("chaos: %s, %d records per scenario at %d/s, window %d, work dir %s", *broker, size.Records, size.Rate, size.Window, abs)
	rs, err := e2e.RunSuite(ctx, e2e.Options{
		Bin: *bin, Dir: abs, Broker: *broker, Size: size, Only: ids,
		KafkaPort: *kport, ProxyPort: *pport, Out: os.Stdout, Logf: logf,
	})
	if errors.Is(err, e2e.ErrNoJava) {
		fmt.Fprintln(os.Stderr, "chaos: SKIPPED: the real broker needs java 17+ and mvn:", err)
		os.Exit(3)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
	logf("chaos: done in %s", time.Since(start).Round(time.Second))
	if *svg != "" {
		f, err := os.Create(*svg)
		if err == nil {
			name := *broker
			if name == "kafka" {
				name = "Apache Kafka"
			}
			err = e2e.SVG(f, fmt.Sprintf("Sluice fault suite on %s: %d records per scenario, window %d", name, size.Records, size.Window), rs)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos: svg:", err)
		}
	}
	for _, r := range rs {
		if !r.Pass {
			os.Exit(1)
		}
	}
}

// Command check runs Sluice's adversarial checker: seeded schedules of
// members joining, leaving, crashing (SIGKILL) and falling silent (SIGSTOP,
// or a proxy that holds their bytes), of a sink that is slow, held,
// failing, throttling or refusing poison keys, with records from empty to
// larger than the byte budget, against the real binary; invariants checked
// as deliveries arrive and at the end (see e2e/check.go).
//
//	go run ./e2e/cmd/check -broker kfake                 the fixed seeds on kfake
//	go run ./e2e/cmd/check -broker kfake -seed 1234      replay one seed
//	go run ./e2e/cmd/check -broker jetstream -for 30m    random seeds for 30 minutes
//	go run ./e2e/cmd/check -broker kafka,kafka-share     a consumer group, then a share group, on one real broker
//
// Exit status: 0 every schedule passed, 1 one failed (its seed and the
// command that replays it are printed), 2 bad usage, 3 -broker kafka but
// java or mvn is missing.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluicehq/sluice/e2e"
)

func main() {
	broker := flag.String("broker", "kfake", "kfake, kafka (a real broker started with scripts/kafka.sh), jetstream (an in-process nats-server), "+
		"kfake-share or kafka-share (a share group, SLUICE_SOURCE=kafka-share, on kfake or the real broker); several separated by commas")
	seeds := flag.String("seed", "", "comma-separated seeds (default: the fixed CI seeds of each broker)")
	forD := flag.Duration("for", 0, "run random seeds for this long instead")
	bin := flag.String("bin", "", "sluice binary (default: build ./cmd/sluice into the work dir)")
	dir := flag.String("dir", "", "work dir (default: build/check/<time>-<broker>)")
	records := flag.Int("records", 0, "about this many records per schedule (default 2000)")
	length := flag.Duration("length", 0, "faults within this long per schedule (default 24s)")
	drain := flag.Duration("drain", 0, "after the last fault, wait this long for every record (default 45s)")
	kport := flag.Int("kafka-port", 19492, "real broker port (the controller takes the next one)")
	pport := flag.Int("proxy-port", 19496, "port of the proxy the real broker advertises")
	flag.Parse()

	var list []uint64
	for _, f := range strings.Split(*seeds, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "check: -seed wants numbers, got %q\n", f)
			os.Exit(2)
		}
		list = append(list, n)
	}
	for _, b := range strings.Split(*broker, ",") {
		if !slices.Contains(e2e.CheckBrokers, b) {
			fmt.Fprintf(os.Stderr, "check: unknown broker %q (%s)\n", b, strings.Join(e2e.CheckBrokers, ", "))
			os.Exit(2)
		}
	}
	if *dir == "" {
		*dir = filepath.Join("build", "check", time.Now().Format("20060102-150405")+"-"+strings.ReplaceAll(*broker, ",", "+"))
	}
	abs, _ := filepath.Abs(*dir)
	if err := os.MkdirAll(abs, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "check:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	what := fmt.Sprintf("seeds %v", list)
	switch {
	case len(list) == 0 && *forD > 0:
		what = fmt.Sprintf("random seeds for %s each", *forD)
	case len(list) == 0:
		what = "the fixed seeds"
	}
	logf("check: %s, %s, work dir %s", *broker, what, abs)
	rs, err := e2e.RunChecks(ctx, e2e.CheckOptions{
		Broker: *broker, Seeds: list, For: *forD, Bin: *bin, Dir: abs,
		Plan:  e2e.PlanOptions{Records: *records, Length: *length},
		Drain: *drain, KafkaPort: *kport, ProxyPort: *pport, Out: os.Stdout, Logf: logf,
	})
	if e2e.IsNoJava(err) {
		fmt.Fprintln(os.Stderr, "check: SKIPPED: the real broker needs java 17+ and mvn:", err)
		os.Exit(3)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "check:", err)
		os.Exit(1)
	}
	logf("check: %d schedules in %s", len(rs), time.Since(start).Round(time.Second))
	for _, r := range rs {
		if !r.Pass() {
			os.Exit(1)
		}
	}
	if ctx.Err() != nil {
		os.Exit(1)
	}
}

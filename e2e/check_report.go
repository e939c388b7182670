package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// CheckFixedSeeds are the seeds CI runs on every broker (scripts/check.sh).
// Chosen to cover, between them, every ordering, every fault kind, every
// sink mode, poison keys, records larger than the byte budget and a clean
// schedule (see docs/GUARANTEES.md for what each does).
var CheckFixedSeeds = map[string][]uint64{
	// key, black hole, kill while joining, freeze, blocking (the group-rebalance-timeout finding);
	// key, freeze, kill, black hole, throttle; partition, clean, large; none, poison, failing, freeze, kill.
	"kfake":     {25, 660345196, 7, 38},
	"kafka":     {8, 30}, // partition, large, black hole, freeze, poison; key, large, kill, failing, throttle
	"jetstream": {9, 24}, // key, large, kill, blocking, throttle, poison; none, large, freeze, blocking
	// Share groups (the kafka plan of the seed, ordering none). kfake-share: black hole, freeze,
	// kill, blocking, failing, slow; poison, 2 records over the byte budget, freeze, kill, leave,
	// failing. kafka-share: the same 4, and 198671022 (two members frozen past the lock, 3 records
	// over the budget, slow, blocking, failing), which stalled a partition before franz-go v1.22.3
	// and overran the byte budget before b4fd6f0 (GUARANTEES.md).
	"kfake-share": {137, 4},
	"kafka-share": {4, 198671022},
}

// CheckBrokers are the kinds -broker takes: where the records live and
// which group reads them.
var CheckBrokers = []string{"kfake", "kafka", "jetstream", "kfake-share", "kafka-share"}

// CheckOptions configures RunChecks.
type CheckOptions struct {
	// Broker is one of CheckBrokers, or several separated by commas: they
	// run one after the other, and kinds on the same broker (kafka and
	// kafka-share) share one start of it.
	Broker string
	Seeds  []uint64 // run these on each; with none, For of random seeds, or the fixed seeds of each
	For    time.Duration
	Bin    string // the sluice binary (built into Dir when empty)
	Dir    string
	Plan   PlanOptions
	Drain  time.Duration
	// KafkaPort and ProxyPort place the real broker and its proxy.
	KafkaPort, ProxyPort int
	Out                  io.Writer
	Logf                 func(format string, args ...any)
}

// RunChecks starts the sources, runs the schedules and prints each result
// as it comes and the table at the end. It returns ErrNoJava when a real
// broker cannot run here.
func RunChecks(ctx context.Context, o CheckOptions) ([]*CheckResult, error) {
	kinds := strings.Split(o.Broker, ",")
	for i, k := range kinds {
		if k = strings.TrimSpace(k); k == "" {
			k = "kfake"
		}
		kinds[i] = k
		if !slices.Contains(CheckBrokers, k) {
			return nil, fmt.Errorf("unknown broker %q: want one of %s", k, strings.Join(CheckBrokers, ", "))
		}
	}
	if o.Bin == "" {
		bin, err := Build(ctx, o.Dir)
		if err != nil {
			return nil, err
		}
		o.Bin = bin
	}
	brokers := map[string]Broker{} // kfake or kafka, started once
	defer func() {
		for _, b := range brokers {
			b.Close()
		}
	}()
	broker := func(base string) (Broker, error) {
		if b := brokers[base]; b != nil {
			return b, nil
		}
		var b Broker
		var err error
		if base == "kfake" {
			b, err = NewFake(filepath.Join(o.Dir, "kfake-data"))
		} else {
			var root string
			if root, err = repoRoot(); err != nil {
				return nil, err
			}
			b, err = NewReal(ctx, RealConfig{Script: filepath.Join(root, "scripts", "kafka.sh"),
				RunDir: filepath.Join(o.Dir, "kafka"), Port: o.KafkaPort, ProxyPort: o.ProxyPort, Logf: o.Logf})
		}
		if err != nil {
			return nil, err
		}
		brokers[base] = b
		return b, nil
	}
	var out []*CheckResult
	for _, kind := range kinds {
		if ctx.Err() != nil {
			break
		}
		var c *Checker
		switch kind {
		case "jetstream":
			var err error
			if c, err = NewJetStreamChecker(o.Dir); err != nil {
				return out, err
			}
		default:
			b, err := broker(strings.TrimSuffix(kind, "-share"))
			if err != nil {
				return out, err
			}
			if strings.HasSuffix(kind, "-share") {
				c = NewShareChecker(b)
			} else {
				c = NewKafkaChecker(b)
			}
		}
		c.Bin, c.Dir, c.Opts, c.DrainTimeout, c.Logf = o.Bin, o.Dir, o.Plan, o.Drain, o.Logf
		run := func(seed uint64) {
			r := c.RunSeed(ctx, seed)
			out = append(out, r)
			if o.Out != nil {
				WriteCheckResult(o.Out, r)
			}
		}
		switch seeds := o.Seeds; {
		case len(seeds) == 0 && o.For > 0:
			end := time.Now().Add(o.For)
			for time.Now().Before(end) && ctx.Err() == nil {
				run(rand.Uint64() % 1e9)
			}
		default:
			if len(seeds) == 0 {
				seeds = CheckFixedSeeds[kind]
			}
			for _, s := range seeds {
				if ctx.Err() != nil {
					break
				}
				run(s)
			}
		}
		c.Close()
	}
	if o.Out != nil {
		CheckTable(o.Out, out)
	}
	return out, nil
}

// WriteCheckResult prints one schedule's verdict; a failure with its seed,
// its violations and the command that replays it.
func WriteCheckResult(w io.Writer, r *CheckResult) {
	verdict := "PASS"
	if !r.Pass() {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "%s %s seed %d (%s, %s): produced %d, delivered %d, dead-lettered %d, lost %d, duplicates %d/%d (%d delivered twice), concurrent %d, peak window %d/%d (%.0f/%.0f KiB), peak RSS %.1f MiB, worst recovery %s, drain %s\n",
		verdict, r.Broker, r.Seed, r.Plan.Ordering, r.Duration, r.Produced, r.Delivered, r.DeadLettered, r.Lost,
		r.Duplicates, r.DupBound, r.DupDelivered, r.Concurrent, r.PeakWindow, r.WindowBudget,
		float64(r.PeakBytes)/1024, float64(r.BytesBudget)/1024, mib(r.PeakRSS), r.WorstRecovery.Round(100*time.Millisecond), r.DrainTime)
	if r.Pass() {
		return
	}
	if r.Err != nil {
		fmt.Fprintf(w, "  error: %v\n", r.Err)
	}
	var kinds []string
	for k, n := range r.Counts {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(kinds)
	fmt.Fprintf(w, "  violations: %s\n", strings.Join(kinds, ", "))
	// The first few of each invariant.
	shown := map[string]int{}
	for _, v := range r.Violations {
		if shown[v.Invariant] < 3 {
			shown[v.Invariant]++
			fmt.Fprintf(w, "    %s\n", v)
		}
	}
	fmt.Fprintf(w, "  schedule: %s\n", strings.ReplaceAll(r.Plan.Describe(), "\n", "\n  "))
	fmt.Fprintf(w, "  replay: %s\n", r.Replay)
}

// CheckTable prints one row per schedule and the totals.
func CheckTable(w io.Writer, rs []*CheckResult) bool {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "seed\tbroker\tordering\tfaults\tproduced\tlost\tdup/bound\tconcurrent\twindow/budget\tRSS MiB/budget\trecovery\ttime\tresult\t\n")
	faults := map[string]int{}
	var prod, lost, dup, bound, conc, zombie, nFail int
	var peakW, budgetW, peakRSS, budgetRSS int64
	var worst time.Duration
	var worstAfter string
	for _, r := range rs {
		nf := 0
		for k, n := range r.Faults {
			faults[k] += n
			nf += n
		}
		res := "ok"
		if !r.Pass() {
			res = "FAIL"
			var ks []string
			for k := range r.Counts {
				ks = append(ks, k)
			}
			sort.Strings(ks)
			if r.Err != nil {
				ks = append(ks, "error")
			}
			res += " (" + strings.Join(ks, ",") + ")"
			nFail++
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%d\t%d/%d\t%d\t%d/%d\t%.0f/%.0f\t%s\t%s\t%s\t\n", r.Seed, r.Broker, r.Plan.Ordering, nf,
			r.Produced, r.Lost, r.Duplicates, r.DupBound, r.Concurrent, r.PeakWindow, r.WindowBudget,
			mib(r.PeakRSS), mib(r.RSSBudget), r.WorstRecovery.Round(100*time.Millisecond), r.Duration.Round(time.Second), res)
		prod += r.Produced
		lost += r.Lost
		dup += r.Duplicates
		bound += r.DupBound
		conc += r.Concurrent
		zombie += r.ZombieOverl
		peakW, budgetW = max(peakW, r.PeakWindow), max(budgetW, r.WindowBudget)
		peakRSS, budgetRSS = max(peakRSS, r.PeakRSS), max(budgetRSS, r.RSSBudget)
		if r.WorstRecovery > worst {
			worst, worstAfter = r.WorstRecovery, r.WorstAfter
		}
	}
	tw.Flush()
	var fk []string
	for k, n := range faults {
		fk = append(fk, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(fk)
	fmt.Fprintf(w, "schedules %d (%d failed); faults: %s\n", len(rs), nFail, strings.Join(fk, ", "))
	fmt.Fprintf(w, "records produced %d, lost %d; duplicates %d (allowance %d); concurrent same-lane deliveries %d (+%d with a silent member, allowed); peak window %d (largest budget %d); peak RSS %.1f MiB (budget %.1f MiB); worst recovery %s (after %s, bound %s)\n",
		prod, lost, dup, bound, conc, zombie, peakW, budgetW, mib(peakRSS), mib(budgetRSS), worst.Round(100*time.Millisecond), worstAfter, CheckRecoveryBound)
	verdict := "PASS"
	if nFail > 0 {
		verdict = "FAIL"
		for _, r := range rs {
			if !r.Pass() {
				fmt.Fprintf(w, "  failed: seed %d on %s: replay with `%s`\n", r.Seed, r.Broker, r.Replay)
			}
		}
	}
	fmt.Fprintf(w, "check: %s\n", verdict)
	return nFail == 0
}

// IsNoJava reports whether err says the real broker cannot run here.
func IsNoJava(err error) bool { return errors.Is(err, ErrNoJava) }

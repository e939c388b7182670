package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluicehq/sluice/autoscale"
	"github.com/sluicehq/sluice/autoscale/sim"
)

// benchAutoscale runs `sluice-dev bench autoscale`: the real autoscale policy and
// three baselines (fixed pools at min and max, a naive queue-depth threshold)
// through the standard scenarios in virtual time. It prints a table per
// controller, the goals, and, as the last line of stdout, one JSON
// object with the per-controller figures. With -svg DIR it writes
// DIR/autoscale-<scenario>.svg for each scenario. It exits 1 when a goal is
// missed and 2 on bad flags.
func benchAutoscale(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sluice-dev bench autoscale", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		scenarios = fs.String("scenario", "all", "comma-separated scenarios to run, or all")
		seed      = fs.Uint64("seed", 1, "random seed (runs are deterministic for a seed)")
		svgDir    = fs.String("svg", "", "write autoscale-<scenario>.svg plots into this directory")
		minW      = fs.Int("min", 0, "minimum workers (0: the policy default, 1)")
		maxW      = fs.Int("max", 0, "maximum workers (0: sim.PoolMax, 256, as measured in docs/AUTOSCALE.md)")
		maxStep   = fs.Int("max-step", 0, "step limit in workers (0: adaptive, max(4, n) up)")
		interval  = fs.Duration("interval", 0, "sampling interval (0: the policy default, 1s)")
		noLag     = fs.Bool("no-lag", false, "samples report no broker lag (as core NATS): the policy sizes on admissions")
	)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sluice-dev bench autoscale [flags]")
		fmt.Fprintln(stderr, "scenarios:", strings.Join(scenarioNames(), ", "))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sluice-dev bench autoscale: unexpected arguments %q\n", fs.Args())
		return 2
	}
	picked, err := pickScenarios(*scenarios)
	if err != nil {
		fmt.Fprintf(stderr, "sluice-dev bench autoscale: %v\n", err)
		return 2
	}
	cfg := autoscale.Config{Min: *minW, Max: *maxW, MaxStep: *maxStep, Interval: *interval}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "sluice-dev bench autoscale: %v\n", err)
		return 2
	}
	opts := sim.Options{Seed: *seed, Config: cfg, NoLag: *noLag}

	start := time.Now()
	var cmps []sim.Comparison
	for _, sc := range picked {
		if err := ctx.Err(); err != nil {
			fmt.Fprintf(stderr, "sluice-dev bench autoscale: %v\n", err)
			return 1
		}
		c, err := sim.Compare([]sim.Scenario{sc}, opts)
		if err != nil {
			fmt.Fprintf(stderr, "sluice-dev bench autoscale: %v\n", err)
			return 2
		}
		cmps = append(cmps, c...)
	}

	for _, c := range cmps {
		fmt.Fprintf(stdout, "%-13s %s\n", c.Scenario.Name, c.Scenario.Title)
	}
	fmt.Fprintln(stdout)
	if err := sim.WriteTable(stdout, cmps); err != nil {
		fmt.Fprintf(stderr, "sluice-dev bench autoscale: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout)
	rep := sim.NewReport(*seed, cmps)
	if err := sim.WriteGoals(stdout, rep.Goals); err != nil {
		fmt.Fprintf(stderr, "sluice-dev bench autoscale: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "\nsimulated %d scenarios × %d controllers in %v (virtual time, fluid model at 1 ms)\n",
		len(cmps), len(cmps[0].Results), time.Since(start).Round(time.Millisecond))

	if *svgDir != "" {
		maxN := *maxW
		if maxN == 0 {
			maxN = sim.PoolMax
		}
		for _, c := range cmps {
			path := filepath.Join(*svgDir, "autoscale-"+c.Scenario.Name+".svg")
			if err := writeSVGFile(path, c, maxN); err != nil {
				fmt.Fprintf(stderr, "sluice-dev bench autoscale: %v\n", err)
				return 1
			}
			fmt.Fprintf(stderr, "wrote %s\n", path)
		}
	}

	if err := rep.WriteJSON(stdout); err != nil {
		fmt.Fprintf(stderr, "sluice-dev bench autoscale: %v\n", err)
		return 1
	}
	if !rep.OK {
		return 1
	}
	return 0
}

func writeSVGFile(path string, c sim.Comparison, maxWorkers int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := sim.WriteSVG(f, c, maxWorkers); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func scenarioNames() []string {
	var names []string
	for _, s := range sim.Scenarios() {
		names = append(names, s.Name)
	}
	return names
}

func pickScenarios(list string) ([]sim.Scenario, error) {
	all := sim.Scenarios()
	if list == "" || list == "all" {
		return all, nil
	}
	var out []sim.Scenario
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		found := false
		for _, s := range all {
			if s.Name == name {
				out = append(out, s)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown scenario %q (have %s)", name, strings.Join(scenarioNames(), ", "))
		}
	}
	return out, nil
}

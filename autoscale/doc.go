// Package autoscale sizes Sluice's worker pool from what it measures, and
// exports the signal that sizes the number of pods.
//
// It is a pure Policy plus a thin loop. The Policy takes Samples of the
// pipeline (cumulative counters and gauges, with the time they were taken)
// and returns a Decision: the wanted pool size, a Reason from a small fixed
// set, and the view behind it (rates, sink latency, depth slope, busy ratio,
// error share, the learned sink ceiling, the pod signal). It never reads a
// clock and does no I/O, so it runs the same in production, in a test's
// virtual time and in the scenario harness of the sim sub-package.
//
// How it reasons (the Policy's documentation has the rules in order):
//   - Little's law gives the size: workers = demand × sink time per record,
//     plus Headroom, plus what it takes to drain the queue in DrainTime.
//   - Every increase is an experiment. When the extra workers raised sink
//     latency or errors instead of throughput, the sink is the bottleneck
//     (as Netflix's Gradient2 and Envoy's adaptive concurrency reason): step
//     back at once, hold a ceiling, probe one worker above it now and then.
//   - Against flapping: a dead band, a scale-down stabilisation window (the
//     highest recommendation within it, as the Kubernetes HPA does), no
//     reversal on a single sample, a step limit, Min and Max, a sink's own
//     declared maximum, and no growth while workers sit idle or the sink
//     fails.
//
// The Controller samples on an Interval, calls Pool.Resize when the target
// changes, counts each decision in sluice_autoscale_decisions_total{direction,
// reason}, logs each resize with its reason, and exports gauges for the
// view and the pod signal (sluice_autoscale_desired_replicas: sum it over
// pods for the replica count; see PodSignal). Metrics go to the Registerer
// given with WithRegisterer, never to the global registry.
//
// Wiring, in cmd/sluice:
//
//	ctl, err := autoscale.New(cfg, pool, pipeline.AutoscaleSample,
//		autoscale.WithLogger(log), autoscale.WithRegisterer(reg))
//	if err != nil {
//		return err
//	}
//	g.Go(func() error { return ctl.Run(ctx) })
//
// The package imports only the standard library and client_golang.
package autoscale

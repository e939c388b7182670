// Package config is Sluice's configuration: one table that declares every
// SLUICE_ environment variable once (its name, where its value goes, its
// help text and whether it is secret) and everything driven by it: the
// loader, the errors that name variables, `sluice config` and `sluice
// config --env` (from which README.md's table is generated and the chart's
// mapping test reads the variables).
//
// A setting's default is not written in the table: it is what the package
// that owns the setting fills in (consumer, sinks, autoscale), read by
// validating zero configurations of those packages. Settings that only the
// service has (SLUICE_SINK, SLUICE_HTTP_ADDR, ...) have theirs in
// serviceDefaults.
//
// Load reads an environment once, builds every package's Config, validates
// each once and returns them, or an *Error naming every bad variable:
//
//	cfg, err := config.Load(os.Environ())
//	if err != nil {
//		fmt.Fprintln(os.Stderr, "sluice:", err) // exit 2
//	}
//	c, err := consumer.New(cfg.Consumer, sink)
//
// The environment may also hold the variables Kubernetes injects for
// Services whose name starts with sluice (SLUICE_METRICS_SERVICE_HOST and
// friends): those are recognised by their shape and value and ignored;
// any other unknown SLUICE_ variable is an error.
package config

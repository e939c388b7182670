// Package sinks holds Sluice's sinks: where delivered messages go.
//
// Every sink implements [consumer.Sink]: Deliver returns nil once a message
// is safely stored and an error otherwise. A sink never acknowledges or
// commits; the pipeline does that after Deliver returned nil. Sinks are safe
// for concurrent use, and Close releases what they hold.
//
//	sink := sinks.NewStdout(os.Stdout)
//	c, err := consumer.New(cfg, sink)
package sinks

// Package e2e proves Sluice's delivery contract end to end: the real sluice
// binary runs as separate processes against a broker (kfake persisting to a
// data dir on a fixed port, or a real Apache Kafka broker that
// scripts/kafka.sh starts), a producer writes numbered records, faults are
// injected, and a ledger check says whether anything was lost.
//
// The pieces:
//
//   - Broker: kfake or real Kafka, restartable in place, with a Proxy in
//     front that the broker advertises, so every connection Sluice opens can
//     be cut or slowed. The harness's own clients bypass the proxy.
//   - Process: one `sluice run` with SLUICE_SINK=stdout; its stdout (one
//     JSON line per delivered record: partition, offset, key, value) is the
//     ledger of one phase.
//   - Producer: numbered records at a steady rate; it remembers what the
//     broker acknowledged.
//   - Verify: reads the topic back and compares it with every ledger: lost
//     (in the log or acknowledged, never delivered), phantom (delivered, not
//     in the log with that value), duplicates (by phase).
//   - Suite and Scenarios: SIGTERM, SIGKILL, broker restart, network cut,
//     rebalance storm, commit failures; Table prints the result.
//
// `go test ./e2e/` runs a smoke (scenarios 1 and 8, a few thousand records);
// SLUICEDEV_CHAOS=1 runs the whole suite; scripts/chaos.sh (make chaos) runs it
// with `go run ./e2e/cmd/chaos`, on kfake and, where java and mvn exist, on a
// real broker. docs/GUARANTEES.md states the promises and the measured table.
//
//	s := &e2e.Suite{Bin: bin, Broker: broker, Dir: dir, Size: e2e.Short}
//	defer s.Close()
//	e2e.Table(os.Stdout, broker.Kind(), s.Run(ctx, nil))
package e2e

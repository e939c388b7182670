// Package consumer reads records from a broker and hands them to a Sink,
// at least once (core NATS: at most once), within a fixed memory budget.
//
// # Consumer and Config
//
// New builds a Consumer from a Config and a Sink; Run runs it until its
// context ends or Drain is called. Config.Source names the source: Kafka
// (SourceKafka), a Kafka share group (SourceKafkaShare), a JetStream
// durable pull consumer (SourceJetStream) or core NATS (SourceNATS). The
// rest of Config is common to all sources: the budget, the ordering, the
// pool size, the retry policy and the timeouts. Config.Kafka and
// Config.NATS hold each source's own settings.
//
// # From the source to the window
//
// A source sees the consumer only through a narrow seam, intake. Room and
// Free say how much the window takes now, and Changed signals when room
// comes back. Admit hands over records of one partition, and Assigned,
// Revoked and Lost report what the broker gave and took away. What else a
// source does, it declares with small interfaces found by type assertion:
// a committer records commit points, an acker acknowledges each message,
// a settler hands a failed message back for a later redelivery.
//
// The Window is the budget of the whole process, in records and in bytes.
// Admit is the only place where records take places in it. A source asks
// for no more than the window has room for, and Admit takes only what
// fits: anything more waits outside the window until there is room. So
// the budget holds, except for one record larger than all of it, which is
// admitted alone into an empty window. A record keeps its place until the broker has
// recorded it: its offset committed (Kafka), or its ack sent (JetStream, a
// share group). A core NATS message keeps it until the pipeline is done
// with it.
//
// # From the window to the sink
//
// The pipeline queues admitted records in lanes. A lane is delivered in
// order, by one worker at a time. Config.Ordering picks the lanes: one per
// key (OrderKey, the default; records without a key carry no order), one
// per partition (OrderPartition), or chunks with no order between them
// (OrderNone, cut into one chunk per worker). A pool of workers takes a
// batch from a lane that is ready and delivers it to the Sink: in one call
// when the sink is a BatchSink, else one message at a time. A failed
// delivery is retried, dead-lettered or held where it is, as the failure
// policy decides; what a worker did not deliver goes back to its lane.
//
// # Commits
//
// For Kafka, the tracker keeps, for each partition, the runs of admitted
// records (segments) and how many of each are done: with key ordering an
// admission's records are one segment with a done mark per record. The
// done offset moves only over the contiguous done prefix, never past a
// record that was not delivered. A commit takes that prefix, and once the broker has stored
// it, its records give their places in the window back. That is the whole
// at-least-once argument. Commits run on CommitInterval, as soon as a
// quarter of the window is done but not committed, every 25 ms while the
// window is above its low-water mark, and on revoke and shutdown. The
// other sources acknowledge each message (core NATS has nothing to
// acknowledge), so their records are not tracked.
//
// # Pausing
//
// The pause policy decides from the window's fill. The window is under
// pressure from when its fill reaches the high-water mark until it falls
// back to the low-water mark. Once that has lasted PauseDelay, the policy
// pauses the partitions that hold more than their fair share of the
// budget, or all of them if none does (all of them, too, when the window
// is full). At the low-water mark it resumes them all. The source carries
// the decision out: Kafka stops fetching the partition, JetStream sends no
// pull, a share group does not poll, and core NATS stops reading (its
// client drops what overflows its buffer, and counts it).
//
// # Files
//
// Each concern has a file of its own:
//
//   - consumer.go: Consumer, New, Run, Drain, the pause trigger.
//   - config.go: Config, Ordering, the source names, validation.
//   - message.go: Message, Header, Sink, SinkFunc, Pinger.
//   - intake.go: the seam between the sources and the pipeline, and Admit.
//   - window.go: Window, the budget in records and bytes, with its water marks.
//   - flow.go: the pause policy, a pure function, and how it is applied.
//   - pipeline.go: the pipeline: admission into the tracker and the lanes,
//     and finishing a batch.
//   - lanes.go: lanes, the ready queue, lane reuse.
//   - pool.go: the workers, delivery to the sink, BatchSink.
//   - tracker.go: partitions, segments and the done prefix.
//   - commits.go: the commit loop, commit points, and what a commit gives
//     back to the window.
//   - rebalance.go: assigning, revoking (filling the gaps below the
//     frontier) and removing partitions.
//   - retry.go: the failure policy, its errors (Permanent, RetryAfter,
//     Unavailable) and backoff.
//   - deadletter.go: the dead-letter destination and its headers.
//   - kafka.go: KafkaConfig and the Kafka consumer-group source.
//   - share.go: the Kafka share-group source.
//   - liveness.go: fences Kafka deliveries while the group session may be lost.
//   - blocks.go, recordpool.go: reused memory for Kafka messages and records.
//   - clientlog.go: franz-go's log, passed on at sensible levels.
//   - jetstream.go: the JetStream source: pulls, admission, acks, lag.
//   - jsheld.go: the JetStream messages held unacked, and their InProgress
//     keep-alive.
//   - corenats.go: the core NATS source.
//   - natsconn.go: NATSConfig and the NATS connection both NATS sources use.
//   - natsmsg.go: message helpers shared by the NATS sources (headers, key,
//     ack subject).
//   - state.go: Stats and FlowState, readings for the autoscaler and
//     /debug/flow.
//   - metrics.go: the consumer's Prometheus instruments.
//   - redact.go: RedactURL and RedactText, for logs.
package consumer

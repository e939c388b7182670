package autoscale

import "time"

// Sample is one reading of the pipeline. Counters are cumulative since start
// (monotonic); the policy differentiates consecutive samples itself, so a
// sample can be taken at any moment without resetting anything. A counter
// that goes backwards is taken as a restart: the policy starts over.
type Sample struct {
	// At is when the sample was taken. The policy never reads a clock: all
	// rates and windows are computed from At.
	At time.Time

	// Workers is the current pool size.
	Workers int

	// Busy is the number of workers inside a sink call right now.
	Busy int

	// BusyTime is the cumulative worker time spent inside sink calls. The
	// busy ratio over an interval is dBusyTime / (Workers × dt). If it is
	// not provided (it never moves), Busy/Workers is used instead.
	BusyTime time.Duration

	// Depth is the number of records admitted and waiting for a worker.
	Depth int

	// Arrived is the cumulative number of records admitted into the pipeline.
	Arrived uint64

	// Completed is the cumulative number of records finished by the sink,
	// successfully or finally failed (dead-lettered).
	Completed uint64

	// Errors is the cumulative number of failed sink attempts that say
	// something about the sink's health (timeouts, 5xx, refused
	// connections). Per-record permanent failures (poison messages) should
	// not be counted here: they do not mean the sink is struggling.
	Errors uint64

	// SinkTime is the cumulative time spent inside sink calls, including
	// failed attempts, over Completed records: dSinkTime/dCompleted is the
	// sink time each completed record cost, which is the service time
	// Little's law needs (retries included).
	SinkTime time.Duration

	// Lag is the number of records behind the head of the log for this
	// member: end offset minus committed offset, summed over its partitions
	// (so it includes records admitted but not yet committed). For the pod
	// signal only.
	Lag int64

	// Partitions is how many partitions this member could usefully spread
	// over; it caps the pod signal. Zero or less means no cap (a JetStream
	// pull consumer can be shared by any number of members).
	Partitions int
}

// Pool is the worker pool the Controller sizes. Size and Resize are called
// from the Controller's Run goroutine only. Resize may take effect lazily (a
// shrinking pool may wait for busy workers to finish); Size and the next
// Sample's Workers should then report the size actually running.
type Pool interface {
	Size() int
	Resize(n int)
}

package consumer_test

import (
	"context"
	"testing"
	"time"

	"github.com/sluicehq/sluice/consumer"
	"github.com/sluicehq/sluice/internal/kafkatest"
)

// The autoscaler divides the sink time by the completions of an interval, so
// both must advance together, also inside a batch that takes seconds: one
// worker, one key (one lane, so one batch of all the records), a sink that
// takes at least 1 ms per record and then holds the rest of the batch. Once
// 32 completions are counted, at least 32 ms of sink time and busy time must
// be counted with them. (Counted only at the end of the batch, they were 0
// here, and in sluice-dev demo the controller read a sink time per record
// and a busy ratio that swung tens of times from one second to the next.)
func TestStatsCountSinkTimeWithCompletionsInsideABatch(t *testing.T) {
	const n, held = 60, 40
	cl, topics := kafkatest.New(t, 1, "stats")
	cl.Produce(topics[0], n, func(i int) ([]byte, []byte) { return []byte("one-key"), []byte{byte(i)} })
	sink := &pacedSink{ledger: newLedger(), per: time.Millisecond, holdFrom: held, release: make(chan struct{})}
	cfg := baseConfig(cl.Brokers, topics[0], "g-"+topics[0])
	cfg.Workers = 1
	c, err := consumer.New(cfg, sink, consumer.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	defer close(sink.release)
	sink.waitFor(t, held, time.Minute) // the worker is now held inside its batch
	st := c.Stats()
	if st.Completed < 32 || st.Completed > held {
		t.Fatalf("completed %d with %d records delivered and the next held: want the groups of 16 counted (32)", st.Completed, held)
	}
	if st.Busy != 1 {
		t.Fatalf("busy %d, want the one worker inside the sink", st.Busy)
	}
	want := time.Duration(st.Completed) * sink.per
	if st.SinkTime < want || st.BusyTime < want {
		t.Errorf("after %d completions of at least %v each: sink time %v, busy time %v; want both at least %v",
			st.Completed, sink.per, st.SinkTime, st.BusyTime, want)
	}
	sink.release <- struct{}{}
	sink.waitFor(t, n, time.Minute)
	stop()
	if st := c.Stats(); st.Completed != n || st.SinkTime < time.Duration(n)*sink.per {
		t.Errorf("after the batch: completed %d, sink time %v; want %d and at least %v", st.Completed, st.SinkTime, n, time.Duration(n)*sink.per)
	}
}

// pacedSink takes at least per for each record, and holds the record at
// offset holdFrom until release receives.
type pacedSink struct {
	*ledger
	per      time.Duration
	holdFrom int64
	release  chan struct{}
}

func (s *pacedSink) Deliver(ctx context.Context, m *consumer.Message) error {
	if m.Offset == s.holdFrom {
		select {
		case <-s.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	t := time.NewTimer(s.per) // the sink's latency, not a wait for a condition
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.ledger.Deliver(ctx, m)
}

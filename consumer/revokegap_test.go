package consumer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/consumer"
	"github.com/sluicehq/sluice/internal/kafkatest"
)

// TestRevokeFillsTheGapsBehindASlowKey: with key ordering, one slow key
// holds a few records while the other keys are delivered far past them.
// A member joins and takes a partition. The revoke delivers the slow key's
// records below the last delivered offset (the gaps) before it commits, so
// the committed prefix covers everything the first member delivered and
// the new owner repeats nothing. Before this, the revoke dropped every
// queued record and committed up to the first gap: 291 records of 800 were
// delivered twice.
func TestRevokeFillsTheGapsBehindASlowKey(t *testing.T) {
	cl, topics := kafkatest.New(t, 2, "gap")
	topic := topics[0]
	const n = 800
	cl.Produce(topic, n, func(i int) ([]byte, []byte) {
		if i%40 == 0 {
			return []byte("slow"), []byte(fmt.Sprint(i))
		}
		return []byte(fmt.Sprintf("k%d", i)), []byte(fmt.Sprint(i))
	})
	led := newLedger()
	sink := consumer.SinkFunc(func(ctx context.Context, m *consumer.Message) error {
		if string(m.Key) == "slow" {
			select {
			case <-time.After(150 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return led.Deliver(ctx, m)
	})
	cfg := baseConfig(cl.Brokers, topic, "g-"+topic)
	cfg.CommitInterval = time.Hour // only the revoke and the shutdown commit
	cfg.RebalanceTimeout = 5 * time.Second
	cfg.Kafka.SessionTimeout = 6 * time.Second
	reg := prometheus.NewRegistry()
	run(t, newMember(t, cfg, "first", sink, consumer.WithRegisterer(reg)))
	// The fast keys are done; the slow key's 20 records (3 s in all) wait.
	led.waitFor(t, 600, time.Minute)
	run(t, newMember(t, cfg, "second", sink))
	waitUntil(t, time.Minute, "the first member to give up a partition", func() bool {
		return counterWith(t, reg, "sluice_rebalances_total", "revoked") > 0
	})
	led.waitFor(t, n, time.Minute)
	if d := led.duplicates(); d != 0 {
		t.Errorf("%d records delivered again after a revoke that had time to fill its gaps", d)
	}
}

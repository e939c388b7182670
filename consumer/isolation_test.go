package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/consumer"
	"github.com/sluicehq/sluice/internal/kafkatest"
)

// With key ordering a failing key holds up only itself: every other key
// is delivered, each record once and in its key's order, while the bad
// key is still failing (its lane blocked by the default policy); and the
// bad key's records arrive once it recovers, in order too. A worker that
// batched several keys and retried in place would fail this (seen: 775 of
// 995 other records delivered while one key failed).
func TestAFailingKeyHoldsUpOnlyItself(t *testing.T) {
	cl, topics := kafkatest.New(t, 1, "keybatch")
	topic := topics[0]
	const keys, per = 200, 5
	cl.Produce(topic, keys*per, func(i int) ([]byte, []byte) {
		return []byte(fmt.Sprintf("k%d", i%keys)), []byte(fmt.Sprint(i))
	})
	led := newLedger()
	var mu sync.Mutex
	failing := true // the bad key fails until the test lets it recover
	var badTries int
	others := make(chan struct{})
	var othersOnce sync.Once
	sink := consumer.SinkFunc(func(ctx context.Context, m *consumer.Message) error {
		if string(m.Key) == "k7" {
			mu.Lock()
			defer mu.Unlock()
			if failing {
				badTries++
				return errors.New("k7 is down")
			}
		}
		if err := led.Deliver(ctx, m); err != nil {
			return err
		}
		if led.count() == (keys-1)*per {
			othersOnce.Do(func() { close(others) })
		}
		return nil
	})
	cfg := baseConfig(cl.Brokers, topic, "g-"+topic)
	cfg.Ordering = consumer.OrderKey
	cfg.Workers = 2
	cfg.RetryInitialBackoff, cfg.RetryMaxBackoff = 20*time.Millisecond, 50*time.Millisecond
	// After 5 attempts the default policy blocks the lane: k7 keeps it
	// until it recovers.
	run(t, newMember(t, cfg, "m", sink))

	select {
	case <-others:
	case <-time.After(time.Minute):
		t.Fatalf("the other keys were held up: %d of %d delivered while k7 failed", led.count(), (keys-1)*per)
	}
	mu.Lock()
	tries := badTries
	failing = false
	mu.Unlock()
	if tries == 0 {
		t.Fatal("k7 was never tried: the test proves nothing")
	}
	led.waitFor(t, keys*per, time.Minute)
	if d := led.duplicates(); d != 0 {
		t.Errorf("%d records delivered twice", d)
	}
	led.mu.Lock()
	defer led.mu.Unlock()
	for k, offs := range led.byKey {
		if !slices.IsSorted(offs) {
			t.Errorf("key %s delivered out of order: %v", k, offs)
		}
	}
}

// A shutdown whose drain runs out (the sink holds its records) still leaves
// the group in time: the revoke that leaving runs has no worker left to
// fill the gaps below its frontier (the undelivered rest of a batch goes
// back to its lane), so it must not wait for them. Before, it waited
// RebalanceTimeout for records nobody would deliver, the leave missed the
// shutdown deadline, and the next member got the partition only once this
// one's session expired.
func TestShutdownPastTheDrainStillLeavesTheGroup(t *testing.T) {
	cl, topics := kafkatest.New(t, 1, "leave")
	topic := topics[0]
	cl.Produce(topic, 200, func(i int) ([]byte, []byte) {
		return []byte(fmt.Sprintf("k%d", i%50)), []byte(fmt.Sprint(i))
	})
	cfg := baseConfig(cl.Brokers, topic, "g-"+topic)
	cfg.Ordering = consumer.OrderKey
	cfg.Workers = 2
	cfg.ShutdownTimeout = 2 * time.Second
	cfg.RebalanceTimeout = 20 * time.Second
	cfg.Kafka.SessionTimeout = 45 * time.Second
	var held sync.Once
	holding := make(chan struct{})
	hold := consumer.SinkFunc(func(ctx context.Context, m *consumer.Message) error {
		if m.Offset%7 == 3 { // a few keys hold; the others are delivered past them
			held.Do(func() { close(holding) })
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	})
	stop := run(t, newMember(t, cfg, "first", hold))
	select {
	case <-holding:
	case <-time.After(time.Minute):
		t.Fatal("the sink never held a record")
	}
	start := time.Now()
	stop()
	t.Logf("the first member stopped in %v", time.Since(start).Round(time.Millisecond))

	led := newLedger()
	run(t, newMember(t, cfg, "second", led))
	// Had the first member not left, the partition would wait for its
	// 45 s session.
	led.waitFor(t, 1, 15*time.Second)
}

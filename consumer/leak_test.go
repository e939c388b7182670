package consumer_test

import (
	"context"
	"testing"

	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/consumer"
)

// TestMain fails the package's tests if a goroutine outlives them: every
// goroutine has an owner that waits for it, the tests' own included.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Resize on a consumer whose Run has returned (here: it could not start)
// starts no worker, as nothing would ever stop it. cmd/sluice's autoscale
// controller resizes the consumer while Run fails on rejected credentials.
func TestResizeAfterRunReturnedStartsNoWorker(t *testing.T) {
	before := goleak.IgnoreCurrent()
	ns := startNATS(t)
	noop := consumer.SinkFunc(func(context.Context, *consumer.Message) error { return nil })
	c, err := consumer.New(jsConfig(ns.URL, "MISSING"), noop, consumer.WithLogger(natsLog()))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Run(context.Background()); err == nil {
		t.Fatal("Run on a missing stream returned nil")
	}
	c.Resize(4)
	ns.stop()
	goleak.VerifyNone(t, before)
}

package consumer

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// hungSource is a source whose coordinator does not answer: every commit
// waits until its context ends. Everything else is a no-op. It stands in
// for a dead group coordinator, which kfake cannot play without also
// holding up the heartbeats that share the commit's connection.
type hungSource struct {
	commits atomic.Int64
	live    atomic.Int64 // commits that started with a live context
}

func (h *hungSource) start(context.Context, intake) error { return nil }
func (h *hungSource) run(ctx context.Context) error       { <-ctx.Done(); return nil }
func (h *hungSource) commit(ctx context.Context, cps []commitPoint) ([]commitPoint, error) {
	h.commits.Add(1)
	if ctx.Err() == nil {
		h.live.Add(1)
	}
	<-ctx.Done()
	return cps, ctx.Err()
}
func (h *hungSource) pause([]*partition)    {}
func (h *hungSource) resume([]*partition)   {}
func (h *hungSource) close(context.Context) {}

// Bug 6: the commit loop committed with no deadline while holding the lock
// a revoke needs, so a revoke waited behind a commit to a dead coordinator
// for as long as that commit hung (for ever).
func TestRevokeDoesNotWaitBehindAHungCommit(t *testing.T) {
	cfg := Config{
		CommitInterval:   10 * time.Millisecond,
		RebalanceTimeout: 100 * time.Millisecond,
		CommitTimeout:    300 * time.Millisecond,
		Kafka:            KafkaConfig{Brokers: []string{"127.0.0.1:1"}, Topics: []string{"t"}},
	}
	c, err := New(cfg, SinkFunc(func(context.Context, *Message) error { return nil }))
	if err != nil {
		t.Fatal(err)
	}
	src := &hungSource{}
	c.src = src
	tp := topicPartition{"t", 0}
	c.pipe.assign([]topicPartition{tp})
	c.pipe.resize(1)
	defer c.pipe.stop()
	msgs := make([]*Message, 10)
	for i := range msgs {
		msgs[i] = &Message{Topic: "t", Offset: int64(i), size: 1}
	}
	c.win.Add(len(msgs), int64(len(msgs)))
	c.pipe.admit(c.pipe.partition(tp), msgs, int64(len(msgs)), -1)
	if !c.pipe.drain(t.Context()) {
		t.Fatal("the messages were not delivered")
	}

	loopCtx, stopLoop := context.WithCancel(context.Background())
	loopDone := make(chan struct{})
	go func() { defer close(loopDone); c.commitLoop(loopCtx) }()
	defer func() { stopLoop(); <-loopDone }()
	deadline := time.Now().Add(10 * time.Second)
	for src.commits.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the commit loop did not commit")
		}
		time.Sleep(time.Millisecond) // polling a counter the loop sets
	}

	revoked := make(chan struct{})
	go func() { defer close(revoked); c.revoked([]topicPartition{tp}, false) }()
	select {
	case <-revoked:
	case <-time.After(5 * time.Second):
		t.Fatal("the revoke was still waiting behind the hung commit after 5 s")
	}
	if src.live.Load() < 2 {
		t.Errorf("the revoke's own commit did not run on a live context (%d live commits of %d)", src.live.Load(), src.commits.Load())
	}
}

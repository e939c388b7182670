// Package sinktest is the test suite every Sluice sink passes: delivery of
// every message with its key, value and headers; order within a key where
// the sink promises it; error classification (a destination that is down is
// never a permanent failure); idempotent replay where promised; and close
// semantics.
//
//	func TestHTTPSuite(t *testing.T) {
//		sinktest.Run(t, sinktest.Harness{New: newHTTPSinkAndReader, Ordered: true, Headers: true})
//	}
package sinktest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/consumer"
)

// Record is what a destination holds for one delivered message.
type Record struct {
	Key, Value []byte
	Headers    map[string]string
}

// ReadFunc returns what the destination holds, in the destination's order.
// It may wait (bounded) until it holds at least n records, for destinations
// that are read asynchronously; holding fewer than n is not an error here,
// the suite reports it.
type ReadFunc func(t *testing.T, n int) []Record

// Harness tells the suite how to build and inspect one kind of sink.
type Harness struct {
	// New returns a sink writing to a fresh, empty destination, and a way
	// to read that destination. The suite closes the sink.
	New func(t *testing.T) (consumer.Sink, ReadFunc)
	// Ordered: the destination keeps the delivery order of messages with
	// the same key, and ReadFunc shows it.
	Ordered bool
	// Headers: the destination keeps message headers, and ReadFunc shows them.
	Headers bool
	// Idempotent: delivering the same messages again adds nothing.
	Idempotent bool
	// Break, when set, makes the destination fail until restore is called.
	Break func(t *testing.T) (restore func())
	// AcceptsAfterClose: Deliver may still succeed after Close (a sink that
	// holds nothing, such as Noop).
	AcceptsAfterClose bool
	// NoData: the sink stores nothing, so there is nothing to read (Noop).
	NoData bool
}

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	t.Run("delivers every message with key, value and headers", func(t *testing.T) {
		sink, read := h.New(t)
		defer closeSink(t, sink)
		msgs := Messages(300)
		deliverByKey(t, sink, msgs)
		if h.NoData {
			return
		}
		got := read(t, len(msgs))
		checkSame(t, h, msgs, got)
		if h.Ordered {
			checkKeyOrder(t, msgs, got)
		}
	})

	t.Run("a canceled or failing destination is never a permanent failure", func(t *testing.T) {
		sink, _ := h.New(t)
		defer closeSink(t, sink)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := sink.Deliver(ctx, Messages(1)[0]); consumer.IsPermanent(err) {
			t.Errorf("canceled context: got a permanent error: %v", err)
		}
		if h.Break == nil {
			return
		}
		m := Messages(2)
		if err := sink.Deliver(context.Background(), m[0]); err != nil {
			t.Fatalf("before breaking: %v", err)
		}
		restore := h.Break(t)
		dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := sink.Deliver(dctx, m[1])
		dcancel()
		if err == nil {
			restore()
			t.Fatal("Deliver to a broken destination returned nil")
		}
		if consumer.IsPermanent(err) {
			t.Errorf("broken destination: got a permanent error, want a retryable one: %v", err)
		}
		t.Logf("broken destination: %v (unavailable=%v)", err, consumer.IsUnavailable(err))
		restore()
		deadline := time.Now().Add(30 * time.Second)
		for {
			dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
			err = sink.Deliver(dctx, m[1])
			dcancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("restored destination still fails: %v", err)
			}
			time.Sleep(100 * time.Millisecond) // polling a recovering server: no event to wait on
		}
	})

	if h.Idempotent {
		t.Run("replaying the same messages leaves one record each", func(t *testing.T) {
			sink, read := h.New(t)
			defer closeSink(t, sink)
			msgs := Messages(100)
			deliverByKey(t, sink, msgs)
			deliverByKey(t, sink, msgs[:50])
			deliverByKey(t, sink, msgs)
			checkSame(t, h, msgs, read(t, len(msgs)))
		})
	}

	t.Run("close is idempotent and ends deliveries", func(t *testing.T) {
		sink, _ := h.New(t)
		if err := sink.Deliver(context.Background(), Messages(1)[0]); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
		closer, ok := sink.(interface{ Close(context.Context) error })
		if !ok {
			t.Fatal("the sink has no Close(ctx) error method")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := closer.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := closer.Close(ctx); err != nil {
			t.Errorf("second Close: %v", err)
		}
		done := make(chan error, 1)
		go func() { done <- sink.Deliver(ctx, Messages(2)[1]) }()
		select {
		case err := <-done:
			if err == nil && !h.AcceptsAfterClose {
				t.Error("Deliver after Close returned nil")
			}
		case <-ctx.Done():
			t.Error("Deliver after Close hung")
		}
	})
}

// Messages returns n messages over 3 partitions and 12 keys (every 7th has
// no key, every 25th has a binary key and value), each with a "trace"
// header and a value naming its index.
func Messages(n int) []*consumer.Message {
	out := make([]*consumer.Message, n)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range n {
		m := &consumer.Message{
			Source: "kafka", Topic: "suite", Partition: int32(i % 3), Offset: int64(i / 3),
			Key:     fmt.Appendf(nil, "key-%d", i%12),
			Value:   fmt.Appendf(nil, `{"i":%d}`, i),
			Headers: []consumer.Header{{Key: "trace", Value: fmt.Appendf(nil, "t-%d", i)}},
			Time:    t0.Add(time.Duration(i) * time.Millisecond),
		}
		switch {
		case i%25 == 24:
			m.Key = []byte{0xff, 0xfe, byte(i % 12)}
			m.Value = append([]byte{0xff, 0x00}, m.Value...)
		case i%7 == 6:
			m.Key = nil
		}
		out[i] = m
	}
	return out
}

// deliverByKey delivers msgs as the pipeline would: one goroutine per group
// of keys, each key's messages in order, alternating single deliveries and
// batches of up to 10.
func deliverByKey(t *testing.T, sink consumer.Sink, msgs []*consumer.Message) {
	t.Helper()
	const lanes = 4
	var byLane [lanes][]*consumer.Message
	for _, m := range msgs {
		l := 0
		if len(m.Key) > 0 {
			l = int(m.Key[len(m.Key)-1]) % lanes
		}
		byLane[l] = append(byLane[l], m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, lanes)
	for _, lane := range byLane {
		wg.Go(func() {
			for i := 0; i < len(lane); {
				if i%2 == 0 {
					if err := sink.Deliver(ctx, lane[i]); err != nil {
						errs <- fmt.Errorf("Deliver %s: %w", lane[i].Value, err)
						return
					}
					i++
					continue
				}
				chunk := lane[i:min(len(lane), i+10)]
				if n, err := consumer.DeliverBatch(ctx, sink, chunk); err != nil || n != len(chunk) {
					errs <- fmt.Errorf("DeliverBatch: %d of %d: %w", n, len(chunk), err)
					return
				}
				i += len(chunk)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func checkSame(t *testing.T, h Harness, want []*consumer.Message, got []Record) {
	t.Helper()
	byValue := map[string]Record{}
	for _, r := range got {
		if _, dup := byValue[string(r.Value)]; dup {
			t.Errorf("value %q held twice", r.Value)
		}
		byValue[string(r.Value)] = r
	}
	if len(got) != len(want) {
		t.Errorf("destination holds %d records, want %d", len(got), len(want))
	}
	for _, m := range want {
		r, ok := byValue[string(m.Value)]
		if !ok {
			t.Errorf("value %q missing", m.Value)
			continue
		}
		if !bytes.Equal(r.Key, m.Key) {
			t.Errorf("value %q: key %q, want %q", m.Value, r.Key, m.Key)
		}
		if h.Headers && r.Headers["trace"] != string(m.Headers[0].Value) {
			t.Errorf("value %q: headers %v, want trace=%s", m.Value, r.Headers, m.Headers[0].Value)
		}
	}
}

func checkKeyOrder(t *testing.T, want []*consumer.Message, got []Record) {
	t.Helper()
	index := map[string]int{}
	for i, m := range want {
		index[string(m.Value)] = i
	}
	last := map[string]int{}
	for _, r := range got {
		if len(r.Key) == 0 {
			continue
		}
		i := index[string(r.Value)]
		if prev, ok := last[string(r.Key)]; ok && i < prev {
			t.Errorf("key %q: message %d arrived after %d", r.Key, i, prev)
		}
		last[string(r.Key)] = i
	}
}

func closeSink(t *testing.T, s consumer.Sink) {
	t.Helper()
	if c, ok := s.(interface{ Close(context.Context) error }); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Close(ctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Close: %v", err)
		}
	}
}

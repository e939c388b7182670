package sinks_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/sinks"
)

// wantTrace is what traced() carries, as header pairs.
var wantTrace = []string{"traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	"tracestate=congo=t61rcWkgMzE", "x-internal=not forwarded", "tracestate=rojo=00f067aa0ba902b7"}

// TestKafkaSinkKeepsTraceContext: the record the Kafka sink produces has
// the source record's headers, trace context included, repeats in order
// (kfake, or the real broker).
func TestKafkaSinkKeepsTraceContext(t *testing.T) {
	cl, topics := kafkatest.New(t, 1, "trace")
	s, err := sinks.NewKafka(sinks.KafkaConfig{Brokers: cl.Brokers, Topic: topics[0], Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if err := s.Deliver(context.Background(), traced(5, []byte("k"), []byte("v"))); err != nil {
		t.Fatal(err)
	}
	rd, err := kgo.NewClient(kgo.SeedBrokers(cl.Brokers...), kgo.ConsumeTopics(topics[0]),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []string
	for len(got) == 0 && ctx.Err() == nil {
		rd.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				got = append(got, h.Key+"="+string(h.Value))
			}
		})
	}
	if !slices.Equal(got, wantTrace) {
		t.Errorf("headers %q, want %q", got, wantTrace)
	}
}

// TestNATSSinkKeepsTraceContext: the same through the NATS sink (an
// in-process nats-server with JetStream).
func TestNATSSinkKeepsTraceContext(t *testing.T) {
	ns := startNATS(t)
	st := ns.stream(t, "TRACE", "trace.out")
	s, err := sinks.NewNATS(sinks.NATSConfig{URL: ns.URL(), Subject: "trace.out"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if err := s.Deliver(context.Background(), traced(5, []byte("k"), []byte("v"))); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := st.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	h := nats.Header(m.Header)
	for _, tc := range []struct {
		key  string
		want []string
	}{
		{"traceparent", []string{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}},
		{"tracestate", []string{"congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7"}},
	} {
		if v := h.Values(tc.key); !slices.Equal(v, tc.want) {
			t.Errorf("%s: %q, want %q", tc.key, v, tc.want)
		}
	}
}

package sinks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/sluicehq/sluice/consumer"
	"github.com/sluicehq/sluice/sinks"
)

func TestStdoutWritesOneJSONLinePerMessage(t *testing.T) {
	var buf bytes.Buffer
	s := sinks.NewStdout(&buf)
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	msgs := []consumer.Message{
		{Source: "kafka", Topic: "t", Partition: 1, Offset: 7, Key: []byte("k"), Value: []byte(`{"a":1}`), Time: ts,
			Headers: []consumer.Header{{Key: "h", Value: []byte("v")}}},
		{Source: "kafka", Topic: "t", Partition: 2, Offset: 8, Value: []byte{0xff, 0x00}, Time: ts},
	}
	for i := range msgs {
		if err := s.Deliver(context.Background(), &msgs[i]); err != nil {
			t.Fatal(err)
		}
	}
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(lines), buf.String())
	}
	var first, second sinks.Line
	if err := json.Unmarshal(lines[0], &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(lines[1], &second); err != nil {
		t.Fatal(err)
	}
	if first.Key == nil || *first.Key != "k" || first.Value == nil || *first.Value != `{"a":1}` ||
		len(first.Headers) != 1 || first.Headers[0].Key != "h" || first.Headers[0].Value == nil || *first.Headers[0].Value != "v" || first.Offset != 7 || !first.Time.Equal(ts) {
		t.Errorf("first line = %+v", first)
	}
	if second.Value != nil || second.ValueB64 != "/wA=" || second.Key != nil {
		t.Errorf("binary value not base64: %+v", second)
	}
}

package consumer

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzDeadLetterHeaders builds the dead-letter copy of an arbitrary record
// and reads its sluice-dlq-* metadata back as a consumer of the dead-letter
// topic would: the record's own headers come first and unchanged; source,
// topic, partition, offset and attempts decode to the original values; the
// error is a prefix of the redacted cause (RedactText) of at most 1 KiB;
// the time is RFC 3339.
//
//	go test -run '^$' -fuzz FuzzDeadLetterHeaders -fuzztime 10s ./consumer
func FuzzDeadLetterHeaders(f *testing.F) {
	const secretCause = "dial https://u:hunter2@h/?token=abc: refused"
	f.Add("kafka", "orders", int32(3), int64(42), 2, "permanent", "http: 400 Bad Request", "trace-id", []byte("abc"))
	f.Add("jetstream", "ORDERS", int32(0), int64(1), 5, "max_attempts", strings.Repeat("é", 700), "", []byte(nil))
	f.Add("nats", "a.b.c", int32(-1), int64(-1), 0, "max_elapsed", "", "sluice-dlq-offset", []byte("forged"))
	// Found by CI's fuzzing: a query-like cause is redacted, so the header
	// is not a prefix of the raw cause.
	f.Add("kafka", "t", int32(0), int64(0), 1, "permanent", "?0=", "", []byte(nil))
	f.Add("kafka", "t", int32(0), int64(0), 1, "permanent", secretCause, "", []byte(nil))
	f.Fuzz(func(t *testing.T, source, topic string, part int32, off int64, attempt int, reason, cause, hk string, hv []byte) {
		m := &Message{Source: source, Topic: topic, Partition: part, Offset: off, Attempt: attempt,
			Key: []byte("k"), Value: []byte("v")}
		if hk != "" {
			m.Headers = []Header{{Key: hk, Value: hv}}
		}
		now := time.Date(2026, 11, 21, 15, 0, 0, 123, time.FixedZone("x", 3600))
		dm := deadLetterMessage(m, errors.New(cause), reason, now)
		if len(dm.Headers) != len(m.Headers)+8 {
			t.Fatalf("%d headers, want %d", len(dm.Headers), len(m.Headers)+8)
		}
		for i, h := range m.Headers {
			if dm.Headers[i].Key != h.Key || !bytes.Equal(dm.Headers[i].Value, h.Value) {
				t.Fatalf("own header %d changed: %+v", i, dm.Headers[i])
			}
		}
		// The metadata is the last 8 headers: a record's own header that
		// happens to use a sluice-dlq-* name does not shadow it.
		meta := map[string]string{}
		for _, h := range dm.Headers[len(m.Headers):] {
			if _, dup := meta[h.Key]; dup {
				t.Fatalf("metadata header %s twice", h.Key)
			}
			meta[h.Key] = string(h.Value)
		}
		if meta[HeaderDLQSource] != source || meta[HeaderDLQTopic] != topic || meta[HeaderDLQReason] != reason {
			t.Errorf("source/topic/reason = %q/%q/%q", meta[HeaderDLQSource], meta[HeaderDLQTopic], meta[HeaderDLQReason])
		}
		if p, err := strconv.ParseInt(meta[HeaderDLQPartition], 10, 32); err != nil || int32(p) != part {
			t.Errorf("partition %q, want %d", meta[HeaderDLQPartition], part)
		}
		if o, err := strconv.ParseInt(meta[HeaderDLQOffset], 10, 64); err != nil || o != off {
			t.Errorf("offset %q, want %d", meta[HeaderDLQOffset], off)
		}
		if a, err := strconv.Atoi(meta[HeaderDLQAttempts]); err != nil || a != attempt {
			t.Errorf("attempts %q, want %d", meta[HeaderDLQAttempts], attempt)
		}
		want := RedactText(cause)
		if e := meta[HeaderDLQError]; len(e) > 1024 || !strings.HasPrefix(want, e) || len(want) <= 1024 && e != want {
			t.Errorf("error header %d bytes, redacted cause %d bytes", len(e), len(want))
		}
		if cause == secretCause && (strings.Contains(meta[HeaderDLQError], "hunter2") || strings.Contains(meta[HeaderDLQError], "=abc")) {
			t.Errorf("error header carries a secret: %q", meta[HeaderDLQError])
		}
		if ts, err := time.Parse(time.RFC3339Nano, meta[HeaderDLQTime]); err != nil || !ts.Equal(now) {
			t.Errorf("time %q: %v", meta[HeaderDLQTime], err)
		}
		if dm.Topic != m.Topic || dm.Partition != part || dm.Offset != off || !bytes.Equal(dm.Value, m.Value) {
			t.Errorf("copy differs from the record: %+v", dm)
		}
	})
}

package e2e

import (
	"bytes"
	"context"
	"testing"

	"github.com/sluicehq/sluice/consumer"
	"github.com/sluicehq/sluice/sinks"
)

// FuzzLedgerRoundTrip writes a record with arbitrary key, value and headers
// through the stdout sink (the bytes Sluice puts on the wire to its ledger)
// and decodes the line with ParseLine: partition, offset, key and value
// must come back byte for byte, whatever the bytes (invalid UTF-8 travels
// as base64), and the line must be one line.
//
//	go test -run '^$' -fuzz FuzzLedgerRoundTrip -fuzztime 10s ./e2e
func FuzzLedgerRoundTrip(f *testing.F) {
	f.Add("orders", int32(3), int64(42), []byte("k1"), []byte(`{"n":1}`), "trace", []byte("abc"), false)
	f.Add("t", int32(0), int64(0), []byte{0xff, 0xfe}, []byte{0, 1, 2}, "", []byte(nil), true)
	f.Add("t\n\"x", int32(-1), int64(-1), []byte("\u2028\n\r"), []byte("\x00"), "h\x00", []byte{0xc3}, false)
	f.Fuzz(func(t *testing.T, topic string, part int32, off int64, key, value []byte, hk string, hv []byte, nilKey bool) {
		if topic == "" {
			topic = "t"
		}
		if nilKey {
			key = nil
		}
		m := &consumer.Message{Source: "kafka", Topic: topic, Partition: part, Offset: off, Key: key, Value: value}
		if hk != "" {
			m.Headers = []consumer.Header{{Key: hk, Value: hv}}
		}
		var buf bytes.Buffer
		if err := sinks.NewStdout(&buf).Deliver(context.Background(), m); err != nil {
			t.Skip("the sink refused it:", err) // nothing reached the ledger
		}
		line := buf.Bytes()
		if bytes.Count(line, []byte{'\n'}) != 1 || line[len(line)-1] != '\n' {
			t.Fatalf("not exactly one line: %q", line)
		}
		d, err := ParseLine(line)
		if err != nil {
			t.Fatalf("ParseLine(%q): %v", line, err)
		}
		// json.Marshal turns invalid UTF-8 in the topic into U+FFFD; topics
		// are valid UTF-8 in Kafka, so compare only those.
		if validUTF8(topic) && d.Topic != topic {
			t.Errorf("topic %q, want %q", d.Topic, topic)
		}
		if d.Partition != part || d.Offset != off {
			t.Errorf("at %d@%d, want %d@%d", d.Partition, d.Offset, part, off)
		}
		// A null key and an empty key are different records in Kafka.
		if !bytes.Equal(d.Key, key) || (key == nil) != (d.Key == nil) {
			t.Errorf("key %q (nil %t), want %q (nil %t)", d.Key, d.Key == nil, key, key == nil)
		}
		if !bytes.Equal(d.Value, value) {
			t.Errorf("value %q, want %q", d.Value, value)
		}
	})
}

// FuzzParseLine: whatever a ledger file holds (a torn write, a log line in
// the wrong file), ParseLine returns an error or a delivery, never panics.
func FuzzParseLine(f *testing.F) {
	f.Add([]byte(`{"source":"kafka","topic":"t","partition":1,"offset":2,"time":"2026-01-01T00:00:00Z","key":"k","value":"v"}`))
	f.Add([]byte(`{"topic":"t","partition":1,"offset":2,"key_b64":"/wA=","value_b64":"!!"}`))
	f.Add([]byte(`{"topic":"t","key":"k","key_b64":"aw=="}`))
	f.Add([]byte(`{"time":"x","level":"INFO","msg":"started"}`))
	f.Add([]byte(`{"topic":"t","partition":1,"off`))
	f.Fuzz(func(t *testing.T, line []byte) {
		d, err := ParseLine(line)
		if err == nil && d.Topic == "" {
			t.Fatalf("accepted a line without a topic: %q", line)
		}
	})
}

func validUTF8(s string) bool {
	return bytes.Equal([]byte(s), bytes.ToValidUTF8([]byte(s), []byte("\uFFFD")))
}

package sinks_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/consumer"
	"github.com/sluicehq/sluice/sinks"
)

// receiver is an httptest webhook that keeps every request it got.
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []received
}

type received struct {
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.reqs = append(r.reqs, received{header: req.Header.Clone(), body: body})
		r.mu.Unlock()
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) got() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

func newHTTPSink(t *testing.T, cfg sinks.HTTPConfig) *sinks.HTTP {
	t.Helper()
	s, err := sinks.NewHTTP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// traced is a record carrying the W3C trace context, tracestate twice.
func traced(offset int64, key, value []byte) *consumer.Message {
	return &consumer.Message{Source: "kafka", Topic: "orders", Partition: 3, Offset: offset, Key: key, Value: value,
		Time: time.Date(2026, 12, 3, 17, 0, 0, 123456789, time.UTC),
		Headers: []consumer.Header{
			{Key: "traceparent", Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")},
			{Key: "tracestate", Value: []byte("congo=t61rcWkgMzE")},
			{Key: "x-internal", Value: []byte("not forwarded")},
			{Key: "tracestate", Value: []byte("rojo=00f067aa0ba902b7")},
		}}
}

// TestHTTPRawBody: a raw body is the value's bytes exactly (binary
// included), with the content type, the coordinates in X-Sluice-*
// headers, a printable key as it is and any other in base64, and the trace
// context forwarded with its repeats in order.
func TestHTTPRawBody(t *testing.T) {
	r := newReceiver(t)
	s := newHTTPSink(t, sinks.HTTPConfig{URL: r.URL, Body: sinks.BodyRaw})
	value := []byte{0xff, 0x00, '{', '"', 0xfe}
	binKey := []byte{0x01, 0xc3, 0x28}
	for _, m := range []*consumer.Message{traced(41, []byte("order-7"), value), traced(42, binKey, []byte(`{"a":1}`)), traced(43, nil, nil)} {
		if err := s.Deliver(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	got := r.got()
	if len(got) != 3 {
		t.Fatalf("%d requests, want 3", len(got))
	}
	first := got[0]
	if !bytes.Equal(first.body, value) {
		t.Errorf("body %q, want the value %q", first.body, value)
	}
	for name, want := range map[string]string{
		"Content-Type":        "application/octet-stream",
		sinks.HeaderSource:    "kafka",
		sinks.HeaderTopic:     "orders",
		sinks.HeaderPartition: "3",
		sinks.HeaderOffset:    "41",
		sinks.HeaderTimestamp: "2026-12-03T17:00:00.123456789Z",
		sinks.HeaderKey:       "order-7",
		sinks.HeaderKeyB64:    "",
		"Idempotency-Key":     "kafka/orders/3/41",
		"Traceparent":         "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"X-Internal":          "",
	} {
		if v := first.header.Get(name); v != want {
			t.Errorf("%s: %q, want %q", name, v, want)
		}
	}
	if ts := first.header.Values("Tracestate"); !slices.Equal(ts, []string{"congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7"}) {
		t.Errorf("tracestate %q, want both values in order", ts)
	}
	second := got[1]
	if k := second.header.Get(sinks.HeaderKeyB64); k != base64.StdEncoding.EncodeToString(binKey) || second.header.Get(sinks.HeaderKey) != "" {
		t.Errorf("binary key: %s %q, %s %q", sinks.HeaderKeyB64, k, sinks.HeaderKey, second.header.Get(sinks.HeaderKey))
	}
	third := got[2]
	if _, ok := third.header[sinks.HeaderKey]; ok || third.header.Get(sinks.HeaderKeyB64) != "" || len(third.body) != 0 {
		t.Errorf("no key, no value: headers %v, body %q", third.header, third.body)
	}

	// A content type of one's own; raw bodies carry one record each.
	r2 := newReceiver(t)
	s2 := newHTTPSink(t, sinks.HTTPConfig{URL: r2.URL, Body: sinks.BodyRaw, ContentType: "application/cloudevents+json"})
	msgs := []*consumer.Message{traced(1, nil, []byte("a")), traced(2, nil, []byte("b"))}
	if n, err := s2.DeliverBatch(context.Background(), msgs); n != 2 || err != nil {
		t.Fatalf("DeliverBatch = %d, %v", n, err)
	}
	if got := r2.got(); len(got) != 2 || string(got[1].body) != "b" || got[0].header.Get("Content-Type") != "application/cloudevents+json" {
		t.Errorf("raw batch: %d requests %+v", len(got), got)
	}
}

// TestHTTPForwardHeaders: the envelope forwards the allowlist too; a header
// set in the config wins over a record's; a value no HTTP header can carry
// is left out (the request still goes); "none" forwards nothing; batch
// requests forward nothing.
func TestHTTPForwardHeaders(t *testing.T) {
	m := traced(7, []byte("k"), []byte("v"))
	m.Headers = append(m.Headers, consumer.Header{Key: "baggage", Value: []byte("a=1\r\nInjected: yes")},
		consumer.Header{Key: "X-Tenant", Value: []byte("acme")})
	for _, tc := range []struct {
		name    string
		cfg     sinks.HTTPConfig
		batch   bool
		want    map[string][]string
		without []string
	}{
		{name: "default", want: map[string][]string{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
			"Tracestate": {"congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7"}, "Content-Type": {"application/json"}},
			without: []string{"X-Tenant", "X-Internal"}},
		{name: "allowlist, config wins", cfg: sinks.HTTPConfig{ForwardHeaders: []string{"X-TENANT", "baggage", "traceparent"},
			Headers: map[string]string{"Traceparent": "00-configured-01"}},
			want:    map[string][]string{"X-Tenant": {"acme"}, "Traceparent": {"00-configured-01"}},
			without: []string{"Baggage", "Injected", "Tracestate"}},
		{name: "none", cfg: sinks.HTTPConfig{ForwardHeaders: []string{"none"}}, without: []string{"Traceparent", "Tracestate"}},
		{name: "batch", cfg: sinks.HTTPConfig{BatchMax: 2}, batch: true, without: []string{"Traceparent", "Tracestate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newReceiver(t)
			tc.cfg.URL = r.URL
			s := newHTTPSink(t, tc.cfg)
			var err error
			if tc.batch {
				_, err = s.DeliverBatch(context.Background(), []*consumer.Message{m, traced(8, nil, nil)})
			} else {
				err = s.Deliver(context.Background(), m)
			}
			if err != nil {
				t.Fatal(err)
			}
			got := r.got()
			if len(got) != 1 {
				t.Fatalf("%d requests, want 1", len(got))
			}
			h := got[0].header
			for name, want := range tc.want {
				if v := h.Values(name); !slices.Equal(v, want) {
					t.Errorf("%s: %q, want %q", name, v, want)
				}
			}
			for _, name := range tc.without {
				if v, ok := h[http.CanonicalHeaderKey(name)]; ok {
					t.Errorf("%s forwarded: %q", name, v)
				}
			}
			if !strings.Contains(string(got[0].body), `"offset":7`) {
				t.Errorf("body %s is not the envelope of offset 7", got[0].body)
			}
		})
	}
}

// TestEnvelopeHeadersArePairs: the envelope keeps every header, repeats
// in order, and a binary value in base64.
func TestEnvelopeHeadersArePairs(t *testing.T) {
	r := newReceiver(t)
	s := newHTTPSink(t, sinks.HTTPConfig{URL: r.URL})
	m := traced(1, nil, []byte("v"))
	m.Headers = append(m.Headers, consumer.Header{Key: "bin", Value: []byte{0xff, 0x00}}, consumer.Header{Key: "nil"})
	if err := s.Deliver(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	var l sinks.Line
	if err := json.Unmarshal(r.got()[0].body, &l); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range l.Headers {
		v := "<none>"
		switch {
		case h.Value != nil:
			v = *h.Value
		case h.ValueB64 != "":
			v = "b64:" + h.ValueB64
		}
		got = append(got, h.Key+"="+v)
	}
	want := []string{"traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate=congo=t61rcWkgMzE",
		"x-internal=not forwarded", "tracestate=rojo=00f067aa0ba902b7", "bin=b64:/wA=", "nil=<none>"}
	if !slices.Equal(got, want) {
		t.Errorf("envelope headers %q, want %q", got, want)
	}
}

// TestHTTPBatchIdempotencyKey: each batch request carries a key naming its
// first and last message, the same when the same chunk is sent again.
func TestHTTPBatchIdempotencyKey(t *testing.T) {
	r := newReceiver(t)
	s := newHTTPSink(t, sinks.HTTPConfig{URL: r.URL, BatchMax: 10})
	msgs := make([]*consumer.Message, 25)
	for i := range msgs {
		msgs[i] = &consumer.Message{Source: "kafka", Topic: "t", Partition: 1, Offset: int64(100 + i), Value: []byte("v")}
	}
	for range 2 {
		if n, err := s.DeliverBatch(context.Background(), msgs); n != 25 || err != nil {
			t.Fatalf("DeliverBatch = %d, %v", n, err)
		}
	}
	var keys []string
	for _, q := range r.got() {
		keys = append(keys, q.header.Get("Idempotency-Key"))
	}
	want := []string{"kafka/t/1/100..kafka/t/1/109", "kafka/t/1/110..kafka/t/1/119", "kafka/t/1/120..kafka/t/1/124"}
	if !slices.Equal(keys, append(slices.Clone(want), want...)) {
		t.Errorf("idempotency keys %q, want %q twice", keys, want)
	}

	// Chunks whose offsets have gaps (one key's records) are named by
	// every position: the same chunk again gets the same key, another
	// with the same first and last another.
	r2 := newReceiver(t)
	s2 := newHTTPSink(t, sinks.HTTPConfig{URL: r2.URL, BatchMax: 10})
	msg := func(off int64) *consumer.Message {
		return &consumer.Message{Source: "kafka", Topic: "t", Partition: 1, Offset: off, Value: []byte("v")}
	}
	for _, chunk := range [][]*consumer.Message{
		{msg(5), msg(9), msg(6)}, {msg(5), msg(9), msg(6)}, {msg(5), msg(7), msg(6)}, {msg(5), msg(6)},
	} {
		if n, err := s2.DeliverBatch(context.Background(), chunk); n != len(chunk) || err != nil {
			t.Fatalf("DeliverBatch = %d, %v", n, err)
		}
	}
	keys = keys[:0]
	for _, q := range r2.got() {
		keys = append(keys, q.header.Get("Idempotency-Key"))
	}
	if len(keys) != 4 || keys[0] != keys[1] || keys[1] == keys[2] || keys[3] != "kafka/t/1/5..kafka/t/1/6" ||
		!strings.HasPrefix(keys[0], "kafka/t/1/5..kafka/t/1/6#3-") {
		t.Errorf("idempotency keys %q: want the first two equal (kafka/t/1/5..kafka/t/1/6#3-<digest>), the third another, the fourth without a digest", keys)
	}
}

// TestHTTPBodyConfig: the settings refuse what cannot work, naming the
// field.
func TestHTTPBodyConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  sinks.HTTPConfig
		want string
	}{
		{sinks.HTTPConfig{Body: sinks.BodyRaw, BatchMax: 5}, "HTTP.BatchMax=5: want 1 with a raw body"},
		{sinks.HTTPConfig{Body: "json"}, "HTTP.Body=json: want envelope or raw"},
		{sinks.HTTPConfig{ContentType: "json\n"}, "HTTP.ContentType"},
		{sinks.HTTPConfig{ForwardHeaders: []string{"traceparent", "Content-Length"}}, `"Content-Length" is not one`},
		{sinks.HTTPConfig{ForwardHeaders: []string{"X-Sluice-Topic"}}, `"X-Sluice-Topic" is not one`},
		{sinks.HTTPConfig{ForwardHeaders: []string{"trace parent"}}, `"trace parent" is not one`},
	} {
		tc.cfg.URL = "http://127.0.0.1:1"
		if _, err := sinks.NewHTTP(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error with %q", tc.cfg, err, tc.want)
		}
	}
}

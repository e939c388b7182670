package sinks_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/consumer"
	"github.com/sluicehq/sluice/sinks"
	"github.com/sluicehq/sluice/sinks/sinktest"
)

func TestHTTPClassifiesResponses(t *testing.T) {
	type want struct {
		ok, permanent, unavailable, throttled bool
		delay                                 time.Duration
	}
	cases := []struct {
		name   string
		status int
		hdr    http.Header
		want   want
	}{
		{"200 delivers", 200, nil, want{ok: true}},
		{"204 delivers", 204, nil, want{ok: true}},
		{"429 with Retry-After waits that long", 429, http.Header{"Retry-After": {"7"}}, want{throttled: true, delay: 7 * time.Second}},
		{"429 without Retry-After is throttling", 429, nil, want{throttled: true}},
		{"503 with Retry-After waits that long", 503, http.Header{"Retry-After": {"2"}}, want{throttled: true, delay: 2 * time.Second}},
		{"503 without Retry-After is unavailable", 503, nil, want{unavailable: true}},
		{"502 is unavailable", 502, nil, want{unavailable: true}},
		{"500 is transient", 500, nil, want{}},
		{"408 is transient", 408, nil, want{}},
		{"400 is permanent", 400, nil, want{permanent: true}},
		{"404 is permanent", 404, nil, want{permanent: true}},
		{"422 is permanent", 422, nil, want{permanent: true}},
	}
	w := newWebhook(t)
	s, err := sinks.NewHTTP(sinks.HTTPConfig{URL: w.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w.setStatus(func(*http.Request, []sinks.Line) (int, http.Header) {
				if tc.status < 300 {
					return 0, nil // store it
				}
				return tc.status, tc.hdr
			})
			err := s.Deliver(context.Background(), sinktest.Messages(1)[0])
			if (err == nil) != tc.want.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.want.ok)
			}
			if err == nil {
				return
			}
			d, throttled := consumer.RetryDelay(err)
			if consumer.IsPermanent(err) != tc.want.permanent || consumer.IsUnavailable(err) != tc.want.unavailable ||
				throttled != tc.want.throttled || d != tc.want.delay {
				t.Errorf("%v: permanent=%v unavailable=%v throttled=%v delay=%v, want %+v", err,
					consumer.IsPermanent(err), consumer.IsUnavailable(err), throttled, d, tc.want)
			}
		})
	}
}

func TestHTTPTimesOutAHangingServerAsTransient(t *testing.T) {
	w := newWebhook(t)
	release := make(chan struct{})
	defer close(release)
	w.setStatus(func(r *http.Request, _ []sinks.Line) (int, http.Header) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return 500, nil
	})
	s, err := sinks.NewHTTP(sinks.HTTPConfig{URL: w.URL, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	start := time.Now()
	err = s.Deliver(context.Background(), sinktest.Messages(1)[0])
	if err == nil || consumer.IsPermanent(err) || consumer.IsUnavailable(err) {
		t.Fatalf("hang: err = %v, want a transient timeout", err)
	}
	if got := sinks.ErrorKind(err); got != "timeout" {
		t.Errorf("ErrorKind = %q, want timeout (%v)", got, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v with a 200ms timeout", d)
	}
}

func TestHTTPConnectionRefusedIsUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s, err := sinks.NewHTTP(sinks.HTTPConfig{URL: "http://" + addr + "/hook"})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Deliver(context.Background(), sinktest.Messages(1)[0])
	if !consumer.IsUnavailable(err) || consumer.IsPermanent(err) {
		t.Errorf("connection refused: %v, want unavailable", err)
	}
}

func TestHTTPBatchesAreOneRequestEach(t *testing.T) {
	w := newWebhook(t)
	s, err := sinks.NewHTTP(sinks.HTTPConfig{URL: w.URL, BatchMax: 10,
		Headers: map[string]string{"Authorization": "Bearer x"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	var auth []string
	w.setStatus(func(r *http.Request, _ []sinks.Line) (int, http.Header) {
		auth = append(auth, r.Header.Get("Authorization"))
		return 0, nil
	})
	msgs := sinktest.Messages(25)
	n, err := s.DeliverBatch(context.Background(), msgs)
	if err != nil || n != 25 {
		t.Fatalf("DeliverBatch = %d, %v", n, err)
	}
	if got := w.requests.Load(); got != 3 {
		t.Errorf("%d requests for 25 messages in batches of 10, want 3", got)
	}
	for _, a := range auth {
		if a != "Bearer x" {
			t.Errorf("Authorization = %q", a)
		}
	}
	if got := len(w.records(t)); got != 25 {
		t.Errorf("server holds %d records, want 25", got)
	}
	// A failing second request: the first 10 are reported delivered.
	calls := 0
	w.setStatus(func(*http.Request, []sinks.Line) (int, http.Header) {
		calls++
		if calls == 2 {
			return 500, nil
		}
		return 0, nil
	})
	n, err = s.DeliverBatch(context.Background(), msgs)
	if n != 10 || err == nil {
		t.Errorf("DeliverBatch with a failing 2nd request = %d, %v; want 10 and an error", n, err)
	}
}

func TestHTTPConfigNamesEveryBadField(t *testing.T) {
	_, err := sinks.NewHTTP(sinks.HTTPConfig{URL: "ftp://x", Method: "post", Timeout: -1, BatchMax: -1, MaxConns: -1})
	var fe *consumer.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v, want FieldErrors", err)
	}
	for _, f := range []string{"HTTP.URL", "HTTP.Method", "HTTP.Timeout", "HTTP.BatchMax", "HTTP.MaxConns"} {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error does not name %s: %v", f, err)
		}
	}
}

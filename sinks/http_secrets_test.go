package sinks

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/consumer"
)

// The secrets an operator puts in the HTTP sink's URL and headers never
// come back in its errors (which reach logs and dead-letter headers): not
// from a refusing receiver that echoes the request, not from a dial
// failure, not from a bad URL.
func TestHTTPErrorsCarryNoSecret(t *testing.T) {
	const (
		pass   = "hunter2-password"
		token  = "q-token-5f3a9"
		bearer = "bearer-secret-77c1"
	)
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, "rejected: "+r.Header.Get("Authorization")+" "+r.URL.String())
	}))
	defer echo.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := ln.Addr().String()
	ln.Close()

	check := func(t *testing.T, what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error", what)
		}
		for _, s := range []string{pass, token, bearer} {
			if strings.Contains(err.Error(), s) {
				t.Errorf("%s: the error shows a secret: %v", what, err)
			}
		}
	}
	msg := &consumer.Message{Topic: "t", Value: []byte(`{"a":1}`)}
	for _, tc := range []struct{ name, url string }{
		{"refusing receiver", strings.Replace(echo.URL, "http://", "http://user:"+pass+"@", 1) + "/hook?token=" + token},
		{"nothing listening", "http://user:" + pass + "@" + refused + "/hook?token=" + token},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := NewHTTP(HTTPConfig{URL: tc.url, Headers: map[string]string{"Authorization": "Bearer " + bearer}})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close(context.Background())
			err = h.Deliver(context.Background(), msg)
			check(t, "Deliver", err)
			if !strings.Contains(err.Error(), "redacted") {
				t.Errorf("the error does not name the endpoint (redacted): %v", err)
			}
			_, err = h.DeliverBatch(context.Background(), []*consumer.Message{msg, msg})
			check(t, "DeliverBatch", err)
			if tc.name == "nothing listening" {
				check(t, "Ping", h.Ping(context.Background()))
				if !consumer.IsUnavailable(err) {
					t.Errorf("a refused connection is no longer classed as the endpoint being down: %v", err)
				}
			}
		})
	}
	_, err = NewHTTP(HTTPConfig{URL: "ftp://user:" + pass + "@host/x?token=" + token})
	check(t, "NewHTTP with a bad URL", err)
	var fe *consumer.FieldError
	if !errors.As(err, &fe) || fe.Field != "HTTP.URL" {
		t.Errorf("a bad URL is not reported as HTTP.URL: %v", err)
	}
}

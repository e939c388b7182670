package sinks

import (
	"strings"
	"testing"
	"time"
)

// FuzzParseRetryAfter feeds the HTTP sink's Retry-After decoder whatever a
// webhook might answer. It must not panic; a value it accepts must be a
// wait of zero or more, and one it accepts as whole seconds must mean
// exactly that many seconds.
//
//	go test -run '^$' -fuzz FuzzParseRetryAfter -fuzztime 10s ./sinks
func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"0", "120", " 7 ", "-1", "1.5", "", "Wed, 21 Oct 2015 07:28:00 GMT",
		"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
		"+5", "0x10", "99999999999999999999"} {
		f.Add(s)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := parseRetryAfter(v, now)
		if !ok {
			if d != 0 {
				t.Fatalf("parseRetryAfter(%q) = %v, false: want 0 when refused", v, d)
			}
			return
		}
		if secondsOverflow(strings.TrimSpace(v)) && d != 24*time.Hour {
			t.Fatalf("parseRetryAfter(%q) = %v: a huge number of seconds must be capped at a day", v, d)
		}
		if d < 0 {
			t.Fatalf("parseRetryAfter(%q) = %v: a negative wait", v, d)
		}
	})
}

// secondsOverflow reports whether s is a whole number of seconds too large
// for a time.Duration.
func secondsOverflow(s string) bool {
	s = strings.TrimPrefix(s, "+")
	s = strings.TrimLeft(s, "0")
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return false
	}
	const maxSec = "9223372036" // int64 nanoseconds / 1e9
	return len(s) > len(maxSec) || len(s) == len(maxSec) && s > maxSec
}

package consumer

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestErrorHelpersKeepTheCauseAndClassify(t *testing.T) {
	base := errors.New("boom")
	if Permanent(nil) != nil || RetryAfter(nil, time.Second) != nil || Unavailable(nil) != nil {
		t.Fatal("wrapping nil must give nil")
	}
	p := fmt.Errorf("sink: %w", Permanent(base))
	if !IsPermanent(p) || !errors.Is(p, base) || IsUnavailable(p) {
		t.Errorf("Permanent: IsPermanent=%v Is(base)=%v", IsPermanent(p), errors.Is(p, base))
	}
	r := RetryAfter(Unavailable(base), 3*time.Second)
	if d, ok := RetryDelay(r); !ok || d != 3*time.Second {
		t.Errorf("RetryDelay = %v, %v", d, ok)
	}
	if !IsUnavailable(r) || !errors.Is(r, base) || IsPermanent(r) {
		t.Errorf("RetryAfter(Unavailable): IsUnavailable=%v Is(base)=%v", IsUnavailable(r), errors.Is(r, base))
	}
	if _, ok := RetryDelay(base); ok || IsPermanent(base) || IsUnavailable(base) {
		t.Error("a plain error is transient")
	}
}

func TestFailurePolicyDecides(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	transient := errors.New("500")
	type step struct {
		at     time.Duration // since t0
		err    error
		want   action
		reason string
	}
	cases := []struct {
		name   string
		dlq    bool
		policy DeadLetterPolicy
		steps  []step
	}{
		{"transient retries until max attempts, then dead-letters", true, DeadLetterBlock, []step{
			{0, transient, actRetry, ""},
			{time.Second, transient, actRetry, ""},
			{2 * time.Second, transient, actDeadLetter, "max_attempts"},
		}},
		{"permanent dead-letters at once", true, DeadLetterBlock, []step{
			{0, Permanent(transient), actDeadLetter, "permanent"},
		}},
		{"max elapsed gives up before max attempts", true, DeadLetterBlock, []step{
			{0, transient, actRetry, ""},
			{61 * time.Second, transient, actDeadLetter, "max_elapsed"},
		}},
		{"unavailable and throttled do not use up attempts or time", true, DeadLetterBlock, []step{
			{0, transient, actRetry, ""},
			{time.Second, Unavailable(transient), actRetry, ""},
			{10 * time.Minute, RetryAfter(transient, time.Minute), actRetry, ""},
			{11 * time.Minute, Unavailable(transient), actRetry, ""},
			// 11 min passed, all of it waiting on the destination.
			{11*time.Minute + time.Second, transient, actRetry, ""},
			{11*time.Minute + 2*time.Second, transient, actDeadLetter, "max_attempts"},
		}},
		{"no dead-letter destination, block policy: block and keep blocking", false, DeadLetterBlock, []step{
			{0, Permanent(transient), actBlock, "permanent"},
			{time.Second, transient, actBlock, "exhausted"},
			{2 * time.Second, Unavailable(transient), actBlock, "exhausted"},
		}},
		{"no dead-letter destination, drop policy", false, DeadLetterDrop, []step{
			{0, transient, actRetry, ""},
			{time.Second, transient, actRetry, ""},
			{2 * time.Second, transient, actDrop, "max_attempts"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{RetryMaxAttempts: 3, RetryMaxElapsed: time.Minute, DeadLetterPolicy: tc.policy,
				RetryInitialBackoff: 100 * time.Millisecond, RetryMaxBackoff: time.Second}
			f := newFailurePolicy(&cfg, tc.dlq)
			var st failureState
			for i, s := range tc.steps {
				d := f.decide(&st, s.err, t0.Add(s.at))
				if d.action != s.want || d.reason != s.reason {
					t.Fatalf("step %d: got %s (%q), want %s (%q)", i, d.action, d.reason, s.want, s.reason)
				}
				if (d.action == actRetry || d.action == actBlock) && (d.delay < 0 || d.delay > time.Minute+6*time.Second) {
					t.Fatalf("step %d: delay %v out of range", i, d.delay)
				}
			}
		})
	}
}

func TestFailurePolicyHonoursRetryAfterCappedAtMaxElapsed(t *testing.T) {
	cfg := Config{RetryMaxAttempts: 3, RetryMaxElapsed: time.Minute,
		RetryInitialBackoff: 100 * time.Millisecond, RetryMaxBackoff: time.Second}
	f := newFailurePolicy(&cfg, true)
	var st failureState
	d := f.decide(&st, RetryAfter(errors.New("429"), 7*time.Second), time.Now())
	if d.action != actRetry || d.delay < 7*time.Second || d.delay > 7*time.Second+time.Second {
		t.Errorf("got %s after %v, want retry after 7s (+jitter)", d.action, d.delay)
	}
	d = f.decide(&st, RetryAfter(errors.New("429"), time.Hour), time.Now())
	if d.delay < time.Minute || d.delay > time.Minute+7*time.Second {
		t.Errorf("delay %v, want capped at RetryMaxElapsed (1m, +jitter)", d.delay)
	}
}

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	b := backoff{initial: 100 * time.Millisecond, max: time.Second}
	for attempt, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond,
		4: 800 * time.Millisecond, 10: time.Second} {
		for range 50 {
			if d := b.next(attempt); d < want/2 || d > want {
				t.Fatalf("attempt %d: %v, want in [%v, %v]", attempt, d, want/2, want)
			}
		}
	}
}

func TestDeadLetterMessageCarriesWhereAndWhy(t *testing.T) {
	m := &Message{Source: "kafka", Topic: "orders", Partition: 3, Offset: 42, Key: []byte("k"),
		Value: []byte("v"), Attempt: 5, Headers: []Header{{"trace", []byte("x")}}}
	dm := deadLetterMessage(m, errors.New("HTTP 400: bad"), "permanent", time.Unix(0, 0))
	got := map[string]string{}
	for _, h := range dm.Headers {
		got[h.Key] = string(h.Value)
	}
	want := map[string]string{"trace": "x", HeaderDLQSource: "kafka", HeaderDLQTopic: "orders",
		HeaderDLQPartition: "3", HeaderDLQOffset: "42", HeaderDLQAttempts: "5",
		HeaderDLQReason: "permanent", HeaderDLQError: "HTTP 400: bad"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("header %s = %q, want %q", k, got[k], v)
		}
	}
	if string(dm.Key) != "k" || string(dm.Value) != "v" || len(m.Headers) != 1 {
		t.Errorf("key/value not kept or source headers modified")
	}
}

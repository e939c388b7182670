package consumer

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRedactURLAndText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://user:s3cret@hooks.example.com/p?token=abc&x=1", "https://redacted@hooks.example.com/p?token=redacted&x=redacted"},
		{"nats://tok3n@a:4222,nats://u:pw@b:4222", "nats://redacted@a:4222,nats://redacted@b:4222"},
		{"http://plain.example.com/hook", "http://plain.example.com/hook"},
		{"not a url password=hunter2", "not a url password=redacted"},
	} {
		if got := RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	text := `Post "http://bob:pw1@h/x?api_key=k2": dial tcp: refused; token: t3 Authorization='Bearer b4' secret=s5`
	got := RedactText(text)
	for _, s := range []string{"pw1", "k2", "t3", "Bearer b4", "s5"} {
		if strings.Contains(got, s) {
			t.Errorf("RedactText left %q in %q", s, got)
		}
	}
	if !strings.Contains(got, "dial tcp: refused") || !strings.Contains(got, `api_key=redacted": dial`) {
		t.Errorf("RedactText took more than the secrets: %q", got)
	}
	// An unquoted scheme and token: the token goes, not only the scheme.
	if got := RedactText("header Authorization: Bearer b6 rejected"); strings.Contains(got, "b6") || !strings.HasSuffix(got, " rejected") {
		t.Errorf("RedactText(Authorization: Bearer b6 ...) = %q", got)
	}
}

// A sink's error quoting a credential does not carry it into the
// dead-letter headers.
func TestDeadLetterErrorHeaderIsScrubbed(t *testing.T) {
	m := &Message{Source: "kafka", Topic: "t", Offset: 7}
	cause := errors.New(`Post "https://u:hunter2@h/hook?token=abc": 401 Unauthorized`)
	dm := deadLetterMessage(m, cause, "permanent", time.Unix(0, 0))
	for _, h := range dm.Headers {
		if h.Key == HeaderDLQError && (strings.Contains(string(h.Value), "hunter2") || strings.Contains(string(h.Value), "abc")) {
			t.Errorf("the dead-letter error header shows a secret: %s", h.Value)
		}
	}
}

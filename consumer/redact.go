package consumer

import (
	"log/slog"
	"net/url"
	"regexp"
	"strings"
)

// RedactURL returns u fit to print: the userinfo (a password, a token) and
// every query value replaced by "redacted", the rest kept so an operator
// can still tell which endpoint is meant. A comma-separated list (NATS
// server URLs) is redacted item by item. Text that does not parse as a URL
// goes through RedactText.
func RedactURL(u string) string {
	if strings.Contains(u, ",") {
		parts := strings.Split(u, ",")
		for i, p := range parts {
			parts[i] = RedactURL(strings.TrimSpace(p))
		}
		return strings.Join(parts, ",")
	}
	pu, err := url.Parse(u)
	if err != nil || pu.Scheme == "" {
		return RedactText(u)
	}
	if pu.User != nil {
		pu.User = url.User("redacted")
	}
	if pu.RawQuery != "" {
		q := pu.Query()
		for k := range q {
			q[k] = []string{"redacted"}
		}
		pu.RawQuery = q.Encode()
	}
	pu.Fragment = ""
	return pu.String()
}

var (
	userinfoRE = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/\s@"']+@`)
	queryRE    = regexp.MustCompile(`([?&][^=\s&#"']+=)[^&\s#"']*`)
	// The value: quoted, or up to a space, quote or separator, after an
	// optional auth scheme (Authorization: Bearer <token>).
	secretKVRE = regexp.MustCompile(`(?i)\b(password|passwd|pwd|token|secret|api[_-]?key|authorization)(\s*[=:]\s*)("[^"]*"|'[^']*'|(?:(?:bearer|basic|token)\s+)?[^\s"',;&]+)`)
)

// RedactText scrubs free text (an error message, say) of what usually
// carries a secret: the userinfo of URLs, query values, and key=value or
// key: value pairs whose key names a password, token, secret, API key or
// authorization.
func RedactText(s string) string {
	s = userinfoRE.ReplaceAllString(s, "${1}redacted@")
	s = queryRE.ReplaceAllString(s, "${1}redacted")
	return secretKVRE.ReplaceAllString(s, "${1}${2}redacted")
}

// errAttr is a sink's error as a log attribute, scrubbed by RedactText:
// sinks are anyone's code, and their errors may quote what they were given.
func errAttr(err error) slog.Attr { return slog.String("error", RedactText(err.Error())) }

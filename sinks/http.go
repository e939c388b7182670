package sinks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/consumer"
)

// HTTPConfig configures the HTTP webhook sink. The zero value of each field
// means its documented default.
type HTTPConfig struct {
	// URL receives the requests (required; http or https).
	URL string
	// Method is the request method (default POST).
	Method string
	// Headers are added to every request (e.g. Authorization).
	Headers map[string]string
	// Timeout bounds one request, including reading the response (default
	// 10 s). A request that times out is retried.
	Timeout time.Duration
	// BatchMax is the most messages in one request (default 1). With 1,
	// each request carries one message as a JSON object (see [Line]); above
	// 1, a batch the pipeline hands over is sent as a JSON array of such
	// objects, in order, and succeeds or fails as a whole.
	BatchMax int
	// MaxConns bounds the connections to the host, kept alive and reused
	// (default 64: keep it at or above the worker count).
	MaxConns int
}

func (c *HTTPConfig) setDefaults() {
	if c.Method == "" {
		c.Method = http.MethodPost
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.BatchMax == 0 {
		c.BatchMax = 1
	}
	if c.MaxConns == 0 {
		c.MaxConns = 64
	}
}

// Validate fills in defaults and reports every invalid field.
func (c *HTTPConfig) Validate() error {
	c.setDefaults()
	var errs []error
	bad := func(field string, v any, want string) {
		errs = append(errs, &consumer.FieldError{Field: "HTTP." + field, Value: v, Want: want})
	}
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("URL", consumer.RedactURL(c.URL), "want an http:// or https:// URL")
	}
	if c.Method != strings.ToUpper(c.Method) || strings.ContainsAny(c.Method, " /") {
		bad("Method", c.Method, "want an HTTP method such as POST or PUT")
	}
	if c.Timeout < time.Millisecond {
		bad("Timeout", c.Timeout, "want at least 1ms")
	}
	if c.BatchMax < 1 {
		bad("BatchMax", c.BatchMax, "want at least 1")
	}
	if c.MaxConns < 1 {
		bad("MaxConns", c.MaxConns, "want at least 1")
	}
	return errors.Join(errs...)
}

// HTTP posts messages to a webhook as JSON.
//
// A 2xx response means delivered. 429 and 503 with Retry-After ask for a
// wait (consumer.RetryAfter); 502, 503 and 504 without it, and connection
// failures, mean the endpoint is down (consumer.Unavailable); other 4xx mean
// the message will never be accepted (consumer.Permanent); other 5xx,
// timeouts and broken connections are transient. One-message requests carry
// an Idempotency-Key header (source/topic/partition/offset) the receiver can
// use to drop redeliveries.
//
// Safe for concurrent use. Close closes idle connections; Deliver after
// Close returns ErrClosed.
type HTTP struct {
	cfg     HTTPConfig
	safeURL string // cfg.URL fit to print (consumer.RedactURL)
	client  *http.Client
	hdr     http.Header
	closed  atomic.Bool
	bufs    sync.Pool
}

var (
	_ consumer.Sink      = (*HTTP)(nil)
	_ consumer.BatchSink = (*HTTP)(nil)
	_ consumer.Pinger    = (*HTTP)(nil)
)

// NewHTTP validates cfg and returns the sink. It connects to nothing yet.
func NewHTTP(cfg HTTPConfig) (*HTTP, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = cfg.MaxConns
	tr.MaxIdleConnsPerHost = cfg.MaxConns
	tr.MaxConnsPerHost = cfg.MaxConns
	tr.ResponseHeaderTimeout = cfg.Timeout
	hdr := http.Header{}
	for k, v := range cfg.Headers {
		hdr.Set(k, v)
	}
	hdr.Set("Content-Type", "application/json")
	h := &HTTP{cfg: cfg, safeURL: consumer.RedactURL(cfg.URL), client: &http.Client{Transport: tr, Timeout: cfg.Timeout}, hdr: hdr}
	h.bufs.New = func() any { return new(bytes.Buffer) }
	return h, nil
}

// Deliver sends m in one request.
func (h *HTTP) Deliver(ctx context.Context, m *consumer.Message) error {
	buf := h.bufs.Get().(*bytes.Buffer)
	defer h.bufs.Put(buf)
	buf.Reset()
	b, err := appendLine(buf.AvailableBuffer(), m)
	if err != nil {
		return consumer.Permanent(fmt.Errorf("http: encode %s[%d]@%d: %w", m.Topic, m.Partition, m.Offset, err))
	}
	buf.Write(b[:len(b)-1]) // without the newline
	key := m.Source + "/" + m.Topic + "/" + strconv.Itoa(int(m.Partition)) + "/" + strconv.FormatInt(m.Offset, 10)
	return h.post(ctx, buf.Bytes(), key)
}

// DeliverBatch sends msgs as JSON arrays of up to BatchMax messages, in
// order, and returns how many were accepted.
func (h *HTTP) DeliverBatch(ctx context.Context, msgs []*consumer.Message) (int, error) {
	if h.cfg.BatchMax == 1 {
		return consumer.DeliverBatch(ctx, consumer.SinkFunc(h.Deliver), msgs)
	}
	buf := h.bufs.Get().(*bytes.Buffer)
	defer h.bufs.Put(buf)
	for done := 0; done < len(msgs); {
		chunk := msgs[done:min(len(msgs), done+h.cfg.BatchMax)]
		buf.Reset()
		b := append(buf.AvailableBuffer(), '[')
		for i, m := range chunk {
			var err error
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendLine(b, m); err != nil {
				return done, fmt.Errorf("http: encode %s[%d]@%d: %w", m.Topic, m.Partition, m.Offset, err)
			}
			b = b[:len(b)-1]
		}
		b = append(b, ']')
		buf.Write(b)
		if err := h.post(ctx, buf.Bytes(), ""); err != nil {
			return done, err
		}
		done += len(chunk)
	}
	return len(msgs), nil
}

func (h *HTTP) post(ctx context.Context, body []byte, idemKey string) error {
	if h.closed.Load() {
		return fmt.Errorf("http: %w", ErrClosed)
	}
	req, err := http.NewRequestWithContext(ctx, h.cfg.Method, h.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return h.requestError(err)
	}
	req.Header = h.hdr.Clone()
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("http: %w", ctx.Err())
		}
		return unavailableIfDial(h.requestError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		// Read the rest so the connection is reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	// The response body is not quoted: a receiver may echo what it was
	// sent (an Authorization header, the record) into it, and the error
	// reaches logs and dead-letter headers. The status says enough.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	err = fmt.Errorf("http: %s %s: %s", h.cfg.Method, h.safeURL, resp.Status)
	return classifyStatus(resp, err)
}

// requestError restates an error of the HTTP client without the URL it
// quotes (net/http keeps the query, where tokens often are), naming the
// endpoint by its redacted URL instead. The cause stays reachable.
func (h *HTTP) requestError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("http: %s %s: %w", h.cfg.Method, h.safeURL, ue.Err)
	}
	return fmt.Errorf("http: %s %s: %s", h.cfg.Method, h.safeURL, consumer.RedactText(err.Error()))
}

// classifyStatus marks err by what the response status means for a retry.
func classifyStatus(resp *http.Response, err error) error {
	code := resp.StatusCode
	if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
		if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return consumer.RetryAfter(err, d)
		}
		if code == http.StatusTooManyRequests {
			return consumer.RetryAfter(err, 0) // throttled: back off, do not use up attempts
		}
	}
	switch {
	case code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout:
		return consumer.Unavailable(err)
	case code == http.StatusRequestTimeout:
		return err
	case code >= 300 && code < 500:
		return consumer.Permanent(err)
	}
	return err
}

// parseRetryAfter reads a Retry-After value: seconds, or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		// Cap absurd values (and keep them from overflowing a Duration):
		// a day is longer than any server means.
		return time.Duration(min(s, 86400)) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// Ping reports whether the endpoint answers at all (any status will do).
func (h *HTTP) Ping(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, h.cfg.URL, nil)
	if err != nil {
		return h.requestError(err)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return h.requestError(err)
	}
	resp.Body.Close()
	return nil
}

// Close stops new requests and closes idle connections. It is idempotent.
func (h *HTTP) Close(context.Context) error {
	h.closed.Store(true)
	h.client.CloseIdleConnections()
	return nil
}

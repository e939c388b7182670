package sinks

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/url"
	"slices"
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
	// Body is what a request carries: BodyEnvelope (default), the message
	// as a JSON object (see [Line]), or BodyRaw, the record's value bytes
	// as they are, with its coordinates in headers (HeaderTopic, ...).
	// A raw body holds one record, so BodyRaw needs BatchMax 1.
	Body string
	// ContentType of the requests (default application/json for the
	// envelope, application/octet-stream for a raw body).
	ContentType string
	// ForwardHeaders lists the record headers copied to request headers,
	// matched without regard to case (default traceparent and tracestate,
	// the W3C trace context, so the webhook continues the producer's
	// trace). A header repeated in the record is repeated in the request,
	// in order. A value an HTTP header cannot carry (control characters) is
	// not forwarded; it stays in the envelope. Headers set by Headers win
	// over forwarded ones. Batch requests (BatchMax above 1) forward none:
	// each message's headers are in its envelope. An empty, non-nil list,
	// or the one name "none", forwards nothing.
	ForwardHeaders []string
}

// Body kinds of HTTPConfig.Body.
const (
	BodyEnvelope = "envelope"
	BodyRaw      = "raw"
)

// Headers of raw-body requests: the record's coordinates. HeaderKey holds
// a key of printable ASCII as it is; any other key goes base64 (standard
// encoding, padded) in HeaderKeyB64 instead. A record with no key has
// neither.
const (
	HeaderSource    = "X-Sluice-Source"
	HeaderTopic     = "X-Sluice-Topic"
	HeaderPartition = "X-Sluice-Partition"
	HeaderOffset    = "X-Sluice-Offset"
	HeaderTimestamp = "X-Sluice-Timestamp" // RFC 3339, nanoseconds, UTC
	HeaderKey       = "X-Sluice-Key"
	HeaderKeyB64    = "X-Sluice-Key-B64"
)

// DefaultForwardHeaders are the record headers forwarded by default: the
// W3C trace context.
var DefaultForwardHeaders = []string{"traceparent", "tracestate"}

// notForwarded are request headers a record must not set: the transport's
// own, and Sluice's.
var notForwarded = []string{"host", "content-length", "content-type", "transfer-encoding", "connection",
	"te", "trailer", "upgrade", "keep-alive", "proxy-connection", "idempotency-key"}

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
	if c.Body == "" {
		c.Body = BodyEnvelope
	}
	if c.ContentType == "" {
		c.ContentType = "application/json"
		if c.Body == BodyRaw {
			c.ContentType = "application/octet-stream"
		}
	}
	if c.ForwardHeaders == nil {
		c.ForwardHeaders = DefaultForwardHeaders
	}
	if len(c.ForwardHeaders) == 1 && strings.EqualFold(c.ForwardHeaders[0], "none") {
		c.ForwardHeaders = []string{}
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
	switch c.Body {
	case BodyEnvelope:
	case BodyRaw:
		if c.BatchMax != 1 {
			bad("BatchMax", c.BatchMax, "want 1 with a raw body: a raw body carries one record")
		}
	default:
		bad("Body", c.Body, "want envelope or raw")
	}
	if !validHeaderValue(c.ContentType) || !strings.Contains(c.ContentType, "/") {
		bad("ContentType", c.ContentType, "want a media type such as application/json")
	}
	for _, name := range c.ForwardHeaders {
		lower := strings.ToLower(name)
		if !validHeaderName(name) || slices.Contains(notForwarded, lower) || strings.HasPrefix(lower, "x-sluice-") {
			bad("ForwardHeaders", c.ForwardHeaders, fmt.Sprintf("want header names other than %s, X-Sluice-*, and the transport's own (%q is not one)",
				strings.Join(notForwarded, ", "), name))
			break
		}
	}
	return errors.Join(errs...)
}

// HTTP posts messages to a webhook as JSON.
//
// A 2xx response means delivered. 429 and 503 with Retry-After ask for a
// wait (consumer.RetryAfter); 502, 503 and 504 without it, and connection
// failures, mean the endpoint is down (consumer.Unavailable); other 4xx mean
// the message will never be accepted (consumer.Permanent); other 5xx,
// timeouts and broken connections are transient. Every request carries an
// Idempotency-Key header the receiver can use to drop redeliveries: the
// message's position (source/topic/partition/offset), or for a batch the
// first and the last message's, joined by "..", followed, unless the
// batch's offsets run without a gap, by "#" and the record count and a
// digest of all the positions (see batchKey): two requests with the same
// key carry the same records.
//
// Safe for concurrent use. Close closes idle connections; Deliver after
// Close returns ErrClosed.
type HTTP struct {
	cfg     HTTPConfig
	safeURL string // cfg.URL fit to print (consumer.RedactURL)
	client  *http.Client
	hdr     http.Header
	forward map[string]bool // lower-case names of the record headers forwarded
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
	hdr.Set("Content-Type", cfg.ContentType)
	forward := make(map[string]bool, len(cfg.ForwardHeaders))
	for _, name := range cfg.ForwardHeaders {
		if _, set := hdr[http.CanonicalHeaderKey(name)]; !set {
			forward[strings.ToLower(name)] = true
		}
	}
	h := &HTTP{cfg: cfg, safeURL: consumer.RedactURL(cfg.URL), client: &http.Client{Transport: tr, Timeout: cfg.Timeout},
		hdr: hdr, forward: forward}
	h.bufs.New = func() any { return new(bytes.Buffer) }
	return h, nil
}

// Deliver sends m in one request.
func (h *HTTP) Deliver(ctx context.Context, m *consumer.Message) error {
	key := position(m)
	if h.cfg.Body == BodyRaw {
		return h.post(ctx, m.Value, key, func(hd http.Header) {
			h.forwardHeaders(hd, m)
			hd.Set(HeaderSource, m.Source)
			hd.Set(HeaderTopic, m.Topic)
			hd.Set(HeaderPartition, strconv.Itoa(int(m.Partition)))
			hd.Set(HeaderOffset, strconv.FormatInt(m.Offset, 10))
			if !m.Time.IsZero() {
				hd.Set(HeaderTimestamp, m.Time.UTC().Format(time.RFC3339Nano))
			}
			switch {
			case m.Key == nil:
			case printableASCII(m.Key):
				hd.Set(HeaderKey, string(m.Key))
			default:
				hd.Set(HeaderKeyB64, base64.StdEncoding.EncodeToString(m.Key))
			}
		})
	}
	buf := h.bufs.Get().(*bytes.Buffer)
	defer h.bufs.Put(buf)
	buf.Reset()
	b, err := appendLine(buf.AvailableBuffer(), m)
	if err != nil {
		return consumer.Permanent(fmt.Errorf("http: encode %s[%d]@%d: %w", m.Topic, m.Partition, m.Offset, err))
	}
	buf.Write(b[:len(b)-1]) // without the newline
	return h.post(ctx, buf.Bytes(), key, func(hd http.Header) { h.forwardHeaders(hd, m) })
}

// forwardHeaders adds m's headers that ForwardHeaders names to hd, each
// occurrence, in order.
func (h *HTTP) forwardHeaders(hd http.Header, m *consumer.Message) {
	if len(h.forward) == 0 {
		return
	}
	for _, rh := range m.Headers {
		if h.forward[strings.ToLower(rh.Key)] && validHeaderValue(string(rh.Value)) {
			hd.Add(rh.Key, string(rh.Value))
		}
	}
}

// position names a message in an idempotency key.
func position(m *consumer.Message) string {
	return m.Source + "/" + m.Topic + "/" + strconv.Itoa(int(m.Partition)) + "/" + strconv.FormatInt(m.Offset, 10)
}

// batchKey is a chunk's Idempotency-Key: its first and last positions,
// which name it when its offsets run without a gap in one partition, and
// otherwise also the count and an FNV-1a digest of every position: when
// the offsets have gaps (a key's records, the records without a key of a
// key-ordered partition, a compacted topic), the first and the last alone
// need not say which records lie between them, and a receiver dropping a
// chunk as a redelivery must not drop one that holds others.
func batchKey(chunk []*consumer.Message) string {
	first, last := chunk[0], chunk[len(chunk)-1]
	key := position(first) + ".." + position(last)
	run := true
	for i := 1; i < len(chunk) && run; i++ {
		m := chunk[i]
		run = m.Offset == chunk[i-1].Offset+1 && m.Partition == first.Partition && m.Topic == first.Topic && m.Source == first.Source
	}
	if run {
		return key
	}
	h := fnv.New64a()
	var b []byte
	for _, m := range chunk {
		b = append(b[:0], m.Source...)
		b = append(b, '/')
		b = append(b, m.Topic...)
		b = strconv.AppendInt(append(b, '/'), int64(m.Partition), 10)
		b = strconv.AppendInt(append(b, '/'), m.Offset, 10)
		h.Write(append(b, ';'))
	}
	return key + "#" + strconv.Itoa(len(chunk)) + "-" + strconv.FormatUint(h.Sum64(), 16)
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
		// A retry of the same chunk carries the same key, a chunk cut
		// otherwise another.
		key := batchKey(chunk)
		if err := h.post(ctx, buf.Bytes(), key, nil); err != nil {
			return done, err
		}
		done += len(chunk)
	}
	return len(msgs), nil
}

// post sends body; headers, when not nil, adds the request's own headers.
func (h *HTTP) post(ctx context.Context, body []byte, idemKey string, headers func(http.Header)) error {
	if h.closed.Load() {
		return fmt.Errorf("http: %w", ErrClosed)
	}
	req, err := http.NewRequestWithContext(ctx, h.cfg.Method, h.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return h.requestError(err)
	}
	req.Header = h.hdr.Clone()
	if headers != nil {
		headers(req.Header)
	}
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

// validHeaderName: name is an HTTP token (RFC 9110).
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range []byte(name) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// validHeaderValue: v has no control characters but tab, so net/http sends
// it as it is.
func validHeaderValue(v string) bool {
	for _, c := range []byte(v) {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// printableASCII: b is text an HTTP header carries as it is.
func printableASCII(b []byte) bool {
	for _, c := range b {
		if c < ' ' || c > '~' {
			return false
		}
	}
	return true
}

// Close stops new requests and closes idle connections. It is idempotent.
func (h *HTTP) Close(context.Context) error {
	h.closed.Store(true)
	h.client.CloseIdleConnections()
	return nil
}

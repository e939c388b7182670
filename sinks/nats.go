package sinks

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/consumer"
)

// NATSConfig configures the NATS sink. The zero value of each field means
// its documented default.
type NATSConfig struct {
	// URL of the NATS server(s), comma separated (default nats://127.0.0.1:4222).
	URL string
	// Subject receives every message (required).
	Subject string
	// Core publishes with core NATS (default false: JetStream). Core NATS
	// has no acknowledgement: Deliver returns once the server has the
	// message (a flush), and a subscriber that is not there misses it. With
	// JetStream, Deliver returns once a stream has stored it.
	Core bool
	// Timeout bounds one publish, or one batch of them (default 10 s).
	Timeout time.Duration
	// Opts are extra nats.go options (credentials, TLS, ...), applied last.
	Opts []nats.Option
}

func (c *NATSConfig) setDefaults() {
	if c.URL == "" {
		c.URL = nats.DefaultURL
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
}

// Validate fills in defaults and reports every invalid field.
func (c *NATSConfig) Validate() error {
	c.setDefaults()
	var errs []error
	bad := func(field string, v any, want string) {
		errs = append(errs, &consumer.FieldError{Field: "NATS." + field, Value: v, Want: want})
	}
	if c.Subject == "" || strings.ContainsAny(c.Subject, " \t\r\n*>") {
		bad("Subject", c.Subject, "want a subject without spaces or wildcards")
	}
	if c.Timeout < time.Millisecond {
		bad("Timeout", c.Timeout, "want at least 1ms")
	}
	return errors.Join(errs...)
}

// Headers the NATS sink adds: NATS has no record key, so it travels as a
// header; binary keys and header values are base64 in a "-B64" header.
const (
	HeaderNATSKey = "Sluice-Key"
)

// NATS publishes each message to a subject, with the message's headers and
// key (as HeaderNATSKey) as NATS headers. With JetStream each message carries
// a Nats-Msg-Id made of its source position, so a stream with a duplicate
// window drops redeliveries; a batch is published asynchronously and waited
// for together. It also serves as a dead-letter destination.
//
// Safe for concurrent use. Close drains and closes the connection.
type NATS struct {
	cfg       NATSConfig
	nc        *nats.Conn
	js        jetstream.JetStream
	closeOnce sync.Once
}

var (
	_ consumer.Sink      = (*NATS)(nil)
	_ consumer.BatchSink = (*NATS)(nil)
	_ consumer.Pinger    = (*NATS)(nil)
)

// NewNATS validates cfg and connects. The connection reconnects by itself
// for as long as the sink lives.
func NewNATS(cfg NATSConfig) (*NATS, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts := append([]nats.Option{nats.Name("sluice-sink"), nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true)}, cfg.Opts...)
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats sink: connect %s: %w", cfg.URL, err)
	}
	s := &NATS{cfg: cfg, nc: nc}
	if !cfg.Core {
		if s.js, err = jetstream.New(nc); err != nil {
			nc.Close()
			return nil, fmt.Errorf("nats sink: %w", err)
		}
	}
	return s, nil
}

func (s *NATS) msg(m *consumer.Message) *nats.Msg {
	nm := nats.NewMsg(s.cfg.Subject)
	nm.Data = m.Value
	if m.Key != nil {
		setHeader(nm.Header, HeaderNATSKey, m.Key)
	}
	for _, h := range m.Headers {
		setHeader(nm.Header, h.Key, h.Value)
	}
	return nm
}

// setHeader adds a header, base64-encoding values a NATS header cannot
// carry (binary, or line breaks) under key+"-B64".
func setHeader(h nats.Header, key string, v []byte) {
	if utf8.Valid(v) && !strings.ContainsAny(string(v), "\r\n") {
		h.Add(key, string(v))
		return
	}
	h.Add(key+"-B64", base64.StdEncoding.EncodeToString(v))
}

func msgID(m *consumer.Message) string {
	return m.Source + "/" + m.Topic + "/" + strconv.Itoa(int(m.Partition)) + "/" + strconv.FormatInt(m.Offset, 10)
}

// Deliver publishes m: with JetStream it waits for the stream's ack; with
// core NATS it waits for the server to have it.
func (s *NATS) Deliver(ctx context.Context, m *consumer.Message) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if s.js != nil {
		_, err := s.js.PublishMsg(ctx, s.msg(m), jetstream.WithMsgID(msgID(m)))
		return natsError(err)
	}
	if err := s.nc.PublishMsg(s.msg(m)); err != nil {
		return natsError(err)
	}
	return natsError(s.nc.FlushWithContext(ctx))
}

// DeliverBatch publishes msgs in order and waits for them together. It
// returns the number acknowledged before the first failure.
func (s *NATS) DeliverBatch(ctx context.Context, msgs []*consumer.Message) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if s.js == nil {
		for i, m := range msgs {
			if err := s.nc.PublishMsg(s.msg(m)); err != nil {
				return i, natsError(err)
			}
		}
		if err := s.nc.FlushWithContext(ctx); err != nil {
			return 0, natsError(err)
		}
		return len(msgs), nil
	}
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	var pubErr error
	for _, m := range msgs {
		f, err := s.js.PublishMsgAsync(s.msg(m), jetstream.WithMsgID(msgID(m)))
		if err != nil {
			pubErr = err
			break
		}
		futures = append(futures, f)
	}
	for i, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return i, natsError(err)
		case <-ctx.Done():
			return i, natsError(ctx.Err())
		}
	}
	if pubErr != nil {
		return len(futures), natsError(pubErr)
	}
	return len(msgs), nil
}

// natsError marks a payload the server will never take as permanent and a
// server that is not there (or has no stream for the subject) as
// unavailable.
func natsError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, nats.ErrMaxPayload):
		return consumer.Permanent(fmt.Errorf("nats sink: %w", err))
	case errors.Is(err, nats.ErrConnectionClosed):
		return fmt.Errorf("nats sink: %w: %w", ErrClosed, err)
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, nats.ErrConnectionReconnecting), errors.Is(err, nats.ErrNoServers):
		return consumer.Unavailable(fmt.Errorf("nats sink: %w", err))
	}
	return fmt.Errorf("nats sink: %w", err)
}

// Ping checks the connection with a round trip to the server.
func (s *NATS) Ping(ctx context.Context) error {
	return natsError(s.nc.FlushWithContext(ctx))
}

// Close flushes what was published and closes the connection. It is
// idempotent.
func (s *NATS) Close(ctx context.Context) error {
	var err error
	s.closeOnce.Do(func() {
		if s.nc.IsConnected() {
			err = s.nc.FlushWithContext(ctx)
		}
		s.nc.Close()
	})
	return err
}

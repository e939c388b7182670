package sinks

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/consumer"
)

// ErrClosed is returned by Deliver after Close.
var ErrClosed = errors.New("sink closed")

// Option configures a decorator's collaborators.
type Option func(*options)

type options struct {
	log *slog.Logger
	reg prometheus.Registerer
}

// WithLogger sets the logger (default: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRegisterer sets where metrics are registered (default: nowhere).
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

func newOptions(opts []Option) options {
	o := options{log: slog.Default(), reg: prometheus.NewRegistry()}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Close closes s if it has a Close(ctx) method; otherwise it does nothing.
func Close(ctx context.Context, s consumer.Sink) error {
	if c, ok := s.(interface{ Close(context.Context) error }); ok {
		return c.Close(ctx)
	}
	return nil
}

// ErrorKind names the kind of a delivery error, as the results metric and
// the logs show it: "ok" for nil, then "permanent", "throttled" (RetryAfter),
// "unavailable", "timeout", "canceled" or "error".
func ErrorKind(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return "ok"
	case consumer.IsPermanent(err):
		return "permanent"
	case isThrottled(err):
		return "throttled"
	case consumer.IsUnavailable(err):
		return "unavailable"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "error"
}

var errorKinds = []string{"ok", "permanent", "throttled", "unavailable", "timeout", "canceled", "error"}

func isThrottled(err error) bool {
	_, ok := consumer.RetryDelay(err)
	return ok
}

// unavailableIfDial marks connection failures (refused, no route, unknown
// host) as the destination being unavailable: the record is not at fault.
func unavailableIfDial(err error) error {
	var oe *net.OpError
	var de *net.DNSError
	if (errors.As(err, &oe) && oe.Op == "dial") || errors.As(err, &de) {
		return consumer.Unavailable(err)
	}
	return err
}

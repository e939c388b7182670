package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/consumer"
)

// status is what /readyz explains when it answers 503: the process's stage
// (set by serve and the drain handler) and the last warning logged (a
// broker that cannot be reached, say) while the consumer is not in its
// group yet. Safe for concurrent use.
type status struct {
	c         *consumer.Consumer
	signal    context.Context // serve's: it ends on SIGTERM or SIGINT
	exitAfter time.Duration   // SLUICE_DRAIN_EXIT_AFTER, quoted while drained

	drainAsked atomic.Bool // POST /drain arrived
	warnings   *lastWarning
}

// notReady is the reason the service is not ready, as one line
// "<stage>: <explanation>", or "" when the consumer is ready. The stages
// are stable words a script may match: shutting_down, draining, drained,
// stopped, joining.
func (s *status) notReady() string {
	done := false
	select {
	case <-s.c.Done():
		done = true
	default:
	}
	switch {
	case s.signal.Err() != nil:
		return "shutting_down: a signal was received; intake stopped, in-flight work finishes, then the process exits"
	case s.drainAsked.Load() && done:
		return fmt.Sprintf("drained: the drain completed; the process exits by itself within %s (SLUICE_DRAIN_EXIT_AFTER) unless a signal ends it first", s.exitAfter)
	case s.drainAsked.Load():
		return "draining: POST /drain was received; intake stopped, in-flight work finishes, offsets are committed"
	case done:
		return "stopped: the consumer stopped (see the log); the process is exiting"
	case !s.c.Ready():
		why := "joining: not consuming yet (not in the group, or the NATS consumer not bound)"
		if w := s.warnings.String(); w != "" {
			return why + "; " + w
		}
		return why + "; no warning logged yet"
	}
	return ""
}

// lastWarning keeps the latest record at Warn or above that went through
// the logger it wraps (see newLogger), fit to show on /readyz: the message
// and its attributes, secrets scrubbed, cut to a bounded length.
type lastWarning struct {
	mu   sync.Mutex
	at   time.Time
	text string
}

// maxWarningText bounds the text kept: a probe's body, not a log.
const maxWarningText = 400

func (w *lastWarning) keep(at time.Time, text string) {
	text = consumer.RedactText(text)
	if len(text) > maxWarningText {
		text = text[:maxWarningText] + "..."
	}
	w.mu.Lock()
	w.at, w.text = at, text
	w.mu.Unlock()
}

// String is "last warning <age> ago: <text>", or "" when none was logged.
func (w *lastWarning) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.text == "" {
		return ""
	}
	return fmt.Sprintf("last warning %s ago: %s", time.Since(w.at).Round(100*time.Millisecond), w.text)
}

// warnHandler passes every record to next and hands those at Warn or
// above, with the attributes added by With, to keep.
type warnHandler struct {
	next  slog.Handler
	attrs []slog.Attr // from WithAttrs, shown before the record's own
	keep  *lastWarning
}

func (h warnHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h warnHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		var b strings.Builder
		b.WriteString(r.Message)
		sep := " ("
		add := func(a slog.Attr) bool {
			fmt.Fprintf(&b, "%s%s=%q", sep, a.Key, a.Value.String())
			sep = " "
			return true
		}
		for _, a := range h.attrs {
			add(a)
		}
		r.Attrs(add)
		if sep == " " {
			b.WriteString(")")
		}
		h.keep.keep(r.Time, b.String())
	}
	return h.next.Handle(ctx, r)
}

func (h warnHandler) WithAttrs(as []slog.Attr) slog.Handler {
	h.attrs = append(h.attrs[:len(h.attrs):len(h.attrs)], as...)
	h.next = h.next.WithAttrs(as)
	return h
}

// WithGroup drops the attributes' grouping in the kept text: it is a
// summary for a person, the log keeps the structure.
func (h warnHandler) WithGroup(name string) slog.Handler {
	h.next = h.next.WithGroup(name)
	return h
}

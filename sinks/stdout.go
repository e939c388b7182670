package sinks

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/sluicehq/sluice/consumer"
)

var _ consumer.Sink = (*Stdout)(nil)

// Stdout writes each message as a JSON line (see [Line]) to a writer,
// normally os.Stdout. One message is one Write, so lines never interleave.
type Stdout struct {
	mu     sync.Mutex
	w      io.Writer
	buf    []byte
	closed bool
}

// NewStdout returns a sink writing to w.
func NewStdout(w io.Writer) *Stdout { return &Stdout{w: w} }

// Deliver writes m as one line.
func (s *Stdout) Deliver(_ context.Context, m *consumer.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("stdout: %w", ErrClosed)
	}
	var err error
	s.buf, err = appendLine(s.buf[:0], m)
	if err != nil {
		return consumer.Permanent(fmt.Errorf("stdout: encode %s[%d]@%d: %w", m.Topic, m.Partition, m.Offset, err))
	}
	if _, err := s.w.Write(s.buf); err != nil {
		return fmt.Errorf("stdout: write: %w", err)
	}
	return nil
}

// Close makes further deliveries fail with ErrClosed. The writer belongs to
// the caller and stays open.
func (s *Stdout) Close(context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

var _ consumer.Sink = Noop{}

// Noop accepts every message and does nothing with it. It measures the
// pipeline's own overhead.
type Noop struct{}

// Deliver returns nil.
func (Noop) Deliver(context.Context, *consumer.Message) error { return nil }

// Close does nothing.
func (Noop) Close(context.Context) error { return nil }

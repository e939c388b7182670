package sinks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"

	"github.com/sluicehq/sluice/consumer"
)

// FileConfig configures the file sink. The zero value of each field means
// its documented default.
type FileConfig struct {
	// Path of the file written to (required). Its directory must exist.
	Path string
	// MaxBytes is the size at which the file is rotated (default 100 MiB):
	// Path becomes Path.1, Path.1 becomes Path.2, and so on.
	MaxBytes int64
	// MaxBackups is how many rotated files are kept (default 5); older ones
	// are removed.
	MaxBackups int
	// Sync calls fsync after every write (default false). Without it a
	// delivered line survives a crash of Sluice but not of the machine.
	Sync bool
}

func (c *FileConfig) setDefaults() {
	if c.MaxBytes == 0 {
		c.MaxBytes = 100 << 20
	}
	if c.MaxBackups == 0 {
		c.MaxBackups = 5
	}
}

// Validate fills in defaults and reports every invalid field.
func (c *FileConfig) Validate() error {
	c.setDefaults()
	var errs []error
	bad := func(field string, v any, want string) {
		errs = append(errs, &consumer.FieldError{Field: "File." + field, Value: v, Want: want})
	}
	if c.Path == "" {
		bad("Path", c.Path, "want a file path")
	}
	if c.MaxBytes < 1024 {
		bad("MaxBytes", c.MaxBytes, "want at least 1KiB")
	}
	if c.MaxBackups < 1 {
		bad("MaxBackups", c.MaxBackups, "want at least 1")
	}
	return errors.Join(errs...)
}

// File appends each message as a JSON line (see [Line]) to a file, rotating
// it by size. A batch is one write. Safe for concurrent use; Deliver after
// Close returns ErrClosed.
type File struct {
	cfg  FileConfig
	mu   sync.Mutex
	f    *os.File // nil after Close
	size int64
	buf  []byte
}

var (
	_ consumer.Sink      = (*File)(nil)
	_ consumer.BatchSink = (*File)(nil)
)

// NewFile validates cfg and opens (or creates) the file for appending.
func NewFile(cfg FileConfig) (*File, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &File{cfg: cfg}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *File) open() error {
	f, err := os.OpenFile(s.cfg.Path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("file: %w", err)
	}
	s.f, s.size = f, st.Size()
	return nil
}

// Deliver appends m as one line.
func (s *File) Deliver(ctx context.Context, m *consumer.Message) error {
	_, err := s.DeliverBatch(ctx, []*consumer.Message{m})
	return err
}

// DeliverBatch appends msgs, in order, in one write.
func (s *File) DeliverBatch(_ context.Context, msgs []*consumer.Message) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return 0, fmt.Errorf("file: %w", ErrClosed)
	}
	buf := s.buf[:0]
	defer func() { s.buf = buf[:0] }()
	for i, m := range msgs {
		var err error
		if buf, err = appendLine(buf, m); err != nil {
			// Store the lines before it; this one can never be encoded.
			if werr := s.write(buf); werr != nil {
				return 0, werr
			}
			return i, consumer.Permanent(fmt.Errorf("file: encode %s[%d]@%d: %w", m.Topic, m.Partition, m.Offset, err))
		}
	}
	if err := s.write(buf); err != nil {
		return 0, err
	}
	return len(msgs), nil
}

// write appends b (whole lines), rotating first when it would not fit.
func (s *File) write(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if s.size > 0 && s.size+int64(len(b)) > s.cfg.MaxBytes {
		if err := s.rotate(); err != nil {
			return err
		}
	}
	n, err := s.f.Write(b)
	s.size += int64(n)
	if err != nil {
		return fmt.Errorf("file: write: %w", err)
	}
	if s.cfg.Sync {
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("file: sync: %w", err)
		}
	}
	return nil
}

// rotate shifts Path.N to Path.N+1 (dropping the oldest), Path to Path.1,
// and opens a new Path.
func (s *File) rotate() error {
	_ = s.f.Close()
	name := func(i int) string { return s.cfg.Path + "." + strconv.Itoa(i) }
	_ = os.Remove(name(s.cfg.MaxBackups))
	var errs []error
	for i := s.cfg.MaxBackups - 1; i >= 1; i-- {
		if err := os.Rename(name(i), name(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.Rename(s.cfg.Path, name(1)); err != nil {
		errs = append(errs, err)
	}
	// Reopen whatever happened, so a failed rename does not close the sink.
	if err := s.open(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("file: rotate: %w", err)
	}
	return nil
}

// Close syncs and closes the file. It is idempotent.
func (s *File) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Sync()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	return err
}

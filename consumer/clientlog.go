package consumer

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kslog"
)

// kafkaLogger passes franz-go's own log (connections refused, SASL and TLS
// failures, coordinator changes, group joins) to log, tagged
// component=franz-go, at franz-go's levels, through franz-go's slog
// adapter, with repeats held back (see quieter).
//
// franz-go logs every step of a group's life at Info (joining, syncing,
// heartbeat loops, metadata updates); Sluice logs the transitions that
// matter to an operator itself (partitions assigned, revoked, lost), so
// franz-go's Info records are passed on at Debug. Its warnings and errors
// (a broker that cannot be reached, a failed heartbeat) keep their level.
func kafkaLogger(log *slog.Logger) kgo.Logger {
	h := demoteInfo{newQuieter(log.Handler(), time.Second, time.Minute)}
	return kslog.New(slog.New(h).With("component", "franz-go"))
}

// demoteInfo passes Info records on at Debug.
type demoteInfo struct{ slog.Handler }

func (d demoteInfo) Enabled(ctx context.Context, l slog.Level) bool {
	if l == slog.LevelInfo {
		l = slog.LevelDebug
	}
	return d.Handler.Enabled(ctx, l)
}

func (d demoteInfo) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelInfo {
		r.Level = slog.LevelDebug
	}
	return d.Handler.Handle(ctx, r)
}

func (d demoteInfo) WithAttrs(as []slog.Attr) slog.Handler {
	return demoteInfo{d.Handler.WithAttrs(as)}
}
func (d demoteInfo) WithGroup(name string) slog.Handler { return demoteInfo{d.Handler.WithGroup(name)} }

// quieter is a slog.Handler that lets the first record of each message
// through and holds back its repeats: the next one goes through after
// first, then after twice that, doubling up to most, carrying how many
// were held back (repeats_held). A message quiet for longer than most
// starts again at first. So a broker that stays unreachable is reported
// at once and then about once a minute, not on every retry.
//
// Records are keyed by level and message: a client's messages are fixed
// strings with the details in attributes, so the keys are few.
type quieter struct {
	next        slog.Handler
	first, most time.Duration
	now         func() time.Time

	mu    *sync.Mutex
	state map[quietKey]*quietState
}

type quietKey struct {
	level slog.Level
	msg   string
}

type quietState struct {
	next     time.Time     // the next record goes through at or after this
	interval time.Duration // the gap after it
	held     int           // records held back since the last one through
	last     time.Time     // the last record, through or held
}

func newQuieter(next slog.Handler, first, most time.Duration) *quieter {
	return &quieter{next: next, first: first, most: most, now: time.Now,
		mu: new(sync.Mutex), state: make(map[quietKey]*quietState)}
}

func (q *quieter) Enabled(ctx context.Context, l slog.Level) bool { return q.next.Enabled(ctx, l) }

func (q *quieter) Handle(ctx context.Context, r slog.Record) error {
	k := quietKey{r.Level, r.Message}
	now := q.now()
	q.mu.Lock()
	st := q.state[k]
	if st == nil || now.Sub(st.last) > q.most {
		st = &quietState{interval: q.first}
		q.state[k] = st
	}
	st.last = now
	if now.Before(st.next) {
		st.held++
		q.mu.Unlock()
		return nil
	}
	held := st.held
	st.held = 0
	st.next = now.Add(st.interval)
	st.interval = min(2*st.interval, q.most)
	q.mu.Unlock()
	if held > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("repeats_held", held))
	}
	return q.next.Handle(ctx, r)
}

func (q *quieter) WithAttrs(as []slog.Attr) slog.Handler {
	c := *q
	c.next = q.next.WithAttrs(as)
	return &c
}

func (q *quieter) WithGroup(name string) slog.Handler {
	c := *q
	c.next = q.next.WithGroup(name)
	return &c
}

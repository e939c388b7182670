package consumer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// How a sink says what went wrong. A sink returns any error it likes; it
// wraps it with one of these helpers when it knows more, and the failure
// policy decides from that what happens to the message:
//
//   - Permanent(err): this message can never be delivered as it is (an HTTP
//     400, a row the table rejects). It is dead-lettered at once, without
//     further attempts.
//   - RetryAfter(err, d): the destination asked to be left alone for d (an
//     HTTP 429 or 503 with Retry-After). The message waits d (the backoff
//     when d is 0) and tries again; that does not use up its attempts.
//   - Unavailable(err): the destination is down (connection refused, the
//     circuit breaker is open). That is not the message's fault: it waits and
//     tries again without using up its attempts, so an outage holds the lane
//     (and, through the window, pauses fetching) instead of dead-lettering
//     good records.
//   - anything else is a transient failure of this message: it is retried
//     with exponential backoff until its attempts or its time run out.
//
// The wrappers keep the original error reachable with errors.Is/As.

// Permanent marks err as a failure that retrying cannot fix. Permanent(nil)
// is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// PermanentError is a failure that retrying cannot fix. See [Permanent].
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// RetryAfter marks err as a request by the destination to wait d before the
// next attempt. RetryAfter(nil, d) is nil.
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &RetryAfterError{Err: err, Delay: max(d, 0)}
}

// RetryAfterError asks for the next attempt after Delay. See [RetryAfter].
type RetryAfterError struct {
	Err   error
	Delay time.Duration
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("%v (retry after %s)", e.Err, e.Delay)
}
func (e *RetryAfterError) Unwrap() error { return e.Err }

// ErrUnavailable is what errors marked with [Unavailable] match with errors.Is.
var ErrUnavailable = errors.New("destination unavailable")

// Unavailable marks err as the destination being down rather than the
// message being at fault. Unavailable(nil) is nil.
func Unavailable(err error) error {
	if err == nil {
		return nil
	}
	return &unavailableError{err: err}
}

type unavailableError struct{ err error }

func (e *unavailableError) Error() string { return e.err.Error() }
func (e *unavailableError) Unwrap() []error {
	return []error{e.err, ErrUnavailable}
}

// IsPermanent reports whether err is marked with [Permanent].
func IsPermanent(err error) bool {
	var pe *PermanentError
	return errors.As(err, &pe)
}

// RetryDelay returns the delay a [RetryAfter] error asks for.
func RetryDelay(err error) (time.Duration, bool) {
	var re *RetryAfterError
	if errors.As(err, &re) {
		return re.Delay, true
	}
	return 0, false
}

// IsUnavailable reports whether err is marked with [Unavailable].
func IsUnavailable(err error) bool { return errors.Is(err, ErrUnavailable) }

// DeadLetterPolicy says what happens to a message that should be
// dead-lettered (its attempts ran out, or its error is permanent) when no
// dead-letter destination is configured.
type DeadLetterPolicy string

const (
	// DeadLetterBlock keeps retrying the message (the default). Its lane
	// holds, its partition's commits stop at it, the window fills and
	// fetching pauses: nothing is lost, and sluice_records_blocked shows
	// it. Fix the sink (or the record) and it flows again.
	DeadLetterBlock DeadLetterPolicy = "block"
	// DeadLetterDrop gives the message up: it is logged, counted in
	// sluice_records_dropped_total and committed as if delivered.
	DeadLetterDrop DeadLetterPolicy = "drop"
)

func (c *Config) setFailureDefaults() {
	if c.RetryMaxAttempts == 0 {
		c.RetryMaxAttempts = 5
	}
	if c.RetryMaxElapsed == 0 {
		c.RetryMaxElapsed = 2 * time.Minute
	}
	if c.DeadLetterPolicy == "" {
		c.DeadLetterPolicy = DeadLetterBlock
	}
}

func (c *Config) validateFailure() []error {
	var errs []error
	if c.RetryMaxAttempts < 1 {
		errs = append(errs, &FieldError{Field: "RetryMaxAttempts", Value: c.RetryMaxAttempts, Want: "want at least 1"})
	}
	if c.RetryMaxElapsed < 0 {
		errs = append(errs, &FieldError{Field: "RetryMaxElapsed", Value: c.RetryMaxElapsed, Want: "want a positive duration"})
	}
	switch c.DeadLetterPolicy {
	case DeadLetterBlock, DeadLetterDrop:
	default:
		errs = append(errs, &FieldError{Field: "DeadLetterPolicy", Value: c.DeadLetterPolicy, Want: "want block or drop"})
	}
	return errs
}

// action is what the failure policy decided for a failed delivery.
type action uint8

const (
	// actRetry: try the same sink again after the delay.
	actRetry action = iota
	// actDeadLetter: send the message to the dead-letter destination.
	actDeadLetter
	// actBlock: the message should be dead-lettered but there is nowhere
	// to send it, and the policy is block: retry after the delay, forever.
	actBlock
	// actDrop: the message should be dead-lettered but there is nowhere to
	// send it, and the policy is drop: give it up.
	actDrop
)

func (a action) String() string {
	return [...]string{"retry", "dead_letter", "block", "drop"}[a]
}

// decision is the failure policy's verdict on one failed attempt.
type decision struct {
	action action
	delay  time.Duration // before the next attempt (retry, block)
	// reason why the message is given up on (dead_letter, block, drop):
	// "permanent", "max_attempts" or "max_elapsed".
	reason string
	// charged marks a retry of a failure that counted against the
	// message's attempts (not the destination being down or throttling).
	// A source that redelivers by itself settles only those.
	charged bool
}

// failureState is what the policy remembers about one message's failures.
type failureState struct {
	attempts    int           // failed attempts charged to the message
	waits       int           // uncharged failures (destination down or throttling)
	first, last time.Time     // first failure; previous decision
	excused     time.Duration // time spent waiting on the destination, not charged
	prevExcused bool          // the previous failure was not charged
	exhausted   bool          // given up on once (blocking from now on)
}

// failurePolicy decides, for each failed delivery, whether to retry it in
// place, dead-letter it, block on it or drop it. It is the one place those
// rules live; the pipeline consults it and carries the decision out.
//
// decide is pure (the time is passed in), so it is tested as a table and a
// source that can redeliver by itself can reuse it: see settler.
type failurePolicy struct {
	maxAttempts int
	maxElapsed  time.Duration
	backoff     backoff
	deadLetter  bool             // a dead-letter destination is configured
	onExhausted DeadLetterPolicy // what to do without one
}

func newFailurePolicy(cfg *Config, haveDLQ bool) failurePolicy {
	return failurePolicy{
		maxAttempts: cfg.RetryMaxAttempts,
		maxElapsed:  cfg.RetryMaxElapsed,
		backoff:     backoff{initial: cfg.RetryInitialBackoff, max: cfg.RetryMaxBackoff},
		deadLetter:  haveDLQ,
		onExhausted: cfg.DeadLetterPolicy,
	}
}

// decide updates st with the failure err at time now and returns what to do.
//
// Failures marked Unavailable or RetryAfter are the destination's state, not
// the message's: they wait (the RetryAfter delay, at most maxElapsed, or the
// backoff) and do not count against the message's attempts or its time.
// Everything else counts; once maxAttempts failures are counted, or they
// span maxElapsed, or the error is Permanent, the message is given up on:
// dead-lettered if there is a destination, else blocked or dropped.
func (f *failurePolicy) decide(st *failureState, err error, now time.Time) decision {
	if st.first.IsZero() {
		st.first, st.last = now, now
	}
	if st.prevExcused {
		st.excused += now.Sub(st.last)
	}
	st.last = now
	ra, throttled := RetryDelay(err)
	excused := throttled || IsUnavailable(err)
	st.prevExcused = excused

	if excused && !st.exhausted {
		st.waits++
		d := f.backoff.next(st.waits)
		if throttled && ra > 0 {
			d = min(ra, f.maxElapsed)
			d += rand.N(d/10 + 1) // spread the herd the destination just sent away
		}
		return decision{action: actRetry, delay: d}
	}
	if !excused {
		st.attempts++
	}
	if st.exhausted {
		return decision{action: actBlock, delay: f.backoff.next(max(st.attempts, st.waits)), reason: "exhausted"}
	}
	reason := ""
	elapsed := now.Sub(st.first) - st.excused
	switch {
	case IsPermanent(err):
		reason = "permanent"
	case st.attempts >= f.maxAttempts:
		reason = "max_attempts"
	case elapsed >= f.maxElapsed:
		reason = "max_elapsed"
	}
	if reason == "" {
		return decision{action: actRetry, delay: min(f.backoff.next(st.attempts), f.maxElapsed-elapsed), charged: true}
	}
	switch {
	case f.deadLetter:
		return decision{action: actDeadLetter, reason: reason}
	case f.onExhausted == DeadLetterDrop:
		return decision{action: actDrop, reason: reason}
	}
	st.exhausted = true
	return decision{action: actBlock, delay: f.backoff.next(st.attempts), reason: reason}
}

// retry is the slow path of a delivery: m failed with err. It carries out
// the failure policy's decisions until m is delivered, dead-lettered or
// dropped (true), or ctx ends (false: m stays undelivered and will be
// redelivered after a restart or rebalance). ctx is the partition's: it
// ends when the partition is lost or its revoke wait runs out, and when
// the workers stop.
func (p *pipeline) retry(ctx context.Context, m *Message, err error) bool {
	// A message handed back to the broker after a failure and redelivered
	// (JetStream) arrives with the failures already charged to it.
	st := failureState{attempts: m.charged}
	blocked := false
	defer func() {
		if blocked {
			p.dl.blocked.Add(-1)
		}
	}()
	for {
		p.errs.Add(1)
		p.met.deliveryErrors.Inc()
		if ctx.Err() != nil {
			return false
		}
		d := p.fail.decide(&st, err, time.Now())
		m.charged = st.attempts
		switch d.action {
		case actDeadLetter:
			m.gaveUp = d.reason
			return p.deadLetter(ctx, m, err, d.reason)
		case actDrop:
			m.gaveUp = d.reason
			p.drop(m, err, d.reason)
			return true
		case actBlock:
			if !blocked {
				blocked = true
				p.dl.blocked.Add(1)
				p.log.Warn("record given up on, but no dead-letter destination: blocking its lane until it is delivered",
					"reason", d.reason, "policy", DeadLetterBlock, "topic", m.Topic, "partition", m.Partition,
					"offset", m.Offset, "attempts", m.Attempt, errAttr(err))
			}
		}
		if p.settler != nil && p.settler.settle(m, d) {
			return true
		}
		p.log.Debug("delivery failed, retrying", "topic", m.Topic, "partition", m.Partition,
			"offset", m.Offset, "attempt", m.Attempt, "retry_in", d.delay, errAttr(err))
		if !sleep(ctx, d.delay) || !p.mayDeliver(ctx) {
			return false
		}
		m.Attempt++
		if err = p.sink.Deliver(ctx, m); err == nil {
			if blocked {
				p.log.Info("blocked record delivered; its lane flows again", "reason", "delivered",
					"topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "attempts", m.Attempt)
			}
			return true
		}
	}
}

// sleep waits d or until ctx ends; it reports whether it waited d.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

type backoff struct {
	initial, max time.Duration
}

// next returns the delay before the given retry (1-based), with full jitter
// over the upper half so synchronized failures spread out.
func (b backoff) next(attempt int) time.Duration {
	d := b.initial
	for i := 1; i < attempt && d < b.max; i++ {
		d *= 2
	}
	d = min(d, b.max)
	return d/2 + rand.N(d/2+1)
}

package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Consumer runs one source through the window, the lanes, the worker pool
// and the sink, and commits what the sink delivered.
//
// Build it with New, start it with Run (which blocks), stop it by cancelling
// Run's context or calling Drain. All methods are safe for concurrent use.
type Consumer struct {
	cfg  Config
	log  *slog.Logger
	met  *metrics
	reg  prometheus.Registerer // sources register their own metrics here
	win  *Window
	pipe *pipeline
	src  source
	sink Sink

	flowMu   sync.Mutex // serializes pause decisions with telling the source
	commitMu sync.Mutex // one commit at a time; revoke holds it to commit-then-remove

	// loopCommit cancels the commit loop's commit in flight, if any; a
	// revoke calls it so that it never waits behind a commit that hangs,
	// and revokes counts the revokes under way, during which the loop
	// does not start another.
	loopCommit atomic.Pointer[context.CancelFunc]
	revokes    atomic.Int32

	pauses, resumes atomic.Uint64

	joined        atomic.Bool
	draining      atomic.Bool
	commitFailing bool // guarded by commitMu

	started   atomic.Bool
	drainOnce sync.Once
	drainCh   chan struct{}
	done      chan struct{}
}

// Option configures a Consumer's collaborators.
type Option func(*options)

type options struct {
	log *slog.Logger
	reg prometheus.Registerer
	dlq Sink // dead-letter destination, see WithDeadLetter
}

// WithLogger sets the logger (default: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRegisterer sets where metrics are registered (default: nowhere).
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// New validates cfg and builds a consumer of cfg.Source delivering to sink. It
// connects to nothing and starts nothing: Run does.
func New(cfg Config, sink Sink, opts ...Option) (*Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if sink == nil {
		return nil, fmt.Errorf("%w: nil sink", ErrInvalidConfig)
	}
	o := options{log: slog.Default(), reg: prometheus.NewRegistry()}
	for _, opt := range opts {
		opt(&o)
	}
	c := &Consumer{
		cfg:     cfg,
		log:     o.log,
		met:     newMetrics(o.reg),
		reg:     o.reg,
		win:     NewWindow(cfg.MaxRecords, cfg.MaxBytes, cfg.HighWater, cfg.LowWater),
		sink:    sink,
		drainCh: make(chan struct{}),
		done:    make(chan struct{}),
	}
	c.pipe = newPipeline(&c.cfg, sink, c.win, c.log, c.met)
	c.pipe.fail, c.pipe.dl = newFailurePolicy(&c.cfg, o.dlq != nil), newDeadLetters(o.dlq, o.reg)
	c.pipe.released = c.evaluateFlow
	src, err := newSource(sourceEnv{cfg: &c.cfg, log: c.log, met: c.met, reg: o.reg})
	if err != nil {
		return nil, err
	}
	c.src = src
	c.pipe.attach(src)
	registerState(o.reg, c)
	return c, nil
}

// Run consumes until ctx is cancelled or Drain is called, then shuts down in
// order: stop fetching, finish what was admitted (within ShutdownTimeout),
// commit, leave the group. It returns nil after a clean shutdown. Run may be
// called once.
func (c *Consumer) Run(ctx context.Context) error {
	if !c.started.CompareAndSwap(false, true) {
		return errors.New("consumer: Run called twice")
	}
	defer close(c.done)
	if err := c.src.start(ctx, seam{c}); err != nil {
		c.pipe.stop() // so that a later Resize starts no worker nobody would stop
		return err
	}
	c.pipe.resize(c.cfg.Workers)

	fetchCtx, stopFetch := context.WithCancel(context.Background())
	commitCtx, stopCommit := context.WithCancel(context.Background())
	fetchErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() { fetchErr <- c.src.run(fetchCtx) })
	commitDone := make(chan struct{})
	go func() { defer close(commitDone); c.commitLoop(commitCtx) }()

	var runErr error
	select {
	case <-ctx.Done():
		c.log.Info("shutting down", "reason", "signal")
	case <-c.drainCh:
		c.log.Info("shutting down", "reason", "drain")
	case runErr = <-fetchErr:
		c.log.Error("fetching failed, shutting down", "reason", "fetch_error", "error", runErr)
	}
	c.draining.Store(true)
	stopFetch()
	wg.Wait()

	// The shutdown stays within ShutdownTimeout: the drain gets it less a
	// reserve (a quarter, at most 5 s) for the final commit and leaving
	// the group, so a drain that runs out still leaves time to commit what
	// it delivered.
	deadline := time.Now().Add(c.cfg.ShutdownTimeout)
	reserve := min(c.cfg.ShutdownTimeout/4, 5*time.Second)
	dctx, cancel := context.WithDeadline(context.Background(), deadline.Add(-reserve))
	defer cancel()
	if !c.pipe.drain(dctx) {
		st := c.Stats()
		c.log.Warn("shutdown timeout: abandoning deliveries, they will be redelivered",
			"reason", "shutdown_timeout", "queued", st.Depth, "in_flight", st.InFlight)
	}
	stopCommit()
	<-commitDone
	c.pipe.stop()

	// The final commit gets half the reserve at least, and at most
	// CommitTimeout: without it every delivered record would come again.
	commitFor := min(c.cfg.CommitTimeout, max(time.Until(deadline)-reserve/2, reserve/2))
	cctx, ccancel := context.WithTimeout(context.Background(), commitFor)
	defer ccancel()
	if err := c.commit(cctx, nil); err != nil {
		c.log.Error("final commit failed", "reason", "commit_error", "error", err)
	}
	closeBy := deadline.Add(-closeGrace)
	if left := time.Until(closeBy); left < reserve/4 {
		closeBy = time.Now().Add(reserve / 4) // time to leave the group at least
	}
	closeCtx, closeCancel := context.WithDeadline(context.Background(), closeBy)
	defer closeCancel()
	c.src.close(closeCtx)
	c.log.Info("stopped", "delivered", c.pipe.completed.Load())
	return runErr
}

// closeGrace is how long a source's close may run on past its deadline for
// its client to wind down.
const closeGrace = 250 * time.Millisecond

// Drain stops intake, finishes in-flight work, commits and leaves the
// group, as Run does on shutdown; it returns when that is done or ctx ends.
// Readiness turns false at once. Run returns nil after a drain.
func (c *Consumer) Drain(ctx context.Context) error {
	c.draining.Store(true)
	c.drainOnce.Do(func() { close(c.drainCh) })
	if !c.started.Load() {
		return nil
	}
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Done is closed when Run has returned.
func (c *Consumer) Done() <-chan struct{} { return c.done }

// Ready reports whether the consumer has joined its group and is not
// draining. (The sink's reachability is checked by the caller, see Pinger.)
func (c *Consumer) Ready() bool { return c.joined.Load() && !c.draining.Load() }

// Resize sets the number of workers (at least 1). Safe at any time.
func (c *Consumer) Resize(n int) { c.pipe.resize(n) }

// Size returns the number of workers the pool is set to.
func (c *Consumer) Size() int { return c.pipe.size() }

// Window returns the in-flight window.
func (c *Consumer) Window() *Window { return c.win }

// evaluateFlow applies the pause policy and tells the source. Every
// admission, every window release of a source with no commit points, and
// the commit loop call it, so while there is no pressure it returns at
// once, without a lock or a look at the partitions: atomics say when a
// decision would change nothing (see pipeline.flowQuiet).
func (c *Consumer) evaluateFlow() {
	if c.pipe.flowQuiet() {
		return
	}
	c.flowMu.Lock()
	defer c.flowMu.Unlock()
	gated := c.win.Room() == 0
	pause, resume := c.pipe.decideFlow(time.Now(), gated)
	if len(pause) > 0 {
		c.src.pause(pause)
		c.pauses.Add(uint64(len(pause)))
		byReason := map[string][]string{}
		for _, p := range pause {
			c.met.pauses.WithLabelValues(p.pauseReason).Inc()
			byReason[p.pauseReason] = append(byReason[p.pauseReason], p.String())
		}
		for reason, names := range byReason {
			c.log.Info("partitions paused", "reason", reason, "partitions", names,
				"window_fill", round2(c.win.Fill()))
		}
	}
	if len(resume) > 0 {
		c.src.resume(resume)
		// A source that waits for room while paused (JetStream, a share
		// group, core NATS) may have woken at the release that led here
		// and, still paused, gone back to waiting: wake it again.
		c.win.wake()
		c.resumes.Add(uint64(len(resume)))
		c.met.resumes.Add(float64(len(resume)))
		names := make([]string, len(resume))
		for i, p := range resume {
			names[i] = p.String()
		}
		c.log.Info("partitions resumed", "reason", "window_drained", "partitions", names,
			"window_fill", round2(c.win.Fill()))
	}
}

func (c *Consumer) pausedPartitions() int {
	c.pipe.mu.Lock()
	defer c.pipe.mu.Unlock()
	n := 0
	for _, p := range c.pipe.parts {
		if p.paused {
			n++
		}
	}
	return n
}

func (p *partition) String() string { return fmt.Sprintf("%s/%d", p.topic, p.partition) }

func round2(f float64) float64 { return float64(int(f*100+0.5)) / 100 }

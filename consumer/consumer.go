package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
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

// pressureCommitGap is the pause between commits while the window is above
// its low-water mark: delivered records hold their place until committed,
// so under pressure the committer does not wait for the interval.
//
// It need not be short. A fast sink does not depend on it: the pipeline
// kicks the committer whenever a quarter of the window is done but not
// committed (pipeline.finish, kickAt), so the window gets room back as fast
// as the sink frees it, in commits of a quarter window each. The gap is for
// a slow sink, whose done records would otherwise wait up to CommitInterval
// (1 s by default) while the window is paused: 25 ms adds little to that
// wait next to PauseDelay (200 ms by default) and to the pace of a sink
// slow enough to fill the window, and it costs at most 40 commits a second
// instead of 200. A round with nothing done costs no commit at all
// (commitPoints is empty, the broker is not asked).
const pressureCommitGap = 25 * time.Millisecond

// commitLoop commits on the interval, whenever a quarter of the window is
// done, and every pressureCommitGap while the window is above low water.
// After a failed commit it waits, doubling from 100 ms up to 5 s, before
// the next: the records stay in the window meanwhile, so fetching pauses
// rather than the broker being asked hundreds of times a second.
func (c *Consumer) commitLoop(ctx context.Context) {
	t := time.NewTimer(c.cfg.CommitInterval)
	defer t.Stop()
	var failures int
	var retryAt time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.pipe.kickCommit:
			if wait := time.Until(retryAt); wait > 0 {
				t.Reset(wait) // a kick does not cut a failure's backoff short
				continue
			}
		}
		switch err := c.loopCommitOnce(ctx); {
		case err == errRevokeUnderWay:
		case err != nil: // logged inside; the records stay in the window
			failures++
			retryAt = time.Now().Add(min(100*time.Millisecond<<min(failures-1, 6), 5*time.Second))
		default:
			failures, retryAt = 0, time.Time{}
		}
		c.evaluateFlow()
		next := c.cfg.CommitInterval
		if c.win.Fill() > c.win.low {
			next = min(next, pressureCommitGap)
		}
		t.Reset(max(next, time.Until(retryAt)))
	}
}

// errRevokeUnderWay: the commit loop left this round to a revoke.
var errRevokeUnderWay = errors.New("revoke under way")

// loopCommitOnce is one commit of the commit loop: with its own deadline,
// and cancellable by a revoke (see loopCommit).
func (c *Consumer) loopCommitOnce(ctx context.Context) error {
	if c.revokes.Load() > 0 {
		return errRevokeUnderWay // the revoke commits its partitions itself
	}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.CommitTimeout)
	defer cancel()
	c.loopCommit.Store(&cancel)
	defer c.loopCommit.Store(nil)
	if c.revokes.Load() > 0 {
		return errRevokeUnderWay
	}
	return c.commit(cctx, nil)
}

// commit commits the done prefix of the given partitions (all when nil).
func (c *Consumer) commit(ctx context.Context, parts []*partition) error {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	return c.commitLocked(ctx, parts)
}

func (c *Consumer) commitLocked(ctx context.Context, parts []*partition) error {
	cm, tracked := c.src.(committer)
	if !tracked {
		return nil // the source acks each message itself
	}
	cps := c.pipe.commitPoints(parts)
	if len(cps) == 0 {
		return nil
	}
	failed, err := cm.commit(ctx, cps)
	if len(failed) == 0 {
		c.pipe.committed(cps)
		c.met.commits.WithLabelValues("ok").Inc()
		if c.commitFailing {
			c.commitFailing = false
			c.log.Info("commits recovered", "reason", "commit_ok")
		}
		return nil
	}
	ok := make([]commitPoint, 0, len(cps))
	bad := make(map[*partition]bool, len(failed))
	for _, cp := range failed {
		bad[cp.part] = true
	}
	for _, cp := range cps {
		if !bad[cp.part] {
			ok = append(ok, cp)
		}
	}
	c.pipe.committed(ok)
	c.pipe.uncommitted(failed)
	c.met.commits.WithLabelValues("error").Inc()
	if !c.commitFailing {
		c.commitFailing = true
		c.log.Warn("commit failed; records stay in the window until a commit succeeds",
			"reason", "commit_error", "partitions", len(failed), "error", err)
	}
	if err == nil {
		err = fmt.Errorf("commit: %d partitions failed", len(failed))
	}
	return err
}

// evaluateFlow applies the pause policy and tells the source. Every fetch
// loop and the commit loop call it, so while there is no pressure it
// returns at once, without a lock or a look at the partitions: the
// window's atomics say when a decision would change nothing (see
// pipeline.flowQuiet).
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

// assigned starts tracking newly assigned partitions. Their pause state
// starts clear, in the client as in the pipeline: a franz-go pause
// survives revoke and re-assign.
func (c *Consumer) assigned(tps []topicPartition) {
	c.pipe.assign(tps)
	c.joined.Store(true)
	c.met.rebalances.WithLabelValues("assigned").Add(float64(len(tps)))
	if len(tps) > 0 {
		c.log.Info("partitions assigned", "reason", "rebalance", "partitions", tpNames(tps))
	}
}

// revokeGrace is how long a revoke waits, after cancelling the deliveries
// that outlived RebalanceTimeout, for them to return, so that what they
// delivered before is counted done and committed.
const revokeGrace = time.Second

// revoked stops dispatching the partitions, and then:
//
//   - when they are revoked, drops their queued records past the last one
//     delivered or inside a worker, and waits (up to RebalanceTimeout) for
//     the rest: the deliveries inside workers and the gaps below that last
//     record (a slow key's records the other keys overtook), so the done
//     prefix reaches it and the next owner repeats nothing; cancels the
//     partitions' context if they did not finish by then, drops what is
//     left and waits revokeGrace for the workers to notice; commits the
//     done prefix with a deadline of its own; forgets the partitions.
//   - when they are lost, cancels their context at once and forgets them,
//     committing nothing: another member may own them already.
//
// A worker that ignores its cancelled context keeps its lane's key busy:
// should the partition come back to this member, its new lanes wait for
// that worker (see pipeline.unpark), so a key is never delivered twice at
// the same time.
func (c *Consumer) revoked(tps []topicPartition, lost bool) {
	event := "revoked"
	if lost {
		event = "lost"
	}
	parts := c.pipe.partitionsOf(tps)
	if len(parts) == 0 {
		return
	}
	c.met.rebalances.WithLabelValues(event).Add(float64(len(parts)))
	if lost {
		c.pipe.abandon(parts)
	} else {
		c.revokes.Add(1)
		defer c.revokes.Add(-1)
		if cancel := c.loopCommit.Load(); cancel != nil {
			(*cancel)() // its points go back, and are committed below
		}
		wctx, wcancel := context.WithTimeout(context.Background(), c.cfg.RebalanceTimeout)
		finished := c.pipe.stopDispatch(wctx, parts)
		wcancel()
		if !finished {
			c.pipe.abandon(parts)
			gctx, gcancel := context.WithTimeout(context.Background(), revokeGrace)
			finished = c.pipe.stopDispatch(gctx, parts)
			gcancel()
			c.log.Warn("revoke: in-flight deliveries outlived the rebalance timeout; cancelled, the rest goes to the next owner",
				"reason", "rebalance_timeout", "partitions", tpNames(tps), "returned", finished)
		}
	}
	c.commitMu.Lock()
	if !lost {
		cctx, ccancel := context.WithTimeout(context.Background(), c.cfg.CommitTimeout)
		if err := c.commitLocked(cctx, parts); err != nil {
			c.log.Warn("commit on revoke failed", "reason", "commit_error", "error", err)
		}
		ccancel()
	}
	c.pipe.remove(parts)
	c.commitMu.Unlock()

	c.flowMu.Lock()
	var wasPaused []*partition
	for _, p := range parts {
		if p.paused { // safe: removed partitions are no longer touched by decideFlow
			wasPaused = append(wasPaused, p)
		}
	}
	if len(wasPaused) > 0 {
		c.src.resume(wasPaused)
	}
	c.flowMu.Unlock()
	c.log.Info("partitions "+event, "reason", "rebalance", "partitions", tpNames(tps))
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

func tpNames(tps []topicPartition) []string {
	out := make([]string, len(tps))
	for i, tp := range tps {
		out[i] = fmt.Sprintf("%s/%d", tp.topic, tp.partition)
	}
	sort.Strings(out)
	return out
}

func round2(f float64) float64 { return float64(int(f*100+0.5)) / 100 }

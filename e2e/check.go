package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sluicehq/sluice/consumer"
)

// The adversarial checker: seeded schedules of membership changes, silent
// members, sink misbehaviour and awkward records, run against the real
// binary, with invariants checked as deliveries arrive and at the end.
//
//	go run ./e2e/cmd/check -broker kfake -seed 1234     replay one seed
//	scripts/check.sh                                     the fixed seeds on every broker (make check)
//
// The invariants (docs/GUARANTEES.md, "The adversarial checker"):
//
//  1. lost: every record the broker acknowledged is delivered (2xx) or, for
//     a poison key, in the dead-letter topic or stream; counted from the
//     producer's acknowledgements and the recorder, never assumed.
//  2. duplicates: deliveries beyond the first (dead-lettered copies
//     included) stay within the faults' allowance: one window per crash
//     (SIGKILL), per silent member (lost partitions) and per rebalance that
//     meets a sink that is not fast; 0 otherwise (clean drains). A share
//     group (kfake-share, kafka-share) has no revokes: a crash or a silence
//     repeats at most the one poll the member held (at most a window); a
//     join, a leave or a sink fault repeats nothing.
//  3. concurrent/order: no two deliveries of one ordering lane overlap
//     (Kafka: across members; JetStream: within a member), and per lane the
//     first attempts come in offset order. Overlaps with a zombie (a member
//     silent now or within a session timeout) are reported apart.
//  4. window/rss: each member's window peak within its record budget and
//     its byte budget (or one larger record), RSS within the byte budget
//     plus CheckRSSConstant.
//  5. liveness/drain: after every fault, deliveries resume within
//     CheckRecoveryBound; after the last fault everything is delivered
//     within the drain timeout; every SIGTERM exits 0 within the shutdown
//     timeout.
//  6. unsettled (share groups): once every member has left, the group's
//     share-group offsets show no record left unacknowledged.

// CheckRSSConstant is what a member may hold beyond its byte budget: the Go
// runtime, franz-go or nats.go buffers, one fetch, the HTTP client.
const CheckRSSConstant = 96 << 20

// CheckRecoveryBound is the most a fault may stall deliveries after it ends
// (or, for a member that crashes or falls silent, after it happens): the
// session timeout, the group's rebalance timeout (what the members send the
// coordinator: consumer.Config.GroupRebalanceTimeout, 5.5 s here), a commit
// interval and a fetch round, with slack for a 2-core machine under load.
var CheckRecoveryBound = checkSessionTimeout + checkGroupRebalanceTimeout() + 10*time.Second

func checkGroupRebalanceTimeout() time.Duration {
	c := consumer.Config{RebalanceTimeout: checkRebalanceTimeout, CommitTimeout: checkCommitTimeout}
	return c.GroupRebalanceTimeout()
}

// Checker runs schedules against one source.
type Checker struct {
	Bin  string // the sluice binary
	Dir  string // work dir: one sub-dir per schedule (member logs)
	Opts PlanOptions
	// DrainTimeout bounds the wait, after the last fault, for every record
	// to be delivered (default 45s).
	DrainTimeout time.Duration
	Logf         func(format string, args ...any)

	src checkSource
}

// NewKafkaChecker checks a consumer group against b (kfake or a real
// broker behind a proxy).
func NewKafkaChecker(b Broker) *Checker { return &Checker{src: &kafkaCheckSource{b: b}} }

// NewShareChecker checks a share group (SLUICE_SOURCE=kafka-share) against
// b; its kind is kfake-share or kafka-share.
func NewShareChecker(b Broker) *Checker {
	return &Checker{src: &kafkaCheckSource{b: b, share: true}}
}

// NewJetStreamChecker starts an in-process nats-server with JetStream
// (stored in dir) for the checker. Close stops it.
func NewJetStreamChecker(dir string) (*Checker, error) {
	s, err := newJSCheckSource(dir)
	if err != nil {
		return nil, err
	}
	return &Checker{src: s}, nil
}

// Close stops what the checker started (not a Broker it was given).
func (c *Checker) Close() { c.src.close() }

// Kind is kfake, kafka, kfake-share, kafka-share or jetstream.
func (c *Checker) Kind() string { return c.src.kind() }

func (c *Checker) logf(format string, args ...any) {
	if c.Logf != nil {
		c.Logf(format, args...)
	}
}

// CheckResult is what one schedule did and what the checker found.
type CheckResult struct {
	Seed     uint64
	Broker   string
	Plan     *Plan
	Replay   string // the command that runs this seed again
	Duration time.Duration
	Err      error // the harness could not run it

	Faults       map[string]int // injected, by kind
	Produced     int
	Delivered    int // distinct records delivered (2xx)
	DeadLettered int // distinct records in the dead-letter topic
	Lost         int
	Phantom      int
	Duplicates   int // deliveries beyond the first, dead-lettered copies included
	DupDelivered int // of which 2xx deliveries beyond a record's first
	DupBound     int
	Concurrent   int // overlapping deliveries of one lane (violations)
	ZombieOverl  int // overlaps with a silent member, not counted
	OrderChecked int
	Requests     int64
	Answers      map[string]int64

	PeakWindow    int64 // most records any member's window held
	WindowBudget  int64
	PeakBytes     int64
	BytesBudget   int64 // the byte budget, or the largest record when bigger
	PeakRSS       int64
	RSSBudget     int64
	WorstRecovery time.Duration
	WorstAfter    string // the fault the worst recovery followed
	DrainTime     time.Duration

	Violations []Violation
	Counts     map[string]int
}

// Pass reports whether the schedule ran and broke nothing.
func (r *CheckResult) Pass() bool { return r.Err == nil && len(r.Counts) == 0 }

// member is one running `sluice run` of a schedule.
type member struct {
	name string
	p    *Process
}

// schedRun is the state of one schedule while it runs.
type schedRun struct {
	c     *Checker
	plan  *Plan
	dir   string
	env   map[string]string
	start time.Time
	rec   *Recorder
	res   *CheckResult
	holes holes

	mu       sync.Mutex
	members  map[string]*member
	all      []*member
	silent   map[string][]span // freeze and black-hole intervals
	gone     []time.Time       // when a member left, crashed, fell silent or came back from a black hole
	allow    int               // duplicate allowance so far (in windows)
	truth    map[PO]truthRec
	produced int
	pending  []pendingRecovery
	sinkBad  bool // a sink span is on
}

type span struct{ from, to time.Time }

type truthRec struct {
	at     time.Time // when the broker acknowledged it
	key    string
	hash   uint64
	poison bool
}

type pendingRecovery struct {
	kind string
	at   time.Time
}

// RunSeed runs the schedule of seed and checks it.
func (c *Checker) RunSeed(ctx context.Context, seed uint64) *CheckResult {
	plan := NewPlan(seed, c.src.source(), c.Opts)
	res := &CheckResult{Seed: seed, Broker: c.src.kind(), Plan: plan, Faults: map[string]int{},
		Counts: map[string]int{}, Replay: c.replay(seed)}
	t0 := time.Now()
	err := c.runPlan(ctx, plan, res)
	res.Duration = time.Since(t0).Round(100 * time.Millisecond)
	if err != nil {
		res.Err = err
	}
	return res
}

func (c *Checker) replay(seed uint64) string {
	s := fmt.Sprintf("go run ./e2e/cmd/check -broker %s -seed %d", c.src.kind(), seed)
	if c.Opts.Records > 0 && c.Opts.Records != 2000 {
		s += fmt.Sprintf(" -records %d", c.Opts.Records)
	}
	if c.Opts.Length > 0 && c.Opts.Length != 24*time.Second {
		s += fmt.Sprintf(" -length %s", c.Opts.Length)
	}
	return s
}

func (c *Checker) runPlan(ctx context.Context, plan *Plan, res *CheckResult) error {
	id := fmt.Sprintf("%d-%d", plan.Seed, time.Now().UnixNano()%1e6)
	dir := filepath.Join(c.Dir, fmt.Sprintf("%s-seed%d", c.src.kind(), plan.Seed))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	c.logf("schedule %s", plan.Describe())
	r := &schedRun{c: c, plan: plan, dir: dir, res: res, members: map[string]*member{},
		silent: map[string][]span{}, truth: map[PO]truthRec{}}
	env, err := c.src.prepare(ctx, plan, id)
	defer c.src.finish()
	if err != nil {
		return err
	}
	r.env = env
	r.start = time.Now()
	rec, err := NewRecorder(plan, r.start, r.excused, r.dupBound)
	if err != nil {
		return err
	}
	r.rec = rec
	defer rec.Close()
	defer r.killAll()
	res.WindowBudget = int64(plan.Window)
	res.BytesBudget = int64(plan.MaxBytes)
	for _, s := range plan.Sizes {
		// A record larger than the budget is admitted alone: allow it,
		// with its key, subject and headers.
		res.BytesBudget = max(res.BytesBudget, int64(s)+1024)
	}
	res.RSSBudget = int64(plan.MaxBytes) + CheckRSSConstant

	for _, n := range plan.Initial {
		if err := r.join(n); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var bg sync.WaitGroup
	defer bg.Wait()
	defer cancel()
	prodErr := make(chan error, 1)
	bg.Go(func() { prodErr <- r.produce(ctx) })
	bg.Go(func() { r.sample(ctx) })
	bg.Go(func() { r.watchLiveness(ctx) })

	if err := r.runSteps(ctx); err != nil {
		return err
	}
	// Everything heals: wait for the producer, then for every record.
	select {
	case err := <-prodErr:
		if err != nil {
			return fmt.Errorf("producer: %w", err)
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	healed := time.Now()
	drain := c.DrainTimeout
	if drain == 0 {
		drain = 45 * time.Second
	}
	for r.rec.Handled() < r.producedN() {
		if time.Since(healed) > drain {
			r.rec.Violate("liveness", "%d of %d records still undelivered %s after the last fault healed",
				r.producedN()-r.rec.Handled(), r.producedN(), drain)
			break
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	// A share group may still owe redeliveries once every record was
	// handled: a member that was silent past its locks delivered records
	// whose accepts the broker refused, and they come back (to it or
	// another) after it wakes. The members run on until the group has
	// nothing unacknowledged, within what is left of the drain timeout,
	// so that the end check (unsettled) sees what a clean stop leaves.
	if left := drain - time.Since(healed); left > 0 {
		_, _ = c.src.unsettled(ctx, left)
	}
	res.DrainTime = time.Since(healed).Round(100 * time.Millisecond)
	// A clean drain of every member, all at once.
	r.stopAll()
	cancel()
	bg.Wait()
	return r.finalCheck(context.WithoutCancel(ctx))
}

// ---------------------------------------------------------------------------
// members

func (r *schedRun) memberEnv(name string) map[string]string {
	p := r.plan
	e := map[string]string{
		"SLUICE_SINK":                      "http",
		"SLUICE_SINK_HTTP_URL":             r.rec.URL(),
		"SLUICE_SINK_HTTP_HEADERS":         MemberHeader + ":" + name,
		"SLUICE_SINK_HTTP_TIMEOUT":         "10s",
		"SLUICE_SINK_HTTP_MAX_CONNS":       "8",
		"SLUICE_SINK_BREAKER_OPEN_TIMEOUT": "1s",
		"SLUICE_BUFFER_MAX_RECORDS":        strconv.Itoa(p.Window),
		"SLUICE_BUFFER_MAX_BYTES":          fmt.Sprintf("%dKiB", p.MaxBytes>>10),
		"SLUICE_ORDERING":                  p.Ordering,
		"SLUICE_WORKERS_MAX":               "4",
		"SLUICE_COMMIT_INTERVAL":           "300ms",
		"SLUICE_REBALANCE_TIMEOUT":         checkRebalanceTimeout.String(),
		"SLUICE_COMMIT_TIMEOUT":            checkCommitTimeout.String(),
		"SLUICE_SHUTDOWN_TIMEOUT":          checkShutdownTimeout.String(),
		"SLUICE_RETRY_INITIAL_BACKOFF":     "50ms",
		"SLUICE_RETRY_MAX_BACKOFF":         "500ms",
		"SLUICE_RETRY_MAX_ATTEMPTS":        "20",
		"SLUICE_LOG_LEVEL":                 "info",
	}
	if p.Source != "jetstream" {
		e["SLUICE_KAFKA_CLIENT_ID"] = "check-" + name
	} else {
		e["SLUICE_NATS_NAME"] = "check-" + name
	}
	if l := os.Getenv("SLUICEDEV_CHECK_LOG_LEVEL"); l != "" {
		e["SLUICE_LOG_LEVEL"] = l // debug shows franz-go's group steps
	}
	for k, v := range r.env {
		e[k] = v
	}
	return e
}

func (r *schedRun) join(name string) error {
	p, err := StartSluice(r.c.Bin, name, filepath.Join(r.dir, name+".out"), filepath.Join(r.dir, name+".log"), r.memberEnv(name))
	if err != nil {
		return err
	}
	m := &member{name: name, p: p}
	r.mu.Lock()
	r.members[name] = m
	r.all = append(r.all, m)
	r.mu.Unlock()
	return nil
}

func (r *schedRun) member(name string) *member {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.members[name]
}

func (r *schedRun) forget(name string) {
	r.mu.Lock()
	delete(r.members, name)
	r.mu.Unlock()
}

// excused: see Recorder.excused. The grace after a silence is a session
// timeout: a member that wakes learns it lost its partitions at its next
// heartbeat, and deliveries it had started go on until then.
func (r *schedRun) excused(name string, from time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.silent[name] {
		if s.to.IsZero() || !s.to.Add(checkSessionTimeout).Before(from) {
			return true
		}
	}
	return false
}

func (r *schedRun) dupBound() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.allow * r.plan.Window
}

// rebalanceAllowance: a rebalance (join or leave) whose revokes may meet a
// sink that is not fast (a span on within 5 s after it, or on now) may
// leave a window of delivered-but-uncommitted records behind: the revoke
// waits only SLUICE_REBALANCE_TIMEOUT. Kafka consumer groups only: JetStream
// and share groups have no revokes (a share-group member that leaves
// releases what it did not deliver, and accepted what it did).
func (r *schedRun) rebalanceAllowance(at time.Duration) int {
	if r.plan.Source != "kafka" {
		return 0
	}
	for _, s := range r.plan.Steps {
		if s.Kind == StepSink && s.At < at+5*time.Second && at < s.At+s.Dur {
			return 1
		}
	}
	return 0
}

// action is one thing that happens at a time: a step, or the end of one.
type action struct {
	at   time.Duration
	step Step
	end  bool
}

func (r *schedRun) runSteps(ctx context.Context) error {
	var acts []action
	for _, s := range r.plan.Steps {
		acts = append(acts, action{at: s.At, step: s})
		if s.Dur > 0 {
			acts = append(acts, action{at: s.At + s.Dur, step: s, end: true})
		}
	}
	sort.SliceStable(acts, func(i, j int) bool { return acts[i].at < acts[j].at })
	for _, a := range acts {
		if d := time.Until(r.start.Add(a.at)); d > 0 {
			if err := sleep(ctx, d); err != nil {
				return err
			}
		}
		if err := r.do(a); err != nil {
			return err
		}
	}
	if d := time.Until(r.start.Add(r.plan.Length)); d > 0 {
		return sleep(ctx, d)
	}
	return nil
}

func (r *schedRun) do(a action) error {
	s := a.step
	now := time.Now()
	if s.Kind == StepSink {
		if !a.end {
			r.res.Faults["sink "+string(s.Mode)]++
			r.mu.Lock()
			r.sinkBad = true
			r.pending = nil // a stall under a sink fault is the fault, not a liveness failure
			r.mu.Unlock()
			r.rec.SetMode(s.Mode)
		} else {
			r.rec.SetMode(SinkFast)
			r.mu.Lock()
			r.sinkBad = false
			r.mu.Unlock()
			r.recovery("sink "+string(s.Mode), now)
		}
		return nil
	}
	if s.Kind == StepJoin {
		r.res.Faults["join"]++
		r.mu.Lock()
		r.allow += r.rebalanceAllowance(s.At)
		r.mu.Unlock()
		r.recovery("join", now)
		return r.join(s.Member)
	}
	m := r.member(s.Member)
	if m == nil {
		return fmt.Errorf("step %s: no member %s", s, s.Member)
	}
	switch s.Kind {
	case StepLeave:
		r.res.Faults["leave (SIGTERM)"]++
		r.mu.Lock()
		r.allow += r.rebalanceAllowance(s.At)
		r.mu.Unlock()
		r.forget(s.Member)
		r.mu.Lock()
		r.gone = append(r.gone, now)
		r.mu.Unlock()
		// The drain runs on while the schedule goes on.
		go r.checkStop(m, now)
		r.recovery("leave", now)
	case StepKill:
		r.res.Faults["crash (SIGKILL)"]++
		r.mu.Lock()
		r.allow++
		r.gone = append(r.gone, now)
		r.mu.Unlock()
		r.forget(s.Member)
		m.p.Kill()
		r.recovery("crash", now)
	case StepFreeze, StepBlackhole:
		if !a.end {
			if s.Kind == StepFreeze {
				r.res.Faults["silent (SIGSTOP)"]++
				m.p.Signal(syscall.SIGSTOP)
			} else {
				r.res.Faults["silent (black hole)"]++
				r.holes.set(m.name, m.p.Pid(), true)
				r.c.src.proxy().Blackhole(r.holes.match)
			}
			r.mu.Lock()
			r.allow++
			r.gone = append(r.gone, now)
			r.silent[m.name] = append(r.silent[m.name], span{from: now})
			r.mu.Unlock()
			// The member's work stalls until its partitions move.
			r.recovery(string(s.Kind), now)
		} else {
			if s.Kind == StepFreeze {
				m.p.Signal(syscall.SIGCONT)
			} else if r.holes.set(m.name, 0, false) {
				r.c.src.proxy().Unblackhole()
			}
			r.mu.Lock()
			ss := r.silent[m.name]
			ss[len(ss)-1].to = now
			if s.Kind == StepBlackhole {
				// The network held the member's bytes, not dropped them:
				// JetStream pull requests it sent into the hole reach the
				// server now, long after the client gave up on them, and
				// take messages nobody waits for; they come back after
				// AckWait, behind later ones of their key.
				r.gone = append(r.gone, now)
			}
			r.mu.Unlock()
			r.recovery(string(s.Kind)+" end", now)
		}
	}
	return nil
}

// mayBeRedelivered: see Recorder.orderCheck.
func (r *schedRun) mayBeRedelivered(po PO, first time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.truth[po]
	if !ok {
		return false
	}
	for _, g := range r.gone {
		if g.After(t.at.Add(-time.Second)) && g.Before(first) {
			return true
		}
	}
	return false
}

// checkStop SIGTERMs m and checks the drain: exit 0 within the shutdown
// timeout plus slack.
func (r *schedRun) checkStop(m *member, at time.Time) {
	limit := checkShutdownTimeout + 10*time.Second
	err := m.p.Stop(limit)
	if err != nil {
		r.rec.Violate("drain", "%s after SIGTERM at %.1fs: %v", m.name, at.Sub(r.start).Seconds(), err)
		return
	}
	// A second of slack for the process to start its shutdown and exit on
	// a loaded machine.
	if took := time.Since(at); took > checkShutdownTimeout+time.Second {
		r.rec.Violate("drain", "%s took %s to drain (shutdown timeout %s)", m.name, took.Round(100*time.Millisecond), checkShutdownTimeout)
	}
}

func (r *schedRun) stopAll() {
	r.mu.Lock()
	var ms []*member
	for _, m := range r.members {
		ms = append(ms, m)
	}
	r.members = map[string]*member{}
	r.mu.Unlock()
	var wg sync.WaitGroup
	now := time.Now()
	for _, m := range ms {
		wg.Go(func() { r.checkStop(m, now) })
	}
	// Members that left during the schedule are still being waited for.
	for _, m := range r.all {
		wg.Go(func() { _, _ = m.p.Wait(checkShutdownTimeout + 15*time.Second) })
	}
	wg.Wait()
}

func (r *schedRun) killAll() {
	for _, m := range r.all {
		if !m.p.Exited() {
			m.p.Signal(syscall.SIGCONT)
			m.p.Kill()
		}
	}
	r.c.src.proxy().Unblackhole()
}

// ---------------------------------------------------------------------------
// producing

func (r *schedRun) produce(ctx context.Context) error {
	p := r.plan
	poison := map[string]bool{}
	for _, k := range p.Poison {
		poison[k] = true
	}
	for i := range p.Records {
		due := r.start.Add(time.Duration(float64(p.Produce) * float64(i) / float64(p.Records)))
		if d := time.Until(due); d > 0 {
			if err := sleep(ctx, d); err != nil {
				return err
			}
		}
		v := RecordValue(i, p.Sizes[i])
		po, err := r.c.src.produce(ctx, i, p.Keys[i], v)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("record %d: %w", i, err)
		}
		r.mu.Lock()
		r.truth[po] = truthRec{at: time.Now(), key: p.Keys[i], hash: hashValue(v), poison: poison[p.Keys[i]]}
		r.produced++
		r.mu.Unlock()
	}
	return nil
}

func (r *schedRun) producedN() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.produced
}

// ---------------------------------------------------------------------------
// sampling: window and RSS

type flowWindow struct {
	Window struct {
		Records     int64 `json:"records"`
		Bytes       int64 `json:"bytes"`
		MaxRecords  int64 `json:"max_records"`
		MaxBytes    int64 `json:"max_bytes"`
		PeakRecords int64 `json:"peak_records"`
		PeakBytes   int64 `json:"peak_bytes"`
	} `json:"window"`
}

func readFlow(ctx context.Context, addr string) (*flowWindow, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/debug/flow", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /debug/flow: %s", resp.Status)
	}
	var f flowWindow
	if err := json.NewDecoder(resp.Body).Decode(&f); err != nil {
		return nil, err
	}
	return &f, nil
}

func (r *schedRun) sample(ctx context.Context) {
	flagged := map[string]bool{}
	// A member whose /debug/flow never answers would leave the window
	// invariant unchecked without a word: reads are counted per member, and
	// one asked ten times (five seconds awake) that never answered is a
	// violation.
	asked, answered := map[string]int{}, map[string]int{}
	for ctx.Err() == nil {
		r.mu.Lock()
		var ms []*member
		for _, m := range r.members {
			if ss := r.silent[m.name]; len(ss) > 0 && ss[len(ss)-1].to.IsZero() {
				continue // frozen: it cannot answer
			}
			ms = append(ms, m)
		}
		r.mu.Unlock()
		for _, m := range ms {
			if m.p.Exited() {
				continue
			}
			rss := m.p.RSS()
			r.mu.Lock()
			r.res.PeakRSS = max(r.res.PeakRSS, rss)
			r.mu.Unlock()
			if rss > r.res.RSSBudget && !flagged[m.name+"rss"] {
				flagged[m.name+"rss"] = true
				r.rec.Violate("rss", "%s RSS %.1f MiB, budget %.1f MiB", m.name, mib(rss), mib(r.res.RSSBudget))
			}
			f, err := readFlow(ctx, m.p.AdminAddr)
			if ctx.Err() != nil {
				break
			}
			asked[m.name]++
			if err != nil {
				if asked[m.name] >= 10 && answered[m.name] == 0 && !flagged[m.name+"flow"] {
					flagged[m.name+"flow"] = true
					r.rec.Violate("window", "%s never answered on its admin address's /debug/flow (%d reads): %v", m.name, asked[m.name], err)
				}
				continue // frozen since the list was made, or exiting: the peaks are read next time
			}
			answered[m.name]++
			w := f.Window
			r.mu.Lock()
			r.res.PeakWindow = max(r.res.PeakWindow, w.PeakRecords, w.Records)
			r.res.PeakBytes = max(r.res.PeakBytes, w.PeakBytes, w.Bytes)
			r.mu.Unlock()
			if max(w.PeakRecords, w.Records) > int64(r.plan.Window) && !flagged[m.name+"wr"] {
				flagged[m.name+"wr"] = true
				r.rec.Violate("window", "%s window held %d records, budget %d", m.name, max(w.PeakRecords, w.Records), r.plan.Window)
			}
			if max(w.PeakBytes, w.Bytes) > r.res.BytesBudget && !flagged[m.name+"wb"] {
				flagged[m.name+"wb"] = true
				r.rec.Violate("window", "%s window held %d bytes, budget %d (largest record %d)", m.name,
					max(w.PeakBytes, w.Bytes), r.plan.MaxBytes, r.res.BytesBudget-1024)
			}
		}
		_ = sleep(ctx, 500*time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// liveness

// recovery starts timing how long deliveries take to resume after a fault.
func (r *schedRun) recovery(kind string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sinkBad {
		return
	}
	r.pending = append(r.pending, pendingRecovery{kind: kind, at: at})
}

func (r *schedRun) watchLiveness(ctx context.Context) {
	for ctx.Err() == nil {
		_ = sleep(ctx, 100*time.Millisecond)
		last := r.rec.LastProgress()
		handled := r.rec.Handled()
		r.mu.Lock()
		outstanding := r.produced > handled
		keep := r.pending[:0]
		for _, p := range r.pending {
			switch {
			case last.After(p.at):
				d := last.Sub(p.at)
				if d > r.res.WorstRecovery {
					r.res.WorstRecovery, r.res.WorstAfter = d, p.kind
				}
			case !outstanding:
				// nothing to deliver: nothing to recover
			case time.Since(p.at) > CheckRecoveryBound:
				r.res.WorstRecovery = max(r.res.WorstRecovery, time.Since(p.at))
				r.res.WorstAfter = p.kind
				kind, at, n := p.kind, p.at, r.produced-handled
				r.mu.Unlock()
				r.rec.Violate("liveness", "no delivery for %s after %s at %.1fs with %d records outstanding",
					CheckRecoveryBound, kind, at.Sub(r.start).Seconds(), n)
				r.mu.Lock()
			default:
				keep = append(keep, p)
			}
		}
		r.pending = keep
		r.mu.Unlock()
	}
}

// ---------------------------------------------------------------------------
// the end

func (r *schedRun) finalCheck(ctx context.Context) error {
	res, rec := r.res, r.rec
	dl, bad, err := r.c.src.deadLettered(ctx)
	if err != nil {
		return fmt.Errorf("read dead letters: %w", err)
	}
	if bad > 0 {
		rec.Violate("lost", "%d dead-lettered records without valid sluice-dlq-* headers", bad)
	}
	// The broker writes the share-partition state asynchronously: it is
	// read again for a while before it counts.
	left, err := r.c.src.unsettled(ctx, 20*time.Second)
	switch {
	case err != nil:
		rec.Violate("unsettled", "the group's share offsets could not be read: %v", err)
	case left != "":
		rec.Violate("unsettled", "after every member left, the share group still counts records not acknowledged: %s", left)
	}
	var redelivered func(PO, time.Time) bool
	if r.plan.Source == "jetstream" {
		redelivered = r.mayBeRedelivered
	}
	checked, excusedOrder := rec.orderCheck(redelivered)
	res.OrderChecked = checked

	// The recorder's lock first: its handler takes ours under its own.
	rec.mu.Lock()
	defer rec.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	res.Produced = len(r.truth)
	dlCount := map[PO]int{}
	for _, d := range dl {
		po := PO{d.Partition, d.Offset}
		dlCount[po]++
		if t, ok := r.truth[po]; !ok || t.hash != hashValue(d.Value) {
			rec.violateLocked("phantom", "dead-lettered %d@%d is not a produced record with that value", po.Partition, po.Offset)
		}
	}
	var lostSample []string
	healthyDLQ := 0
	for po, t := range r.truth {
		rs := rec.recs[po]
		ok := 0
		if rs != nil {
			ok = rs.ok
			if ok > 0 && rs.hash != t.hash {
				rec.violateLocked("phantom", "%d@%d delivered with another value", po.Partition, po.Offset)
				res.Phantom++
			}
		}
		if ok > 0 {
			res.Delivered++
		}
		if dlCount[po] > 0 {
			res.DeadLettered++
			if !t.poison {
				healthyDLQ++
			}
		}
		if t.poison && ok > 0 {
			rec.violateLocked("phantom", "%d@%d (poison key %s) reported delivered", po.Partition, po.Offset, t.key)
		}
		if n := ok + dlCount[po]; n == 0 {
			res.Lost++
			if len(lostSample) < 5 {
				lostSample = append(lostSample, fmt.Sprintf("%d@%d (key %s)", po.Partition, po.Offset, t.key))
			}
		} else {
			res.Duplicates += n - 1
		}
	}
	for po := range rec.recs {
		if _, ok := r.truth[po]; !ok && rec.recs[po].ok > 0 {
			res.Phantom++
			rec.violateLocked("phantom", "%d@%d delivered but never produced", po.Partition, po.Offset)
		}
	}
	if res.Lost > 0 {
		rec.violateLocked("lost", "%d of %d records neither delivered nor dead-lettered, e.g. %s", res.Lost, res.Produced, strings.Join(lostSample, ", "))
	}
	res.DupBound = r.allow * r.plan.Window
	if res.Duplicates > res.DupBound && !rec.dupOver {
		rec.violateLocked("duplicates", "%d duplicates (dead-lettered copies included), allowance %d (%d windows of %d)",
			res.Duplicates, res.DupBound, r.allow, r.plan.Window)
	}
	res.DupDelivered = rec.dups
	res.Concurrent = rec.counts["concurrent"]
	res.ZombieOverl = rec.excusedN + excusedOrder
	res.Requests = rec.requests
	res.Answers = map[string]int64{}
	for k, v := range rec.byMode {
		res.Answers[k] = v
	}
	for k, v := range rec.counts {
		res.Counts[k] += v
	}
	res.Violations = append([]Violation(nil), rec.viol...)
	if healthyDLQ > 0 {
		r.c.logf("seed %d: %d healthy records dead-lettered after %d failed attempts (allowed; not lost)", r.plan.Seed, healthyDLQ, 20)
	}
	return nil
}

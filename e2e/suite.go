package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// Suite runs fault scenarios: the real binary as separate processes against
// a Broker, a producer of numbered records, and a ledger check at the end.
type Suite struct {
	Bin    string // the sluice binary
	Broker Broker
	Dir    string // work dir: ledgers and logs, one sub-dir per scenario
	Size   Size
	Logf   func(format string, args ...any)

	mu      sync.Mutex
	procs   []*Process
	results []Result
}

// Size scales the scenarios.
type Size struct {
	Records    int           // records produced per scenario
	Rate       int           // records per second
	Window     int           // SLUICE_BUFFER_MAX_RECORDS: the duplicate bound after a crash
	Partitions int32         // partitions of each topic
	Cut        time.Duration // network cut (scenario 4)
	Outage     time.Duration // broker down time (scenario 3)
	Fault      time.Duration // commit failures (scenario 8)
	SinkDown   time.Duration // sink outage (scenario 5)
	Timeout    time.Duration // longest wait for any one step
}

// Short is the default, CI-sized run.
var Short = Size{Records: 20000, Rate: 2500, Window: 2000, Partitions: 4,
	Cut: 8 * time.Second, Outage: 3 * time.Second, Fault: 6 * time.Second, SinkDown: 60 * time.Second,
	Timeout: 3 * time.Minute}

// Long is the soak: more records, longer faults.
var Long = Size{Records: 300000, Rate: 5000, Window: 5000, Partitions: 8,
	Cut: 40 * time.Second, Outage: 15 * time.Second, Fault: 30 * time.Second, SinkDown: 60 * time.Second,
	Timeout: 10 * time.Minute}

// Result is one row of the table.
type Result struct {
	ID       int
	Name     string
	Check    *Check
	Bound    string // the promise, e.g. "lost=0 dup=0" or "lost=0 dup<=2000"
	Pass     bool
	Skipped  string // why it did not run
	Err      error  // the harness could not finish it
	Notes    []string
	Duration time.Duration
}

// Scenario is one fault.
type Scenario struct {
	ID   int
	Name string
	// Needs says what the broker must offer: "fake" (kfake fault hooks),
	// "proxy" (the broker advertises the proxy) or "restart".
	Needs string
	Run   func(ctx context.Context, s *Suite, sc *scenarioRun) error
}

// Scenarios lists the fault suite in order.
var Scenarios = []Scenario{
	{1, "SIGTERM mid-stream, restart", "", runSigterm},
	{2, "SIGKILL mid-stream, restart", "", runSigkill},
	{3, "broker restart mid-stream", "restart", runBrokerRestart},
	{4, "network cut and latency", "proxy", runNetwork},
	{5, "sink down (HTTP sink unreachable)", "", runSinkDown},
	{6, "poison records dead-lettered", "", runPoison},
	{7, "rebalance storm (3 processes)", "", runStorm},
	{8, "commit failures injected", "fake", runCommitFailures},
}

// scenarioRun is the state of one scenario while it runs.
type scenarioRun struct {
	s      *Suite
	id     int
	dir    string
	topic  string
	group  string
	phases []Phase
	prod   *Producer
	res    *Result
	// sinkPhases, when set, are the ledgers to check instead of the
	// processes' stdout (an HTTP sink's ledger, the dead-letter topic).
	sinkPhases []Phase
	// maxDup is the duplicate bound; -1 means no bound is claimed.
	maxDup int
}

func (s *Suite) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
}

// Run runs the scenarios whose IDs are in only (all when empty), in order,
// and returns their results.
func (s *Suite) Run(ctx context.Context, only []int) []Result {
	var out []Result
	for _, sc := range Scenarios {
		if len(only) > 0 && !contains(only, sc.ID) {
			continue
		}
		out = append(out, s.RunOne(ctx, sc))
	}
	return out
}

// lacks says why the broker cannot run a scenario that needs what, or "".
func (s *Suite) lacks(what string) string {
	switch {
	case what == "fake" && s.Broker.Fake() == nil:
		return "needs kfake's fault hooks"
	case what == "proxy" && s.Broker.Proxy() == nil:
		return "needs a broker that advertises the proxy (not an external broker)"
	case what == "restart" && !s.Broker.CanRestart():
		return "needs a broker the suite can restart (not an external broker)"
	}
	return ""
}

func contains(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// RunOne runs one scenario; it never leaves a process behind.
func (s *Suite) RunOne(ctx context.Context, sc Scenario) Result {
	res := Result{ID: sc.ID, Name: sc.Name}
	if why := s.lacks(sc.Needs); why != "" {
		res.Skipped = why
		res.Pass = true
		return res
	}
	start := time.Now()
	r := &scenarioRun{
		s: s, id: sc.ID, res: &res, maxDup: 0,
		dir:   filepath.Join(s.Dir, fmt.Sprintf("s%d", sc.ID)),
		topic: fmt.Sprintf("chaos-s%d-%d", sc.ID, time.Now().UnixNano()%1e9),
	}
	r.group = "g-" + r.topic
	s.logf("scenario %d: %s (topic %s)", sc.ID, sc.Name, r.topic)
	err := os.MkdirAll(r.dir, 0o755)
	if err == nil {
		err = createTopic(ctx, s.Broker, r.topic, s.Size.Partitions)
	}
	if err == nil {
		err = sc.Run(ctx, s, r)
	}
	s.killAll()
	if r.prod != nil {
		if err != nil {
			r.prod.Abort() // the scenario failed: do not wait out delivery timeouts
		}
		<-r.prod.Done()
	}
	if err == nil && r.prod != nil {
		err = r.verify(ctx)
	}
	res.Err = err
	res.Duration = time.Since(start).Round(time.Second)
	if res.Check != nil && err == nil {
		c := res.Check
		res.Pass = c.Lost == 0 && c.Phantom == 0 && c.BrokerLost == 0 && c.Bad == 0 &&
			(r.maxDup < 0 || c.Duplicates <= r.maxDup)
	}
	if res.Bound == "" {
		res.Bound = boundText(r.maxDup)
	}
	status := "PASS"
	if !res.Pass {
		status = "FAIL"
	}
	s.logf("scenario %d: %s in %s%s", sc.ID, status, res.Duration, errText(err))
	s.mu.Lock()
	s.results = append(s.results, res)
	s.mu.Unlock()
	return res
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return ": " + err.Error()
}

func boundText(maxDup int) string {
	switch {
	case maxDup < 0:
		return "lost=0"
	case maxDup == 0:
		return "lost=0 dup=0"
	}
	return fmt.Sprintf("lost=0 dup<=%d", maxDup)
}

func (r *scenarioRun) verify(ctx context.Context) error {
	acked, failed, ferr := r.prod.Wait()
	if failed > 0 {
		r.note("%d records not acknowledged (%v): not counted", failed, ferr)
	}
	c, err := Verify(ctx, r.s.Broker, r.topic, acked, r.checked())
	if err != nil {
		return err
	}
	r.res.Check = c
	if len(c.Sample) > 0 && (c.Lost > 0 || c.Phantom > 0 || c.BrokerLost > 0) {
		r.note("e.g. %s", strings.Join(c.Sample, "; "))
	}
	if c.Duplicates > 0 {
		var ph []string
		for _, p := range r.checked() {
			if n := c.DupByPhase[p.Name]; n > 0 {
				ph = append(ph, fmt.Sprintf("%s:%d", p.Name, n))
			}
		}
		r.note("duplicates by phase %s", strings.Join(ph, " "))
	}
	return nil
}

func (r *scenarioRun) note(format string, args ...any) {
	r.res.Notes = append(r.res.Notes, fmt.Sprintf(format, args...))
	r.s.logf("  s%d: "+format, append([]any{r.id}, args...)...)
}

// env is the Sluice configuration every process of the scenario gets.
func (r *scenarioRun) env(extra map[string]string) map[string]string {
	e := map[string]string{
		"SLUICE_KAFKA_BROKERS":        r.s.Broker.Addr(),
		"SLUICE_KAFKA_TOPICS":         r.topic,
		"SLUICE_KAFKA_GROUP":          r.group,
		"SLUICE_KAFKA_CLIENT_ID":      fmt.Sprintf("chaos-s%d", r.id),
		"SLUICE_BUFFER_MAX_RECORDS":   strconv.Itoa(r.s.Size.Window),
		"SLUICE_WORKERS_MAX":          "4",
		"SLUICE_COMMIT_INTERVAL":      "500ms",
		"SLUICE_SHUTDOWN_TIMEOUT":     "20s",
		"SLUICE_KAFKA_FETCH_MAX_WAIT": "100ms",
		"SLUICE_LOG_LEVEL":            "info",
	}
	for k, v := range extra {
		e[k] = v
	}
	return e
}

// start runs one more Sluice process; its ledger is a new phase.
func (r *scenarioRun) start(name string, extra map[string]string) (*Process, error) {
	ledger := filepath.Join(r.dir, fmt.Sprintf("%02d-%s.jsonl", len(r.phases)+1, name))
	p, err := StartSluice(r.s.Bin, name, ledger, filepath.Join(r.dir, name+".log"), r.env(extra))
	if err != nil {
		return nil, err
	}
	r.phases = append(r.phases, Phase{Name: name, Ledger: ledger})
	r.s.mu.Lock()
	r.s.procs = append(r.s.procs, p)
	r.s.mu.Unlock()
	return p, nil
}

func (r *scenarioRun) produce(ctx context.Context, n int) error {
	return r.producePoison(ctx, n, nil)
}

func (r *scenarioRun) producePoison(ctx context.Context, n int, poison func(int) bool) error {
	p, err := startProducer(ctx, r.s.Broker, r.topic, n, r.s.Size.Rate, poison)
	if err != nil {
		return err
	}
	r.prod = p
	return nil
}

func (r *scenarioRun) ledgers() []string {
	var out []string
	for _, p := range r.checked() {
		out = append(out, p.Ledger)
	}
	return out
}

// checked is what the ledger check reads.
func (r *scenarioRun) checked() []Phase {
	if r.sinkPhases != nil {
		return r.sinkPhases
	}
	return r.phases
}

// waitLines waits until the ledgers hold at least n lines.
func (r *scenarioRun) waitLines(ctx context.Context, n int) error {
	return r.poll(ctx, fmt.Sprintf("%d deliveries", n), func() bool { return countLines(r.ledgers()...) >= n })
}

// waitDone waits until the producer is done and the group has committed up
// to the end of every partition: everything was delivered and committed.
func (r *scenarioRun) waitDone(ctx context.Context) error {
	select {
	case <-r.prod.Done():
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(r.s.Size.Timeout):
		return fmt.Errorf("producer not done after %s", r.s.Size.Timeout)
	}
	acked, _, _ := r.prod.Wait()
	ends := map[int32]int64{}
	for po := range acked {
		ends[po.Partition] = max(ends[po.Partition], po.Offset+1)
	}
	var last map[int32]int64
	err := r.poll(ctx, "the group to commit every record", func() bool {
		got, err := committed(ctx, r.s.Broker, r.group, r.topic)
		if err != nil {
			return false
		}
		last = got
		for p, end := range ends {
			if got[p] < end {
				return false
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("%w (committed %v, acked ends %v)", err, last, ends)
	}
	return nil
}

func (r *scenarioRun) poll(ctx context.Context, what string, cond func() bool) error {
	deadline := time.Now().Add(r.s.Size.Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", r.s.Size.Timeout, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// killAll SIGKILLs every process still running.
func (s *Suite) killAll() {
	s.mu.Lock()
	procs := s.procs
	s.procs = nil
	s.mu.Unlock()
	for _, p := range procs {
		if !p.Exited() {
			p.Kill()
		}
	}
}

// Close stops every process the suite started.
func (s *Suite) Close() { s.killAll() }

// ---------------------------------------------------------------------------
// The table

// Table writes the results as one table and a last line with the totals.
// It returns whether every scenario that ran passed.
func Table(w io.Writer, kind string, rs []Result) bool {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "scenario\tbroker\tproduced\tdelivered\tlost\tduplicates\tbound\ttime\tresult\t\n")
	var prod, deliv, lost, dup, ran, passed int
	ok := true
	for _, r := range rs {
		name := fmt.Sprintf("%d %s", r.ID, r.Name)
		switch {
		case r.Skipped != "":
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t%s\t-\tskipped\t\n", name, kind, r.Bound)
			continue
		case r.Check == nil:
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t%s\t%s\tERROR\t\n", name, kind, r.Bound, r.Duration)
			ok = false
			ran++
			continue
		}
		c := r.Check
		res := "ok"
		if !r.Pass {
			res, ok = "FAIL", false
		} else {
			passed++
		}
		ran++
		lostS := strconv.Itoa(c.Lost)
		if c.Phantom > 0 {
			lostS += fmt.Sprintf(" (+%d phantom)", c.Phantom)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%d\t%s\t%s\t%s\t\n", name, kind, c.Acked, c.Delivered, lostS,
			c.Duplicates, r.Bound, r.Duration, res)
		prod += c.Acked
		deliv += c.Delivered
		lost += c.Lost + c.Phantom
		dup += c.Duplicates
	}
	tw.Flush()
	for _, r := range rs {
		if r.Err != nil {
			fmt.Fprintf(w, "  %d: error: %v\n", r.ID, r.Err)
		}
		for _, n := range r.Notes {
			fmt.Fprintf(w, "  %d: %s\n", r.ID, n)
		}
		if r.Skipped != "" {
			fmt.Fprintf(w, "  %d: skipped: %s\n", r.ID, r.Skipped)
		}
	}
	verdict := "PASS"
	if !ok {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "TOTAL %s: %d scenarios, %d passed, %d failed; produced %d, delivered %d, lost %d, duplicates %d\n",
		kind, ran, passed, ran-passed, prod, deliv, lost, dup)
	fmt.Fprintf(w, "chaos: %s\n", verdict)
	return ok
}

// Sorted returns the results by scenario ID.
func Sorted(rs []Result) []Result {
	out := append([]Result(nil), rs...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// stopAll SIGTERMs the processes in parallel and waits for clean exits.
func stopAll(ps ...*Process) error {
	var wg sync.WaitGroup
	errs := make([]error, len(ps))
	for i, p := range ps {
		wg.Go(func() { errs[i] = p.Stop(45 * time.Second) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// watchCommits polls the group's committed offsets every 100ms until the
// returned stop is called, and counts regressions: a partition's committed
// offset moving backwards. A member committing for a partition it no longer
// owns (a zombie after a revoke or a lost session) shows up as one.
func (r *scenarioRun) watchCommits(ctx context.Context) (stop func() (regressions, polls int)) {
	ctx, cancel := context.WithCancel(ctx)
	var regressions, polls int
	var seen []string // a few regressions, noted once the watch stops
	done := make(chan struct{})
	high := map[int32]int64{}
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			got, err := committed(ctx, r.s.Broker, r.group, r.topic)
			if err == nil {
				polls++
				for p, o := range got {
					if o < high[p] {
						regressions++
						if len(seen) < 5 {
							seen = append(seen, fmt.Sprintf("partition %d: %d -> %d", p, high[p], o))
						}
					}
					high[p] = max(high[p], o)
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return func() (int, int) {
		cancel()
		<-done
		if len(seen) > 0 {
			r.note("committed offsets went backwards: %s", strings.Join(seen, "; "))
		}
		return regressions, polls
	}
}

package e2e

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// MemberHeader is the request header (set with SLUICE_SINK_HTTP_HEADERS)
// that tells the recorder which member sent a request.
const MemberHeader = "X-Sluice-Member"

// Violation is one broken invariant, as the checker saw it.
type Violation struct {
	At        time.Duration // since the schedule started
	Invariant string        // lost, phantom, duplicates, concurrent, order, window, rss, liveness, drain, unsettled
	Detail    string
}

func (v Violation) String() string {
	return fmt.Sprintf("%6.1fs %-10s %s", v.At.Seconds(), v.Invariant, v.Detail)
}

// Recorder is the HTTP sink every member of a schedule delivers to. It
// answers each request as the schedule says (fast, slow, held, failing,
// throttling, poison keys refused for good), records every delivery with
// its start and end and the member that made it, and checks as requests
// arrive that no two deliveries of one ordering lane overlap and that
// duplicates stay within what the faults so far allow.
type Recorder struct {
	plan  *Plan
	start time.Time
	ln    net.Listener
	srv   *http.Server
	wg    sync.WaitGroup

	// excused says whether member was silent (frozen or black-holed), or
	// came back from it less than a grace ago, at any time since from:
	// such a member is a zombie no client can fence, and an overlap with
	// it is reported apart. dupBound is what the faults so far allow.
	excused  func(member string, from time.Time) bool
	dupBound func() int
	poison   map[string]bool
	blocking map[string]bool

	mu        sync.Mutex
	rng       *rand.Rand
	mode      SinkMode
	release   chan struct{} // closed when the current blocking span ends
	seq       int64
	active    map[string][]*inflight
	recs      map[PO]*recState
	requests  int64
	byMode    map[string]int64 // answers by kind: ok, slow, held, 500, 429, 400, aborted
	successes int64
	dups      int
	dupOver   bool
	lastProg  time.Time
	handled   int // records with a success or a refusal
	maxInFl   int
	inFlight  int
	excusedN  int // overlaps with a zombie member, not counted as violations
	viol      []Violation
	counts    map[string]int
}

type inflight struct {
	member string
	po     PO
	seq    int64
	start  time.Time
}

type recState struct {
	firstSeq    int64
	firstAt     time.Time
	firstMember string
	firstExcuse bool // the first attempt came from a zombie member
	key         string
	ok          int
	refused     int
	hash        uint64
}

// NewRecorder listens on a free port of 127.0.0.1.
func NewRecorder(p *Plan, start time.Time, excused func(string, time.Time) bool, dupBound func() int) (*Recorder, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Recorder{plan: p, start: start, ln: ln, excused: excused, dupBound: dupBound,
		poison: map[string]bool{}, blocking: map[string]bool{}, mode: SinkFast,
		rng:    rand.New(rand.NewPCG(p.Seed, 0x5e7c)),
		active: map[string][]*inflight{}, recs: map[PO]*recState{},
		byMode: map[string]int64{}, counts: map[string]int{}, lastProg: start}
	for _, k := range p.Poison {
		r.poison[k] = true
	}
	for _, k := range p.Blocking {
		r.blocking[k] = true
	}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 5 * time.Second}
	r.wg.Go(func() { _ = r.srv.Serve(ln) })
	return r, nil
}

// URL is where members deliver.
func (r *Recorder) URL() string { return "http://" + r.ln.Addr().String() + "/deliver" }

// Close stops the server (held requests are released first).
func (r *Recorder) Close() {
	r.SetMode(SinkFast)
	_ = r.srv.Close()
	r.wg.Wait()
}

// SetMode changes how new requests are answered; leaving SinkBlocking
// releases every held request.
func (r *Recorder) SetMode(m SinkMode) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mode == SinkBlocking && m != SinkBlocking && r.release != nil {
		close(r.release)
		r.release = nil
	}
	if m == SinkBlocking && r.release == nil {
		r.release = make(chan struct{})
	}
	r.mode = m
}

// Violate records a violation found elsewhere (window, RSS, liveness).
func (r *Recorder) Violate(inv, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.violateLocked(inv, format, args...)
}

func (r *Recorder) violateLocked(inv, format string, args ...any) {
	r.counts[inv]++
	if len(r.viol) < 200 {
		r.viol = append(r.viol, Violation{At: time.Since(r.start), Invariant: inv, Detail: fmt.Sprintf(format, args...)})
	}
}

// LastProgress is when a record was last delivered or refused for good.
func (r *Recorder) LastProgress() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastProg
}

// Handled is how many distinct records were delivered or refused for good.
func (r *Recorder) Handled() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.handled
}

// logicalKey is the plan's key of a delivery: the Kafka key, or for
// JetStream the last token of the subject (the subject is the key there).
func (r *Recorder) logicalKey(d Delivery) string {
	if r.plan.Source == "jetstream" {
		s := d.Topic
		if i := strings.LastIndexByte(s, '.'); i >= 0 {
			s = s[i+1:]
		}
		return s
	}
	return string(d.Key)
}

// lane is the ordering lane a delivery belongs to, "" when no overlap
// check applies (ordering none). Kafka lanes are checked across members;
// JetStream replicas share one consumer with no key affinity, so there a
// lane is per member.
func (r *Recorder) lane(member string, d Delivery, key string) string {
	var l string
	switch r.plan.Ordering {
	case "key":
		l = fmt.Sprintf("%s/%d/%s", d.Topic, d.Partition, key)
		if r.plan.Source == "jetstream" {
			l = "key " + key
		}
	case "partition":
		l = fmt.Sprintf("%s/%d", d.Topic, d.Partition)
		if r.plan.Source == "jetstream" {
			l = "stream"
		}
	default:
		return ""
	}
	if r.plan.Source == "jetstream" {
		l = member + " " + l
	}
	return l
}

func hashValue(v []byte) uint64 {
	h := fnv.New64a()
	h.Write(v)
	return h.Sum64()
}

func (r *Recorder) serve(w http.ResponseWriter, req *http.Request) {
	if req.Method == http.MethodHead {
		return // the sink's Ping
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 16<<20))
	if err != nil {
		return
	}
	d, err := ParseLine(bytes.TrimSpace(body))
	if err != nil {
		r.Violate("phantom", "a request that is not one record: %v", err)
		http.Error(w, "not a record", http.StatusBadRequest)
		return
	}
	member := req.Header.Get(MemberHeader)
	key := r.logicalKey(d)
	po := PO{d.Partition, d.Offset}
	now := time.Now()

	r.mu.Lock()
	r.seq++
	r.requests++
	me := &inflight{member: member, po: po, seq: r.seq, start: now}
	lane := r.lane(member, d, key)
	if lane != "" {
		for _, o := range r.active[lane] {
			if o.member != member && (r.excused(o.member, o.start) || r.excused(member, o.start)) {
				r.excusedN++
				continue
			}
			r.violateLocked("concurrent", "%s@%d (key %q) by %s began while %s's delivery of %d@%d (began %.0f ms before) was still running",
				fmt.Sprint(d.Partition), d.Offset, key, member, o.member, o.po.Partition, o.po.Offset,
				float64(now.Sub(o.start))/float64(time.Millisecond))
		}
		r.active[lane] = append(r.active[lane], me)
	}
	r.inFlight++
	r.maxInFl = max(r.maxInFl, r.inFlight)
	rs := r.recs[po]
	if rs == nil {
		rs = &recState{firstSeq: r.seq, firstAt: now, firstMember: member, key: key,
			firstExcuse: r.excused(member, now)}
		r.recs[po] = rs
	}
	mode, release := r.mode, r.release
	roll := r.rng.Float64()
	r.mu.Unlock()

	defer func() {
		r.mu.Lock()
		r.inFlight--
		if lane != "" {
			as := r.active[lane]
			for i, o := range as {
				if o == me {
					as = append(as[:i], as[i+1:]...)
					break
				}
			}
			if len(as) == 0 {
				delete(r.active, lane)
			} else {
				r.active[lane] = as
			}
		}
		r.mu.Unlock()
	}()

	count := func(kind string) {
		r.mu.Lock()
		r.byMode[kind]++
		r.mu.Unlock()
	}
	if r.poison[key] {
		r.mu.Lock()
		r.byMode["400"]++
		if rs.ok == 0 && rs.refused == 0 {
			r.handled++
		}
		rs.refused++
		r.lastProg = time.Now()
		r.mu.Unlock()
		http.Error(w, "poison key: refused for good", http.StatusBadRequest)
		return
	}
	wait := func(ch <-chan time.Time, rel <-chan struct{}) bool {
		select {
		case <-ch:
		case <-rel:
		case <-req.Context().Done():
			return false
		}
		return true
	}
	switch mode {
	case SinkSlow:
		if roll < r.plan.SlowShare {
			count("slow")
			t := time.NewTimer(r.plan.SlowDelay)
			ok := wait(t.C, nil)
			t.Stop()
			if !ok {
				count("aborted")
				return
			}
		}
	case SinkBlocking:
		if r.blocking[key] && release != nil {
			count("held")
			if !wait(nil, release) {
				count("aborted")
				return
			}
		}
	case SinkFailing:
		if roll < r.plan.FailShare {
			count("500")
			http.Error(w, "injected failure", http.StatusInternalServerError)
			return
		}
	case SinkThrottle:
		count("429")
		w.Header().Set("Retry-After", "1")
		http.Error(w, "throttled", http.StatusTooManyRequests)
		return
	}
	if req.Context().Err() != nil {
		count("aborted")
		return
	}
	r.mu.Lock()
	r.byMode["ok"]++
	r.successes++
	if rs.ok == 0 && rs.refused == 0 {
		r.handled++
	}
	rs.ok++
	if rs.ok == 1 {
		rs.hash = hashValue(d.Value)
	} else {
		r.dups++
		if b := r.dupBound(); r.dups > b && !r.dupOver {
			r.dupOver = true
			r.violateLocked("duplicates", "%d duplicates by %s after %s@%d, more than the %d the faults so far allow",
				r.dups, member, fmt.Sprint(d.Partition), d.Offset, b)
		}
	}
	r.lastProg = time.Now()
	r.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// orderCheck checks that, per ordering lane, the first attempts of records
// came in offset order. Kafka: across members (a partition has one owner at
// a time). JetStream: per member, among the records that member was the
// first to be given (a redelivery after a crash comes back out of order by
// design). Pairs where a first attempt came from a zombie are excused.
//
// redelivered, when set (JetStream), says whether a record may have been
// held by a member that then went away (left, crashed, fell silent) before
// its first attempt: the server gives it to another member after AckWait or
// a Nak, behind later messages of its key. Pairs with such a record are
// excused too.
func (r *Recorder) orderCheck(redelivered func(PO, time.Time) bool) (checked, excused int) {
	if r.plan.Ordering == "none" {
		return 0, 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	type item struct {
		po PO
		rs *recState
	}
	lanes := map[string][]item{}
	for po, rs := range r.recs {
		var l string
		if r.plan.Ordering == "key" {
			l = fmt.Sprintf("%d/%s", po.Partition, rs.key)
		} else {
			l = fmt.Sprint(po.Partition)
		}
		if r.plan.Source == "jetstream" {
			l = rs.firstMember + " " + l
		}
		lanes[l] = append(lanes[l], item{po, rs})
	}
	names := make([]string, 0, len(lanes))
	for l := range lanes {
		names = append(names, l)
	}
	sort.Strings(names)
	for _, l := range names {
		its := lanes[l]
		sort.Slice(its, func(i, j int) bool { return its[i].po.Offset < its[j].po.Offset })
		var prev *item
		for i := range its {
			it := &its[i]
			checked++
			if prev != nil && it.rs.firstSeq < prev.rs.firstSeq {
				if it.rs.firstExcuse || prev.rs.firstExcuse ||
					(redelivered != nil && redelivered(prev.po, prev.rs.firstAt)) {
					excused++
				} else {
					r.violateLocked("order", "lane %s: offset %d was first attempted (by %s) before offset %d (by %s)",
						l, it.po.Offset, it.rs.firstMember, prev.po.Offset, prev.rs.firstMember)
				}
			}
			if prev == nil || it.rs.firstSeq > prev.rs.firstSeq {
				prev = it
			}
		}
	}
	return checked, excused
}

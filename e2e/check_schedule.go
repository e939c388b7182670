package e2e

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"
)

// The adversarial checker (see check.go) runs schedules: a seeded plan of
// members joining, leaving, crashing and going silent, of sink behaviour
// changing under them, and of the records produced meanwhile. The same
// seed gives the same plan (math/rand/v2's PCG), so a failing seed replays
// the same faults at the same offsets; the timing inside the processes
// differs from run to run, which is the point of running many seeds.

// StepKind is one kind of fault or membership change.
type StepKind string

const (
	StepJoin      StepKind = "join"      // start another `sluice run`
	StepLeave     StepKind = "leave"     // SIGTERM: a clean drain
	StepKill      StepKind = "kill"      // SIGKILL: a crash
	StepFreeze    StepKind = "freeze"    // SIGSTOP for Dur (> the session timeout), then SIGCONT
	StepBlackhole StepKind = "blackhole" // the proxy holds the member's bytes for Dur, no reset
	StepSink      StepKind = "sink"      // the recording sink behaves as Mode for Dur, then fast again
)

// SinkMode is how the recording sink answers while a StepSink lasts.
type SinkMode string

const (
	SinkFast     SinkMode = "fast"     // 200 at once
	SinkSlow     SinkMode = "slow"     // a share of requests take longer than SLUICE_REBALANCE_TIMEOUT
	SinkBlocking SinkMode = "blocking" // requests of some keys are held until the step ends
	SinkFailing  SinkMode = "failing"  // a share of requests get 500
	SinkThrottle SinkMode = "throttle" // every request gets 429 with Retry-After: 1
)

// Step is one event of a schedule, At after the schedule starts.
type Step struct {
	At     time.Duration
	Kind   StepKind
	Member string        // join, leave, kill, freeze, blackhole: which member
	Dur    time.Duration // freeze, blackhole, sink: how long
	Mode   SinkMode      // sink
}

func (s Step) String() string {
	switch s.Kind {
	case StepSink:
		return fmt.Sprintf("%5.1fs sink %s for %s", s.At.Seconds(), s.Mode, s.Dur)
	case StepFreeze, StepBlackhole:
		return fmt.Sprintf("%5.1fs %s %s for %s", s.At.Seconds(), s.Kind, s.Member, s.Dur)
	}
	return fmt.Sprintf("%5.1fs %s %s", s.At.Seconds(), s.Kind, s.Member)
}

// Plan is one schedule.
type Plan struct {
	Seed     uint64
	Source   string // "kafka" (kfake or a real broker), "kafka-share" (a share group there) or "jetstream"
	Ordering string // key, partition or none (always none for kafka-share)

	Partitions int32 // Kafka: partitions of the topic
	Window     int   // SLUICE_BUFFER_MAX_RECORDS
	MaxBytes   int   // SLUICE_BUFFER_MAX_BYTES

	Records  int           // records produced
	Produce  time.Duration // spread over this long from the start
	Length   time.Duration // the last fault ends by then; then everything heals
	Initial  []string      // members started at once
	Steps    []Step        // sorted by At
	Sizes    []int         // value size of each record (0: empty)
	Keys     []string      // key of each record
	Poison   []string      // keys the sink refuses for good (400): dead-lettered
	HotKeys  []string      // keys that carry a large share of the records
	Blocking []string      // keys whose requests a blocking sink holds

	SlowDelay  time.Duration // how long a slow request takes
	SlowShare  float64       // share of requests a slow sink delays
	FailShare  float64       // share of requests a failing sink fails
	Clean      bool          // no crash and no silence: the duplicate bound is 0 unless a rebalance meets a sink fault
	LargeCount int           // records larger than MaxBytes
}

// Timing the checker runs members with; the plan's faults are sized to it.
const (
	checkSessionTimeout   = 6 * time.Second
	checkRebalanceTimeout = 1500 * time.Millisecond
	checkCommitTimeout    = 2 * time.Second
	checkShutdownTimeout  = 15 * time.Second
	checkAckWait          = 6 * time.Second // JetStream: the analogue of the session timeout
	checkMaxMembers       = 3
	// Share groups: the acquisition lock the checker gives its groups (the
	// analogue of AckWait: a silent member's records come back after it),
	// and the share-group session timeout of kfake, as the real broker's
	// template has it.
	checkShareLock    = 6 * time.Second
	checkShareSession = 10 * time.Second
)

// PlanOptions scales generated plans.
type PlanOptions struct {
	Records int           // about this many records (default 2000)
	Length  time.Duration // faults within this (default 24s)
}

// NewPlan generates the schedule of seed for source ("kafka",
// "kafka-share" or "jetstream"). It is a pure function of its arguments.
// A kafka-share plan is the kafka plan of the same seed with ordering none
// (a share group keeps no order): the same records, faults and sink spans.
func NewPlan(seed uint64, source string, o PlanOptions) *Plan {
	if o.Records <= 0 {
		o.Records = 2000
	}
	if o.Length <= 0 {
		o.Length = 24 * time.Second
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed_c4ec))
	p := &Plan{Seed: seed, Source: source, Length: o.Length}
	p.Ordering = []string{"key", "key", "partition", "none"}[rng.IntN(4)]
	if source == "kafka-share" {
		p.Ordering = "none"
	}
	p.Partitions = int32(2 + rng.IntN(3))
	p.Window = 150 + 50*rng.IntN(6)
	p.MaxBytes = 256 << 10
	p.Records = o.Records*3/4 + rng.IntN(o.Records/2+1)
	p.Produce = o.Length * 3 / 4
	p.SlowDelay = checkRebalanceTimeout + time.Duration(500+rng.IntN(1000))*time.Millisecond
	p.SlowShare = 0.1 + rng.Float64()*0.2
	p.FailShare = 0.3 + rng.Float64()*0.2

	// Keys: a few hot ones, a long tail, sometimes poison ones.
	nHot := 1 + rng.IntN(2)
	for i := range nHot {
		p.HotKeys = append(p.HotKeys, fmt.Sprintf("hot%d", i))
	}
	hotShare := 0.2 + rng.Float64()*0.3
	if rng.IntN(3) > 0 {
		for i := range 1 + rng.IntN(2) {
			p.Poison = append(p.Poison, fmt.Sprintf("poison%d", i))
		}
	}
	p.Blocking = append(p.Blocking, p.HotKeys[0])
	if rng.IntN(2) == 0 {
		p.Blocking = append(p.Blocking, fmt.Sprintf("k%d", rng.IntN(40)))
	}
	large := rng.IntN(2) == 0
	for i := range p.Records {
		var k string
		switch f := rng.Float64(); {
		case len(p.Poison) > 0 && f < 0.01:
			k = p.Poison[rng.IntN(len(p.Poison))]
		case f < hotShare:
			k = p.HotKeys[rng.IntN(nHot)]
		default:
			k = fmt.Sprintf("k%d", rng.IntN(40))
		}
		p.Keys = append(p.Keys, k)
		var sz int
		switch f := rng.Float64(); {
		case f < 0.05:
			sz = 0
		case f < 0.85:
			sz = 10 + rng.IntN(200)
		default:
			sz = 1024 + rng.IntN(8<<10)
		}
		p.Sizes = append(p.Sizes, sz)
		_ = i
	}
	if large {
		// A few records larger than the whole byte budget, early enough
		// that the records after them show whether the window recovers.
		p.LargeCount = 1 + rng.IntN(3)
		for range p.LargeCount {
			i := rng.IntN(p.Records / 2)
			p.Sizes[i] = p.MaxBytes + 1 + rng.IntN(64<<10)
		}
	}

	// Membership and faults on a simulated member set, so every step names
	// a member that is there and able to take it.
	p.Clean = rng.IntN(3) == 0
	type mem struct {
		name    string
		silentT time.Duration // busy (frozen or black-holed) until
	}
	next := 1
	newName := func() string { n := fmt.Sprintf("m%d", next); next++; return n }
	var alive []mem
	for range 1 + rng.IntN(2) {
		n := newName()
		alive = append(alive, mem{name: n})
		p.Initial = append(p.Initial, n)
	}
	healthy := func(t time.Duration) []int {
		var out []int
		for i, m := range alive {
			if m.silentT <= t {
				out = append(out, i)
			}
		}
		return out
	}
	nEvents := 3 + rng.IntN(4)
	t := 2 * time.Second
	for range nEvents {
		t += time.Duration(1500+rng.IntN(3500)) * time.Millisecond
		if t > o.Length-2*time.Second {
			break
		}
		h := healthy(t)
		kinds := []StepKind{StepJoin, StepLeave}
		if !p.Clean {
			kinds = append(kinds, StepKill, StepFreeze, StepKill, StepFreeze)
			if source == "kafka" || source == "kafka-share" || source == "jetstream" {
				kinds = append(kinds, StepBlackhole)
			}
		}
		k := kinds[rng.IntN(len(kinds))]
		if k != StepJoin && len(h) < 2 {
			k = StepJoin // keep one healthy member at all times
		}
		if k == StepJoin && len(alive) >= checkMaxMembers {
			if len(h) < 2 {
				continue
			}
			k = StepLeave
		}
		st := Step{At: t, Kind: k}
		switch k {
		case StepJoin:
			st.Member = newName()
			alive = append(alive, mem{name: st.Member})
		case StepLeave, StepKill:
			i := h[rng.IntN(len(h))]
			st.Member = alive[i].name
			alive = append(alive[:i], alive[i+1:]...)
		case StepFreeze, StepBlackhole:
			i := h[rng.IntN(len(h))]
			st.Member = alive[i].name
			st.Dur = checkSessionTimeout + time.Duration(2000+rng.IntN(2000))*time.Millisecond
			if st.At+st.Dur > o.Length {
				st.Dur = max(o.Length-st.At, checkSessionTimeout+time.Second)
			}
			alive[i].silentT = st.At + st.Dur
		}
		p.Steps = append(p.Steps, st)
	}
	// Sink behaviour: spans that do not overlap each other, placed freely,
	// and sometimes right on a membership change so that a revoke has to
	// wait for a sink that is slow or held.
	modes := []SinkMode{SinkSlow, SinkBlocking, SinkFailing, SinkThrottle}
	var spans []Step
	free := func(at, dur time.Duration) bool {
		for _, s := range spans {
			if at < s.At+s.Dur+500*time.Millisecond && s.At < at+dur+500*time.Millisecond {
				return false
			}
		}
		return at+dur <= o.Length
	}
	nSpans := 2 + rng.IntN(3)
	members := p.Steps
	for range nSpans * 3 {
		if len(spans) == nSpans {
			break
		}
		dur := time.Duration(2000+rng.IntN(3000)) * time.Millisecond
		var at time.Duration
		if len(members) > 0 && rng.IntN(2) == 0 {
			at = members[rng.IntN(len(members))].At - 500*time.Millisecond
		} else {
			at = time.Duration(1000+rng.IntN(int(o.Length/time.Millisecond)-1000)) * time.Millisecond
		}
		at = max(at, time.Second)
		if !free(at, dur) {
			continue
		}
		spans = append(spans, Step{At: at, Kind: StepSink, Mode: modes[rng.IntN(len(modes))], Dur: dur})
	}
	p.Steps = append(p.Steps, spans...)
	sort.SliceStable(p.Steps, func(i, j int) bool { return p.Steps[i].At < p.Steps[j].At })
	return p
}

// Describe is the plan in a few lines, for logs and failure reports.
func (p *Plan) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: %s, ordering %s, %d records over %s (%d larger than the %d KiB budget), window %d",
		p.Seed, p.Source, p.Ordering, p.Records, p.Produce, p.LargeCount, p.MaxBytes>>10, p.Window)
	if p.Source != "jetstream" {
		fmt.Fprintf(&b, ", %d partitions", p.Partitions)
	}
	fmt.Fprintf(&b, "; hot %v, poison %v, blocking %v; members %v", p.HotKeys, p.Poison, p.Blocking, p.Initial)
	if p.Clean {
		b.WriteString(" (clean: no crash, no silence)")
	}
	for _, s := range p.Steps {
		b.WriteString("\n    ")
		b.WriteString(s.String())
	}
	return b.String()
}

// RecordValue is the value of record i of a plan: its id, then padding to
// size (an empty record has no id in its value; it is known by its
// partition and offset, as every record is).
func RecordValue(i, size int) []byte {
	if size == 0 {
		return nil
	}
	id := fmt.Sprintf("id=%d;", i)
	if size <= len(id) {
		return []byte(id[:size])
	}
	v := make([]byte, size)
	copy(v, id)
	for j := len(id); j < size; j++ {
		v[j] = 'a' + byte(j%26)
	}
	return v
}

package consumer

import (
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"
)

// TestDecideFlow tables the pause policy (the pure decideFlow): a budget of
// 100 records and 1000 bytes, water marks 0.8 and 0.5, PauseDelay 1 s, and
// partitions described by what they hold; a fair share is the budget over
// the partitions.
func TestDecideFlow(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const delay = time.Second
	// part is a partition holding recs records (bytes: ten a record).
	part := func(recs int64) flowPart { return flowPart{heldRecords: recs, heldBytes: 10 * recs} }
	paused := func(recs int64, reason string) flowPart {
		p := part(recs)
		p.paused, p.reason = true, reason
		return p
	}
	type want struct {
		pause     map[int]string // partition index -> reason
		resume    []int
		highSince time.Time // zero: no pressure
	}
	cases := []struct {
		name      string
		fill      float64
		gated     bool
		highSince time.Time // zero: no pressure so far
		at        time.Duration
		parts     []flowPart
		want      want
	}{
		{"no partitions: nothing, pressure untouched", 0.9, true, t0, 5 * time.Second, nil,
			want{highSince: t0}},
		{"below low resumes all, whatever the reason, and ends pressure", 0.4, false, t0, 5 * time.Second,
			[]flowPart{paused(20, ReasonWindowHigh), paused(10, ReasonOverFairShare), paused(5, ReasonWindowFull), part(5)},
			want{resume: []int{0, 1, 2}}},
		{"at low is below low", 0.5, false, t0, 5 * time.Second,
			[]flowPart{paused(25, ReasonWindowHigh), paused(25, ReasonWindowHigh)},
			want{resume: []int{0, 1}}},
		{"no pressure, between the marks: nothing starts", 0.7, false, time.Time{}, 0,
			[]flowPart{part(35), part(35)},
			want{}},
		{"first crossing of high water starts the pressure, pauses nothing", 0.9, false, time.Time{}, 0,
			[]flowPart{part(80), part(10)},
			want{highSince: t0}},
		{"pressure shorter than PauseDelay pauses nothing, even gated", 1, true, t0, delay - time.Millisecond,
			[]flowPart{part(90), part(10)},
			want{highSince: t0}},
		{"sustained above high pauses only the partitions over their share", 0.85, false, t0, delay,
			[]flowPart{part(60), part(5), part(20)}, // share 33
			want{pause: map[int]string{0: ReasonOverFairShare}, highSince: t0}},
		{"over share in bytes counts too", 0.85, false, t0, delay,
			[]flowPart{{heldRecords: 10, heldBytes: 600}, part(40)}, // share 50 records, 500 bytes
			want{pause: map[int]string{0: ReasonOverFairShare}, highSince: t0}},
		{"sustained above high, none over its share: all pause with window_high", 0.8, false, t0, 2 * delay,
			[]flowPart{part(40), part(40)},
			want{pause: map[int]string{0: ReasonWindowHigh, 1: ReasonWindowHigh}, highSince: t0}},
		{"sustained above high, none over its share, some paused already: no more pause", 0.85, false, t0, 2 * delay,
			[]flowPart{paused(30, ReasonOverFairShare), part(30), part(25)}, // share 33
			want{highSince: t0}},
		{"gated and sustained pauses all with window_full", 0.82, true, t0, delay,
			[]flowPart{part(60), part(20), paused(2, ReasonOverFairShare)},
			want{pause: map[int]string{0: ReasonWindowFull, 1: ReasonWindowFull}, highSince: t0}},
		{"gated between the marks, sustained: window_full too", 0.7, true, t0, delay,
			[]flowPart{part(35), part(35)},
			want{pause: map[int]string{0: ReasonWindowFull, 1: ReasonWindowFull}, highSince: t0}},
		{"gated, no pressure: nothing", 0.7, true, time.Time{}, 0,
			[]flowPart{part(35), part(35)},
			want{}},
		{"over_fair_share resumes between the marks once under low/high of its share", 0.6, false, t0, 3 * delay,
			// share 25, low/high of it 15.625: 15 goes, 16 stays; window_high stays
			[]flowPart{paused(15, ReasonOverFairShare), paused(16, ReasonOverFairShare), paused(0, ReasonWindowHigh), part(10)},
			want{resume: []int{0}, highSince: t0}},
		{"over_fair_share resumes above high too when some are paused", 0.9, false, t0, 3 * delay,
			[]flowPart{paused(20, ReasonOverFairShare), part(49)},
			want{resume: []int{0}, highSince: t0}},
		{"over_fair_share under its share in records but not bytes stays paused", 0.6, false, t0, 3 * delay,
			[]flowPart{{heldRecords: 10, heldBytes: 400, paused: true, reason: ReasonOverFairShare}, part(40)},
			want{highSince: t0}},
		{"hysteresis: between the marks the pressure is kept", 0.6, false, t0, 3 * delay,
			[]flowPart{part(30), part(30)},
			want{highSince: t0}},
		{"hysteresis: back above high, the old pressure counts (no new delay)", 0.8, false, t0, delay,
			[]flowPart{part(40), part(40)},
			want{pause: map[int]string{0: ReasonWindowHigh, 1: ReasonWindowHigh}, highSince: t0}},
		{"hysteresis: at low water the pressure is cleared", 0.5, false, t0, 3 * delay,
			[]flowPart{part(25), part(25)},
			want{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := flowInput{
				fill: tc.fill, high: 0.8, low: 0.5, maxRecords: 100, maxBytes: 1000,
				gated: tc.gated, pauseDelay: delay, highSince: tc.highSince, parts: tc.parts,
			}
			now := t0.Add(tc.at)
			got := decideFlow(now, in)
			var gotPause map[int]string
			for _, p := range got.pause {
				if gotPause == nil {
					gotPause = map[int]string{}
				}
				if _, dup := gotPause[p.part]; dup {
					t.Errorf("partition %d paused twice", p.part)
				}
				gotPause[p.part] = p.reason
			}
			resume := append([]int(nil), got.resume...)
			sort.Ints(resume)
			if !reflect.DeepEqual(gotPause, tc.want.pause) {
				t.Errorf("pause %v, want %v", gotPause, tc.want.pause)
			}
			if !reflect.DeepEqual(resume, tc.want.resume) {
				t.Errorf("resume %v, want %v", resume, tc.want.resume)
			}
			if !got.highSince.Equal(tc.want.highSince) {
				t.Errorf("highSince %v, want %v", got.highSince, tc.want.highSince)
			}
			// Pure: the input is not touched.
			for i, p := range tc.parts {
				if p != in.parts[i] {
					t.Errorf("partition %d changed: %+v", i, in.parts[i])
				}
			}
		})
	}
}

// TestFlowQuietMatchesDecision checks the lock-free fast path against the
// policy: whenever pipeline.flowQuiet says a decision would change nothing, the
// decision, taken at the same moment, changes nothing, for fills,
// pressure ages, room and pause states around every edge.
func TestFlowQuietMatchesDecision(t *testing.T) {
	const delay = time.Second
	fills := []int64{0, 40, 50, 51, 70, 79, 80, 81, 95, 100}
	ages := []time.Duration{-1, 0, delay / 2, delay - time.Millisecond, delay, 2 * delay} // -1: no pressure
	checked, quiet := 0, 0
	gatedLow := false // some quiet case had no room below high water
	for _, recs := range fills {
		for _, age := range ages {
			for _, pausedState := range []string{"", ReasonOverFairShare, ReasonWindowHigh} {
				for _, bigRecord := range []bool{false, true} {
					name := fmt.Sprintf("fill %d age %v paused %q big %v", recs, age, pausedState, bigRecord)
					w := NewWindow(100, 1000, 0.8, 0.5)
					p := &pipeline{win: w, parts: map[topicPartition]*partition{}, pauseDelay: delay}
					a, b := newPartition(topicPartition{"t", 0}), newPartition(topicPartition{"t", 1})
					p.parts[a.topicPartition], p.parts[b.topicPartition] = a, b
					if bigRecord && recs > 0 {
						// One record of the fill's bytes, all in a: from
						// 50 % on, no room for another of its size
						// (gated below high water).
						w.Add(1, recs*10)
						a.heldRecords, a.heldBytes = 1, recs*10
					} else {
						w.Add(int(recs), recs) // a byte a record
						a.heldRecords, a.heldBytes = recs/2, recs/2
						b.heldRecords, b.heldBytes = recs-recs/2, recs-recs/2
					}
					now := time.Now()
					if age >= 0 {
						p.highSince = now.Add(-age)
					}
					if pausedState != "" {
						a.paused, a.pauseReason = true, pausedState
					}
					// Publish the state as a decision would have left it.
					n := 0
					if a.paused {
						n = 1
					}
					p.flow.publish(n, p.highSince, delay)
					if !p.flowQuiet() {
						checked++
						continue
					}
					quiet++
					before := p.highSince
					gated := w.Room() == 0
					gatedLow = gatedLow || gated && w.Fill() < w.high
					pause, resume := p.decideFlow(time.Now(), gated)
					if len(pause)+len(resume) > 0 || !p.highSince.Equal(before) {
						t.Errorf("%s: quiet, but the decision paused %d, resumed %d, highSince %v -> %v",
							name, len(pause), len(resume), before, p.highSince)
					}
				}
			}
		}
	}
	if quiet == 0 || checked == 0 {
		t.Fatalf("quiet %d times, not quiet %d times: the table misses a side", quiet, checked)
	}
	if !gatedLow {
		t.Fatal("no quiet case without room below high water")
	}
}

// TestFlowQuietWhenItMatters: the fast path never hides a decision that
// changes something: the first crossing of high water, sustained pressure,
// a paused partition at low water.
func TestFlowQuietWhenItMatters(t *testing.T) {
	w := NewWindow(100, 1<<30, 0.8, 0.5)
	p := &pipeline{win: w, parts: map[topicPartition]*partition{}, pauseDelay: 50 * time.Millisecond}
	a := newPartition(topicPartition{"t", 0})
	p.parts[a.topicPartition] = a
	decide := func() (pause, resume []*partition) {
		if p.flowQuiet() {
			return nil, nil
		}
		return p.decideFlow(time.Now(), w.Room() == 0)
	}
	w.Add(70, 0)
	if !p.flowQuiet() {
		t.Fatal("between the marks without pressure: quiet")
	}
	w.Add(10, 0)
	if p.flowQuiet() {
		t.Fatal("crossing high water is not quiet: the pressure starts")
	}
	if pause, _ := decide(); len(pause) != 0 || p.highSince.IsZero() {
		t.Fatalf("first crossing: pause %d, highSince %v", len(pause), p.highSince)
	}
	if !p.flowQuiet() {
		t.Fatal("pressure younger than PauseDelay: quiet")
	}
	time.Sleep(60 * time.Millisecond)
	if p.flowQuiet() {
		t.Fatal("sustained pressure at high water is not quiet")
	}
	if pause, _ := decide(); len(pause) != 1 || !a.paused {
		t.Fatalf("sustained: pause %d", len(pause))
	}
	w.Release(10, 0)
	if p.flowQuiet() {
		t.Fatal("a paused partition is never quiet")
	}
	if pause, resume := decide(); len(pause)+len(resume) != 0 {
		t.Fatal("between the marks a window_high pause stays")
	}
	w.Release(20, 0)
	if _, resume := decide(); len(resume) != 1 || a.paused || !p.highSince.IsZero() {
		t.Fatalf("at low water: resume %d, highSince %v", len(resume), p.highSince)
	}
	if !p.flowQuiet() {
		t.Fatal("resumed and below low: quiet again")
	}
}

// TestWindowChangedTokens: Changed wakes a receive for a Release after it,
// never loses one between reading the room and waiting, and allocates
// nothing per Release.
func TestWindowChangedTokens(t *testing.T) {
	w := NewWindow(10, 1000, 0.8, 0.5)
	w.Add(10, 10)
	ch := w.Changed()
	select {
	case <-ch:
		t.Fatal("no release yet")
	default:
	}
	w.Release(1, 1)
	w.Release(1, 1) // a second release while the token is there
	select {
	case <-ch:
	default:
		t.Fatal("a Release after Changed must wake a receive")
	}
	select {
	case <-w.Changed():
		t.Fatal("two releases leave one token")
	default:
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for w.Room() == 0 {
			<-w.Changed()
		}
	}()
	w.Release(1, 1)
	<-done
	if n := testing.AllocsPerRun(1000, func() { w.Add(1, 1); w.Release(1, 1) }); n != 0 {
		t.Fatalf("%v allocations per Add and Release", n)
	}
}

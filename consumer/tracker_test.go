package consumer

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestTrackerCommitsOnlyTheContiguousDonePrefix(t *testing.T) {
	p := newPartition(topicPartition{"t", 0})
	// Offsets with a gap (as compaction or transaction markers leave).
	offsets := []int64{10, 11, 12, 15, 16}
	seqs := make([]int64, len(offsets))
	for i, o := range offsets {
		seqs[i] = p.track(o, 100, 3)
	}
	steps := []struct {
		done     int   // index into offsets marked done
		wantDone int64 // doneOffset after it
		wantRel  int64 // records released to the next commit
	}{
		{done: 2, wantDone: -1, wantRel: 0}, // 12 done, 10 and 11 not: nothing to commit
		{done: 4, wantDone: -1, wantRel: 0}, // 16 done: still nothing
		{done: 0, wantDone: 11, wantRel: 1}, // 10 done: commit up to 11
		{done: 1, wantDone: 13, wantRel: 3}, // 11 done: 10..12 contiguous, next is 15
		{done: 3, wantDone: 17, wantRel: 5}, // 15 done: everything
	}
	for _, s := range steps {
		p.markDone(seqs[s.done])
		if p.doneOffset != s.wantDone || p.relRecords != s.wantRel {
			t.Fatalf("after offset %d done: doneOffset=%d rel=%d, want %d, %d",
				offsets[s.done], p.doneOffset, p.relRecords, s.wantDone, s.wantRel)
		}
	}
	if p.doneEpoch != 3 || p.relBytes != 500 {
		t.Errorf("epoch %d bytes %d, want 3 and 500", p.doneEpoch, p.relBytes)
	}
}

// TestTrackerRandomOrder checks, for random completion orders, that the done
// offset always equals one past the longest done prefix.
func TestTrackerRandomOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		p := newPartition(topicPartition{"t", 0})
		n := 1 + r.IntN(3000)
		for i := range n {
			p.track(int64(i), 1, 0)
		}
		done := make([]bool, n)
		for _, i := range r.Perm(n) {
			p.markDone(int64(i))
			done[i] = true
			prefix := 0
			for prefix < n && done[prefix] {
				prefix++
			}
			want := int64(prefix)
			if prefix == 0 {
				want = -1
			}
			if p.doneOffset != want {
				t.Fatalf("trial %d: doneOffset %d, want %d", trial, p.doneOffset, want)
			}
		}
		if len(p.entries) != 0 {
			t.Fatalf("trial %d: %d entries left after all done", trial, len(p.entries))
		}
	}
}

func TestWindowHighLowAndGate(t *testing.T) {
	w := NewWindow(100, 1000, 0.8, 0.5)
	if w.Room() != 100 {
		t.Fatalf("before any record is seen the room is the record budget, got %d", w.Room())
	}
	w.SawRecords(1, 5000)
	if w.Room() != 1 {
		t.Fatalf("an empty window must admit one record larger than its budget, room %d", w.Room())
	}
	w.SawRecords(1, 10)
	w.Add(79, 10)
	if w.AboveHigh() {
		t.Fatal("79% is below the high mark")
	}
	w.Add(1, 10)
	if !w.AboveHigh() || w.BelowLow() {
		t.Fatal("80% is at the high mark")
	}
	if w.Room() != 20 {
		t.Fatalf("20 records and 980 bytes free, records of 1 byte held: room %d, want 20", w.Room())
	}
	w2 := NewWindow(100, 1000, 0.8, 0.5)
	w2.SawRecords(1, 10)
	w2.Add(50, 900)
	if w2.Room() != 5 {
		t.Fatalf("room %d, want 5 (100 bytes free at the 18 bytes a record it holds)", w2.Room())
	}
	ch := w.Changed()
	w.Release(30, 10)
	select {
	case <-ch:
	default:
		t.Fatal("Release must close the Changed channel")
	}
	if !w.BelowLow() {
		t.Fatalf("50%% is at the low mark, fill %v", w.Fill())
	}
	if w.PeakRecords() != 80 || w.PeakBytes() != 20 {
		t.Fatalf("peaks %d %d", w.PeakRecords(), w.PeakBytes())
	}
}

func TestDecideFlowHysteresisAndFairShare(t *testing.T) {
	w := NewWindow(100, 1<<30, 0.8, 0.5)
	p := &pipeline{win: w, parts: map[topicPartition]*partition{}, pauseDelay: time.Second}
	now := time.Unix(1000, 0)
	// decide asks twice, PauseDelay apart, as a full window sustained.
	decide := func() ([]*partition, []*partition) {
		pause, resume := p.decideFlow(now, false)
		if len(pause) > 0 {
			return pause, resume
		}
		now = now.Add(time.Second)
		p2, r2 := p.decideFlow(now, false)
		return p2, append(resume, r2...)
	}
	a, b := newPartition(topicPartition{"t", 0}), newPartition(topicPartition{"t", 1})
	p.parts[a.topicPartition], p.parts[b.topicPartition] = a, b
	hold := func(part *partition, n int64) {
		w.Add(int(n-part.heldRecords), 0)
		part.heldRecords = n
	}
	// 80 records, 60 of them in partition a: a is over its share (50) and
	// pauses alone.
	hold(a, 60)
	hold(b, 20)
	pause, resume := decide()
	if len(pause) != 1 || pause[0] != a || a.pauseReason != ReasonOverFairShare || len(resume) != 0 {
		t.Fatalf("pause %v resume %v", pause, resume)
	}
	// a drains to 40 (fill 60%): under its share but above low/high of it
	// (31.25): stays paused.
	hold(a, 40)
	if pause, resume = decide(); len(pause)+len(resume) != 0 {
		t.Fatalf("flapped: pause %v resume %v", pause, resume)
	}
	// a drains to 31 (fill 51%, above the low mark): it resumes on its own.
	hold(a, 31)
	if _, resume = decide(); len(resume) != 1 || a.paused {
		t.Fatalf("resume %v", resume)
	}
	// Even spread at the high mark: both pause.
	hold(a, 40)
	hold(b, 40)
	if pause, _ = decide(); len(pause) != 2 || b.pauseReason != ReasonWindowHigh {
		t.Fatalf("pause %v", pause)
	}
	// Between the marks nothing changes; at the low mark both resume.
	hold(a, 30)
	if pause, resume = decide(); len(pause)+len(resume) != 0 {
		t.Fatalf("flapped between marks: pause %v resume %v", pause, resume)
	}
	hold(a, 10)
	if _, resume = decide(); len(resume) != 2 {
		t.Fatalf("resume %v", resume)
	}
}

func BenchmarkTrackerInOrder(b *testing.B) {
	p := newPartition(topicPartition{"t", 0})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		seq := p.track(int64(i), 100, 0)
		p.markDone(seq)
	}
}

func BenchmarkTrackerOutOfOrder(b *testing.B) {
	p := newPartition(topicPartition{"t", 0})
	const batch = 256
	perm := rand.New(rand.NewPCG(3, 4)).Perm(batch)
	b.ReportAllocs()
	var off int64
	for b.Loop() {
		base := p.nextSeq
		for range batch {
			p.track(off, 100, 0)
			off++
		}
		for _, i := range perm {
			p.markDone(base + int64(i))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/record")
}

func BenchmarkWindowAddRelease(b *testing.B) {
	w := NewWindow(1<<30, 1<<40, 0.8, 0.5)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w.Add(256, 256*100)
			w.Release(256, 256*100)
		}
	})
}

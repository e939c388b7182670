package consumer

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestTrackerCommitsOnlyTheContiguousDonePrefix(t *testing.T) {
	p := newPartition(topicPartition{"t", 0})
	// Segments with a gap in the offsets (as compaction or transaction
	// markers leave): [10 11 12] [15] [16 17].
	s1 := p.track(10, 13, 3, 300)
	s2 := p.track(15, 16, 1, 100)
	s3 := p.track(16, 18, 2, 200)
	steps := []struct {
		what     string
		seq      int64
		n        int
		end      int64
		wantDone int64 // doneOffset after it
		wantRel  int64 // records released to the next commit
	}{
		{"15 done, 10..12 not: nothing to commit", s2, 1, 16, -1, 0},
		{"16 done: still nothing", s3, 1, 17, -1, 0},
		{"10 done: commit up to 11", s1, 1, 11, 11, 1},
		{"11 and 12 done: up to 16 and 17", s1, 2, 13, 17, 5},
		{"17 done: everything", s3, 1, 18, 18, 6},
	}
	for _, st := range steps {
		p.markDone(st.seq, st.n, int64(100*st.n), st.end, 3)
		if p.doneOffset != st.wantDone || p.relRecords != st.wantRel {
			t.Fatalf("%s: doneOffset=%d rel=%d, want %d, %d", st.what, p.doneOffset, p.relRecords, st.wantDone, st.wantRel)
		}
	}
	if p.doneEpoch != 3 || p.relBytes != 600 {
		t.Errorf("epoch %d bytes %d, want 3 and 600", p.doneEpoch, p.relBytes)
	}
	if len(p.segs) != 0 {
		t.Errorf("%d segments left after all were done", len(p.segs))
	}
}

// TestTrackerRandomOrder checks, for random segments completed in random
// order (each from its front, a run at a time, as a lane delivers it),
// that the done offset always equals one past the longest done prefix of
// messages, and that what is released adds up to it.
func TestTrackerRandomOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		p := newPartition(topicPartition{"t", 0})
		n := 1 + r.IntN(3000)
		type seg struct{ seq, first, end, next int64 }
		var segs []*seg
		for off := 0; off < n; {
			k := min(n-off, 1+r.IntN(40))
			s := &seg{first: int64(off), end: int64(off + k), next: int64(off)}
			s.seq = p.track(s.first, s.end, k, int64(k))
			segs = append(segs, s)
			off += k
		}
		done := make([]bool, n)
		for open := len(segs); open > 0; {
			s := segs[r.IntN(len(segs))]
			if s.next == s.end {
				continue
			}
			k := min(s.end-s.next, 1+r.Int64N(8))
			p.markDone(s.seq, int(k), k, s.next+k, 0)
			for i := s.next; i < s.next+k; i++ {
				done[i] = true
			}
			if s.next += k; s.next == s.end {
				open--
			}
			prefix := 0
			for prefix < n && done[prefix] {
				prefix++
			}
			want := int64(prefix)
			if prefix == 0 {
				want = -1
			}
			if p.doneOffset != want || p.relRecords != int64(prefix) || p.relBytes != int64(prefix) {
				t.Fatalf("trial %d: doneOffset %d released %d records %d bytes, want %d, %d, %d",
					trial, p.doneOffset, p.relRecords, p.relBytes, want, prefix, prefix)
			}
		}
		if len(p.segs) != 0 {
			t.Fatalf("trial %d: %d segments left after all done", trial, len(p.segs))
		}
	}
}

// TestTrackerKeyedSegments mixes in-order segments with keyed ones, whose
// messages are done one by one in any order (as key lanes deliver them),
// over offsets with gaps and messages of different sizes: after every
// completion the done offset is one past the last message of the longest
// done prefix, its epoch that message's, and the records and bytes
// released are exactly that prefix's.
func TestTrackerKeyedSegments(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for trial := range 200 {
		p := newPartition(topicPartition{"t", 0})
		type msg struct {
			off, size int64
			epoch     int32
			seq       int64
			idx       int32
			keyed     bool
		}
		var msgs []*msg
		off := int64(r.IntN(100))
		epoch := int32(1)
		for range 1 + r.IntN(60) { // admissions
			k := 1 + r.IntN(50)
			batch := make([]*msg, k)
			for i := range batch {
				off += 1 + int64(r.IntN(2))*int64(r.IntN(5)) // gaps, as compaction leaves
				if r.IntN(40) == 0 {
					epoch++
				}
				batch[i] = &msg{off: off, size: int64(r.IntN(300)), epoch: epoch}
			}
			if r.IntN(3) == 0 { // an in-order segment: one run
				var bytes int64
				for _, m := range batch {
					bytes += m.size
				}
				seq := p.track(batch[0].off, batch[k-1].off+1, k, bytes)
				for _, m := range batch {
					m.seq = seq
				}
			} else { // keyed, a new segment where the epoch changes
				seq := int64(-1)
				for i, m := range batch {
					if r.IntN(10) == 0 { // no key: a segment of its own, between keyed ones
						m.seq = p.track(m.off, m.off+1, 1, m.size)
						continue
					}
					if seq < 0 || !p.fitsKeyed(seq, m.off, m.size, m.epoch) {
						seq = p.trackKeyed(m.off, m.epoch, k-i)
					}
					m.seq, m.idx, m.keyed = seq, p.addKeyed(seq, m.off, m.size), true
				}
			}
			msgs = append(msgs, batch...)
		}
		// Complete: keyed messages one at a time in random order, an
		// in-order segment's messages in order, a run at a time.
		done := make([]bool, len(msgs))
		order := r.Perm(len(msgs))
		for n := 0; n < len(order); {
			i := order[n]
			if done[i] {
				n++
				continue
			}
			m := msgs[i]
			if m.keyed {
				p.markKeyed(m.seq, m.idx)
				done[i] = true
			} else {
				j := i // the segment's first undone message, then a run
				for j > 0 && msgs[j-1].seq == m.seq && !done[j-1] {
					j--
				}
				k := j
				var bytes int64
				for ; k < len(msgs) && msgs[k].seq == m.seq && k-j < 1+r.IntN(8); k++ {
					done[k] = true
					bytes += msgs[k].size
				}
				p.markDone(m.seq, k-j, bytes, msgs[k-1].off+1, msgs[k-1].epoch)
			}
			prefix, bytes := 0, int64(0)
			for prefix < len(msgs) && done[prefix] {
				bytes += msgs[prefix].size
				prefix++
			}
			wantOff, wantEpoch := int64(-1), int32(0)
			if prefix > 0 {
				wantOff, wantEpoch = msgs[prefix-1].off+1, msgs[prefix-1].epoch
			}
			if p.doneOffset != wantOff || p.doneEpoch != wantEpoch || p.relRecords != int64(prefix) || p.relBytes != bytes {
				t.Fatalf("trial %d: done offset %d epoch %d, released %d records %d bytes; want %d, %d, %d, %d",
					trial, p.doneOffset, p.doneEpoch, p.relRecords, p.relBytes, wantOff, wantEpoch, prefix, bytes)
			}
		}
		if len(p.segs) != 0 {
			t.Fatalf("trial %d: %d segments left after all done (head %d, first %+v)", trial, len(p.segs), p.head, p.segs[p.head])
		}
		if p.heldRecords != int64(len(msgs)) {
			t.Fatalf("trial %d: %d records held, want %d", trial, p.heldRecords, len(msgs))
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
		t.Fatal("Release must signal the Changed channel")
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

// BenchmarkTrackerInOrder: one message a segment (key ordering's case).
func BenchmarkTrackerInOrder(b *testing.B) {
	p := newPartition(topicPartition{"t", 0})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		seq := p.track(int64(i), int64(i)+1, 1, 100)
		p.markDone(seq, 1, 100, int64(i)+1, 0)
	}
}

// BenchmarkTrackerSegments: segments of 64 done out of order, a run of 16
// at a time (no ordering's case), per record.
func BenchmarkTrackerSegments(b *testing.B) {
	p := newPartition(topicPartition{"t", 0})
	const segs, size, run = 16, 64, 16
	perm := rand.New(rand.NewPCG(3, 4)).Perm(segs)
	b.ReportAllocs()
	var off int64
	seqs := make([]int64, segs)
	for b.Loop() {
		first := off
		for i := range segs {
			seqs[i] = p.track(off, off+size, size, size*100)
			off += size
		}
		for r := 0; r < size; r += run {
			for _, i := range perm {
				end := first + int64(i*size+r+run)
				p.markDone(seqs[i], run, run*100, end, 0)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*segs*size), "ns/record")
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

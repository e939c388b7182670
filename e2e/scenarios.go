package e2e

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// 1. SIGTERM mid-stream, then a new process: a clean drain commits what it
// delivered, so nothing is lost and nothing comes twice.
func runSigterm(ctx context.Context, s *Suite, r *scenarioRun) error {
	r.maxDup = 0
	a, err := r.start("a", nil)
	if err != nil {
		return err
	}
	if err := r.produce(ctx, s.Size.Records); err != nil {
		return err
	}
	if err := r.waitLines(ctx, s.Size.Records/3); err != nil {
		return err
	}
	t0 := time.Now()
	if err := a.Stop(45 * time.Second); err != nil {
		return err
	}
	r.note("SIGTERM at %d deliveries: clean exit in %s", countLines(a.Ledger), time.Since(t0).Round(10*time.Millisecond))
	b, err := r.start("b", nil)
	if err != nil {
		return err
	}
	if err := r.waitDone(ctx); err != nil {
		return err
	}
	return b.Stop(45 * time.Second)
}

// 2. SIGKILL mid-stream, then a new process: what was delivered but not yet
// committed comes again, at most one window.
func runSigkill(ctx context.Context, s *Suite, r *scenarioRun) error {
	r.maxDup = s.Size.Window
	a, err := r.start("a", nil)
	if err != nil {
		return err
	}
	if err := r.produce(ctx, s.Size.Records); err != nil {
		return err
	}
	if err := r.waitLines(ctx, s.Size.Records/3); err != nil {
		return err
	}
	a.Kill()
	r.note("SIGKILL at %d deliveries", countLines(a.Ledger))
	b, err := r.start("b", nil)
	if err != nil {
		return err
	}
	if err := r.waitDone(ctx); err != nil {
		return err
	}
	return b.Stop(45 * time.Second)
}

// 3. The broker stops and starts again on the same data and port while
// Sluice runs and the producer produces.
func runBrokerRestart(ctx context.Context, s *Suite, r *scenarioRun) error {
	r.maxDup = s.Size.Window
	a, err := r.start("a", nil)
	if err != nil {
		return err
	}
	if err := r.produce(ctx, s.Size.Records); err != nil {
		return err
	}
	if err := r.waitLines(ctx, s.Size.Records/3); err != nil {
		return err
	}
	at := countLines(a.Ledger)
	t0 := time.Now()
	if err := s.Broker.Restart(ctx, s.Size.Outage); err != nil {
		return err
	}
	r.note("broker restarted at %d deliveries, back after %s", at, time.Since(t0).Round(100*time.Millisecond))
	if err := r.waitDone(ctx); err != nil {
		return err
	}
	if a.Exited() {
		return fmt.Errorf("sluice exited during the broker restart (log %s)", a.LogFile)
	}
	return a.Stop(45 * time.Second)
}

// 4. The proxy cuts every connection for a while, then lets them through
// with added latency: progress must resume and nothing be lost.
func runNetwork(ctx context.Context, s *Suite, r *scenarioRun) error {
	r.maxDup = s.Size.Window
	px := s.Broker.Proxy()
	defer px.Heal()
	defer px.SetLatency(0)
	a, err := r.start("a", nil)
	if err != nil {
		return err
	}
	if err := r.produce(ctx, s.Size.Records); err != nil {
		return err
	}
	stopWatch := r.watchCommits(ctx)
	if err := r.waitLines(ctx, s.Size.Records/4); err != nil {
		return err
	}
	px.Cut()
	atCut := countLines(a.Ledger)
	if err := sleep(ctx, s.Size.Cut); err != nil {
		return err
	}
	during := countLines(a.Ledger) - atCut
	px.Heal()
	px.SetLatency(50 * time.Millisecond)
	healed := time.Now()
	atHeal := countLines(a.Ledger)
	if err := r.poll(ctx, "progress after the cut", func() bool { return countLines(a.Ledger) > atHeal }); err != nil {
		return err
	}
	r.note("cut %s at %d deliveries (%d delivered from the window during the cut); progress resumed %s after heal, under 50ms latency",
		s.Size.Cut, atCut, during, time.Since(healed).Round(100*time.Millisecond))
	if err := sleep(ctx, 3*time.Second); err != nil {
		return err
	}
	px.SetLatency(0)
	if err := r.waitDone(ctx); err != nil {
		return err
	}
	regressions, polls := stopWatch()
	r.note("committed offsets polled %d times: %d went backwards", polls, regressions)
	if regressions > 0 {
		return fmt.Errorf("%d committed offsets went backwards", regressions)
	}
	return a.Stop(45 * time.Second)
}

// 7. Three processes share the group; under load members are SIGKILLed,
// SIGTERMed and added. Each SIGKILL may duplicate one window.
func runStorm(ctx context.Context, s *Suite, r *scenarioRun) error {
	n := s.Size.Records * 3 / 2
	var ps []*Process
	for _, name := range []string{"a", "b", "c"} {
		p, err := r.start(name, nil)
		if err != nil {
			return err
		}
		ps = append(ps, p)
	}
	if err := r.produce(ctx, n); err != nil {
		return err
	}
	stopWatch := r.watchCommits(ctx)
	if err := r.waitLines(ctx, n/8); err != nil {
		return err
	}
	kills := 0
	step := time.Duration(float64(n) / float64(s.Size.Rate) * float64(time.Second) / 6)
	events := []struct {
		victim int // index into ps
		kill   bool
		add    string
	}{
		{0, true, "d"},  // SIGKILL a, add d
		{1, false, "e"}, // SIGTERM b, add e
		{3, true, "f"},  // SIGKILL d, add f
		{2, false, ""},  // SIGTERM c: e and f finish
	}
	for _, ev := range events {
		if err := sleep(ctx, step); err != nil {
			return err
		}
		v := ps[ev.victim]
		if ev.kill {
			v.Kill()
			kills++
			r.note("SIGKILL %s", v.Name)
		} else {
			t0 := time.Now()
			if err := v.Stop(45 * time.Second); err != nil {
				return err
			}
			r.note("SIGTERM %s: clean exit in %s", v.Name, time.Since(t0).Round(10*time.Millisecond))
		}
		if ev.add != "" {
			p, err := r.start(ev.add, nil)
			if err != nil {
				return err
			}
			ps = append(ps, p)
		}
	}
	r.maxDup = kills * s.Size.Window
	r.res.Bound = fmt.Sprintf("lost=0 dup<=%dx%d", kills, s.Size.Window)
	if err := r.waitDone(ctx); err != nil {
		return err
	}
	regressions, polls := stopWatch()
	r.note("committed offsets polled %d times: %d went backwards", polls, regressions)
	if regressions > 0 {
		return fmt.Errorf("%d committed offsets went backwards: a member committed for a partition it no longer owned", regressions)
	}
	var live []*Process
	for _, p := range ps {
		if !p.Exited() {
			live = append(live, p)
		}
	}
	return stopAll(live...)
}

// 8. Every OffsetCommit fails (kfake answers each partition with an error)
// for a while: records stay in the window, so fetching stops once the window
// is full: the sink gets at most one window past the committed offsets.
// After healing everything is delivered once.
func runCommitFailures(ctx context.Context, s *Suite, r *scenarioRun) error {
	r.maxDup = 0
	a, err := r.start("a", nil)
	if err != nil {
		return err
	}
	if err := r.produce(ctx, s.Size.Records); err != nil {
		return err
	}
	if err := r.waitLines(ctx, s.Size.Records/4); err != nil {
		return err
	}
	var failing atomic.Bool
	var failed atomic.Int64
	failing.Store(true)
	fc := s.Broker.Fake()
	fc.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		fc.KeepControl()
		if !failing.Load() {
			return nil, nil, false
		}
		cr := req.(*kmsg.OffsetCommitRequest)
		resp := cr.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, t := range cr.Topics {
			rt := kmsg.NewOffsetCommitResponseTopic()
			rt.Topic = t.Topic     // v0-v9 name the topic
			rt.TopicID = t.TopicID // v10+ identify it by ID only
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetCommitResponseTopicPartition()
				rp.Partition = p.Partition
				rp.ErrorCode = kerr.UnknownServerError.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		failed.Add(1)
		return resp, nil, true
	})
	defer failing.Store(false)
	base, err := committed(ctx, s.Broker, r.group, r.topic)
	if err != nil {
		return err
	}
	if err := sleep(ctx, s.Size.Fault); err != nil {
		return err
	}
	// Everything delivered past the committed offsets is still in the window.
	ds, _, err := ReadLedger(a.Ledger)
	if err != nil {
		return err
	}
	past := map[PO]bool{}
	for _, d := range ds {
		if d.Offset >= base[d.Partition] {
			past[PO{d.Partition, d.Offset}] = true
		}
	}
	flow, ferr := a.Flow(ctx)
	acked := r.prod.Acked()
	failing.Store(false)
	held := "?"
	if ferr == nil {
		held = fmt.Sprintf("%d/%d, %d partitions paused", flow.Window.Records, flow.Window.MaxRecords, flow.Paused)
	}
	r.note("%d commits refused over %s; %d delivered past the committed offsets (window %s) while %d were produced",
		failed.Load(), s.Size.Fault, len(past), held, acked)
	if len(past) > s.Size.Window {
		return fmt.Errorf("processing did not stop at the window: %d delivered past the committed offsets, window %d",
			len(past), s.Size.Window)
	}
	r.res.Bound = fmt.Sprintf("lost=0 dup=0 held<=%d", s.Size.Window)
	if err := r.waitDone(ctx); err != nil {
		return err
	}
	return a.Stop(45 * time.Second)
}

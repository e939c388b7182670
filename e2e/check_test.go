package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// checkTestSeed: partition ordering, three records larger than the byte
// budget, poison keys, a crash, a frozen member, a held and a throttling
// sink (with checkTestPlan).
const checkTestSeed = 10

// TestCheckSmoke runs one short schedule of the adversarial checker on
// kfake against the binary built from this tree, and fails on any broken
// invariant, printing the seed and the command that replays it.
func TestCheckSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped in -short")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	bin, err := Build(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewFake(dir + "/kfake-data")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c := NewKafkaChecker(b)
	c.Bin, c.Dir, c.Opts, c.DrainTimeout, c.Logf = bin, dir, checkTestPlan, 30*time.Second, t.Logf
	r := c.RunSeed(ctx, checkTestSeed)
	var buf bytes.Buffer
	WriteCheckResult(&buf, r)
	CheckTable(&buf, []*CheckResult{r})
	t.Log("\n" + buf.String())
	if r.Produced == 0 || r.Faults["silent (SIGSTOP)"] == 0 || r.Faults["crash (SIGKILL)"] == 0 {
		t.Errorf("the schedule did not run as planned: produced %d, faults %v", r.Produced, r.Faults)
	}
	if !r.Pass() {
		t.Errorf("seed %d broke an invariant (logs in %s, removed after the test: replay to keep them): %s",
			checkTestSeed, dir, r.Replay)
	}
}

// TestRecorderFlagsOverlapAndDuplicates: the recorder itself can fail a
// run. Two members deliver the same key of the same partition at once (one
// held by a blocking sink): a concurrent violation; the same overlap with a
// member the schedule made silent is reported apart; a second delivery with
// no fault to allow it is a duplicate violation.
func TestRecorderFlagsOverlapAndDuplicates(t *testing.T) {
	plan := &Plan{Seed: 1, Source: "kafka", Ordering: "key", Blocking: []string{"hot0"}}
	var mu sync.Mutex
	silent := map[string]bool{}
	excused := func(m string, _ time.Time) bool { mu.Lock(); defer mu.Unlock(); return silent[m] }
	rec, err := NewRecorder(plan, time.Now(), excused, func() int { return 0 })
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	post := func(member string, offset int) (int, error) {
		body := `{"source":"kafka","topic":"t","partition":0,"offset":` + itoa(offset) + `,"key":"hot0","value":"v"}`
		req, _ := http.NewRequest(http.MethodPost, rec.URL(), strings.NewReader(body))
		req.Header.Set(MemberHeader, member)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	overlap := func(a, b string, off int) {
		t.Helper()
		rec.SetMode(SinkBlocking)
		done := make(chan error, 2)
		send := func(m string, off, want int) {
			go func() {
				code, err := post(m, off)
				if err == nil && code != 200 {
					err = errorf("%s: status %d", m, code)
				}
				done <- err
			}()
			deadline := time.Now().Add(5 * time.Second)
			for { // wait until the request is held
				rec.mu.Lock()
				n := rec.inFlight
				rec.mu.Unlock()
				if n == want {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("request %d never arrived", want)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		send(a, off, 1)
		send(b, off+1, 2)
		rec.SetMode(SinkFast)
		for range 2 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	}
	overlap("m1", "m2", 0)
	if n := rec.counts["concurrent"]; n != 1 {
		t.Fatalf("concurrent violations %d, want 1", n)
	}
	mu.Lock()
	silent["m3"] = true
	mu.Unlock()
	overlap("m3", "m2", 10)
	if n := rec.counts["concurrent"]; n != 1 || rec.excusedN != 1 {
		t.Fatalf("after an overlap with a silent member: concurrent %d (want 1), excused %d (want 1)", n, rec.excusedN)
	}
	if code, err := post("m2", 0); err != nil || code != 200 {
		t.Fatalf("redelivery: %d %v", code, err)
	}
	if rec.counts["duplicates"] != 1 || rec.dups != 1 {
		t.Fatalf("a duplicate with no fault: %d violations, %d duplicates; want 1 and 1", rec.counts["duplicates"], rec.dups)
	}
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

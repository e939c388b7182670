package e2e

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"

	"github.com/sluicehq/sluice/internal/testutil"
)

// HTTPSink is the webhook the fault suite points SLUICE_SINK=http at. It
// appends every record it accepts (the JSON line the HTTP sink sends) to a
// ledger file, answers 400 to poison records (values ending in PoisonMark),
// and can go down (its port refuses connections) and come back on the same
// port (testutil.SwitchableServer).
type HTTPSink struct {
	*testutil.SwitchableServer
	ledger *os.File // written inside IfUp: not after Down, nor after Close

	accepted, refused atomic.Int64
	mu                sync.Mutex
	refusedBy         map[string]int // poison value -> refusals; guarded by mu
}

// PoisonMark ends the value of a record the HTTP sink refuses for good.
const PoisonMark = "#poison"

// NewHTTPSink listens on a free loopback port and appends to ledger.
func NewHTTPSink(ledger string) (*HTTPSink, error) {
	f, err := os.OpenFile(ledger, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	s := &HTTPSink{ledger: f}
	if s.SwitchableServer, err = testutil.NewSwitchableServer(http.HandlerFunc(s.serve)); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// URL is where Sluice sends records.
func (s *HTTPSink) URL() string { return s.SwitchableServer.URL() + "/records" }

// Close stops the server and closes the ledger.
func (s *HTTPSink) Close() {
	s.Down()
	s.ledger.Close()
}

// MostRefusals is how often the most refused poison record was refused.
func (s *HTTPSink) MostRefusals() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.refusedBy {
		n = max(n, c)
	}
	return n
}

func (s *HTTPSink) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	body = bytes.TrimSpace(body)
	d, err := ParseLine(body)
	if err != nil {
		http.Error(w, "not a record: "+err.Error(), http.StatusBadRequest)
		return
	}
	if bytes.HasSuffix(d.Value, []byte(PoisonMark)) {
		s.refused.Add(1)
		s.mu.Lock()
		if s.refusedBy == nil {
			s.refusedBy = map[string]int{}
		}
		s.refusedBy[string(d.Value)]++
		s.mu.Unlock()
		http.Error(w, "poison record: refused for good", http.StatusBadRequest)
		return
	}
	if !s.IfUp(func() { _, err = s.ledger.Write(append(body, '\n')) }) {
		// Went down while this request was in flight: not stored.
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.accepted.Add(1)
	w.WriteHeader(http.StatusOK)
}

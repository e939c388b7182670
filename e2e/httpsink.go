package e2e

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/internal/testutil"
)

// HTTPSink is the webhook the fault suite points SLUICE_SINK=http at. It
// appends every record it accepts (the JSON line the HTTP sink sends) to a
// ledger file, answers 400 to poison records (values ending in PoisonMark),
// and can go down (its port refuses connections) and come back on the same
// port.
type HTTPSink struct {
	addr   string
	ledger *os.File

	mu  sync.Mutex // guards srv and ledger writes
	srv *http.Server
	wg  sync.WaitGroup

	accepted, refused atomic.Int64
	refusedBy         map[string]int // poison value -> refusals; guarded by mu
}

// PoisonMark ends the value of a record the HTTP sink refuses for good.
const PoisonMark = "#poison"

// NewHTTPSink listens on a free loopback port and appends to ledger.
func NewHTTPSink(ledger string) (*HTTPSink, error) {
	port, err := testutil.FreePort()
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(ledger, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	s := &HTTPSink{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), ledger: f}
	if err := s.Up(); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// URL is where Sluice sends records.
func (s *HTTPSink) URL() string { return "http://" + s.addr + "/records" }

// Up starts serving (again) on the same port.
func (s *HTTPSink) Up() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return nil
	}
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port may linger a moment after Down
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 5 * time.Second}
	s.srv = srv
	s.wg.Go(func() { _ = srv.Serve(ln) })
	return nil
}

// Down closes the listener and every connection: the sink is unreachable.
func (s *HTTPSink) Down() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
		s.wg.Wait()
	}
}

// Close stops the server and closes the ledger.
func (s *HTTPSink) Close() {
	s.Down()
	s.mu.Lock()
	s.ledger.Close()
	s.mu.Unlock()
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
	s.mu.Lock()
	if s.srv == nil { // went down while this request was in flight: not stored
		s.mu.Unlock()
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	_, err = s.ledger.Write(append(body, '\n'))
	s.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.accepted.Add(1)
	w.WriteHeader(http.StatusOK)
}

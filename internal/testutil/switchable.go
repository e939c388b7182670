package testutil

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// SwitchableServer is an HTTP server on a fixed 127.0.0.1 port that can go
// down (the port refuses connections, open connections are closed) and come
// back on the same port: a sink outage as a client sees it. It serves one
// handler; the handler decides what to accept and records it.
//
// A request that was already inside the handler when Down was called may
// still complete; a handler that must not keep such a request (its client
// sees the connection closed and sends it again) records it with IfUp.
//
// Its methods are safe for concurrent use. Down and Close wait for the
// serving goroutine; after Close, Up serves again.
type SwitchableServer struct {
	addr    string
	handler http.Handler

	mu  sync.Mutex // guards srv, and is held by IfUp's record
	srv *http.Server
	wg  sync.WaitGroup
}

// NewSwitchableServer serves h on a free 127.0.0.1 port.
func NewSwitchableServer(h http.Handler) (*SwitchableServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &SwitchableServer{addr: ln.Addr().String(), handler: h}
	s.serve(ln)
	return s, nil
}

// Addr is the server's host:port, the same across Down and Up.
func (s *SwitchableServer) Addr() string { return s.addr }

// URL is "http://" + Addr.
func (s *SwitchableServer) URL() string { return "http://" + s.addr }

// Up serves again on the same port; it does nothing when the server is up.
// The port may linger for a moment after Down: Up tries for 5 s.
func (s *SwitchableServer) Up() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return nil
	}
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond) // the kernel frees the port: there is no event to wait on
	}
	if err != nil {
		return err
	}
	s.serveLocked(ln)
	return nil
}

// Down closes the listener and every connection, and returns once the
// server has stopped serving. It does nothing when the server is down.
func (s *SwitchableServer) Down() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
		s.wg.Wait()
	}
}

// Close is Down: the server holds nothing else.
func (s *SwitchableServer) Close() { s.Down() }

// IfUp calls record, with the server's lock held, only if the server is up,
// and reports whether it did. Down cannot happen while record runs, so a
// handler that records with IfUp keeps nothing from a request that arrived
// before an outage and was still being handled when it began.
func (s *SwitchableServer) IfUp(record func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return false
	}
	record()
	return true
}

func (s *SwitchableServer) serve(ln net.Listener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.serveLocked(ln)
}

func (s *SwitchableServer) serveLocked(ln net.Listener) {
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 5 * time.Second}
	s.srv = srv
	s.wg.Go(func() { _ = srv.Serve(ln) })
}

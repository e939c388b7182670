// Package testutil holds the helpers that tests and the benchmarks'
// harnesses share, so that each exists once: a buffer safe for a writer
// goroutine and a reader, free TCP ports on 127.0.0.1, and an HTTP server
// that can go down and come back on the same port (a sink outage).
//
//	var out testutil.SyncBuffer
//	go run(ctx, &out)
//	addr := testutil.FreeAddr(t) // 127.0.0.1:<port>
//	srv, err := testutil.NewSwitchableServer(handler)
//	srv.Down() // the port refuses connections
//	err = srv.Up()
package testutil

import (
	"bytes"
	"errors"
	"net"
	"strconv"
	"sync"
	"testing"
)

// SyncBuffer is a bytes.Buffer that one goroutine may write (a logger, a
// sink) while another reads it. The zero value is ready to use.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Bytes returns a copy of what was written so far.
func (s *SyncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// FreePort returns a TCP port on 127.0.0.1 that nothing listened on a
// moment ago (another process may take it before the caller does). It never
// returns a port it returned before in this process: the kernel hands a
// port that was just let go out again, and two children started with ports
// from two calls made before either listened could otherwise be given the
// same one (seen: two services' HTTP and admin listeners).
func FreePort() (int, error) {
	handedMu.Lock()
	defer handedMu.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !handed[port] {
			handed[port] = true
			return port, nil
		}
	}
	return 0, errors.New("testutil: no port this process was not given before, in 100 tries")
}

var (
	handedMu sync.Mutex
	handed   = map[int]bool{}
)

// FreeAddr is FreePort as 127.0.0.1:<port>, failing t when there is none.
func FreeAddr(t testing.TB) string {
	t.Helper()
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

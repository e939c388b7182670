package testutil

import (
	"errors"
	"net/http"
	"sync/atomic"
	"syscall"
	"testing"
)

// The server refuses connections while down, comes back on the same
// address, and a request in the handler when Down was called is not
// recorded by IfUp.
func TestSwitchableServerGoesDownAndComesBack(t *testing.T) {
	var recorded atomic.Int64
	var self atomic.Pointer[SwitchableServer] // the handler's way to its server (set once it exists)
	entered, release, handled := make(chan struct{}), make(chan struct{}), make(chan bool, 1)
	srv, err := NewSwitchableServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/held" {
			close(entered)
			<-release
		}
		ok := self.Load().IfUp(func() { recorded.Add(1) })
		if r.URL.Path == "/held" {
			handled <- ok
		}
		if !ok {
			http.Error(w, "down", http.StatusServiceUnavailable)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	self.Store(srv)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(path string) (int, error) {
		resp, err := client.Get(srv.URL() + path)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}

	if code, err := get("/"); err != nil || code != http.StatusOK || recorded.Load() != 1 {
		t.Fatalf("up: status %d, err %v, recorded %d; want 200, nil, 1", code, err, recorded.Load())
	}

	// A request inside the handler when the server goes down.
	go func() { _, _ = get("/held") }()
	<-entered
	addr := srv.Addr()
	srv.Down()
	if srv.IfUp(func() { t.Error("IfUp ran its function while the server is down") }) {
		t.Error("IfUp reported the server up after Down")
	}
	close(release)
	if <-handled {
		t.Error("the request in flight at Down was recorded")
	}
	if _, err := get("/"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("down: err %v, want connection refused", err)
	}

	if err := srv.Up(); err != nil {
		t.Fatal(err)
	}
	if srv.Addr() != addr {
		t.Errorf("back on %s, want %s", srv.Addr(), addr)
	}
	if code, err := get("/"); err != nil || code != http.StatusOK || recorded.Load() != 2 {
		t.Fatalf("back up: status %d, err %v, recorded %d; want 200, nil, 2", code, err, recorded.Load())
	}
	if err := srv.Up(); err != nil { // already up: nothing to do
		t.Error(err)
	}
}

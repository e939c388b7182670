package e2e

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy is a TCP proxy on 127.0.0.1 that the fault suite puts between Sluice
// and the broker. It forwards bytes both ways and, on command, cuts every
// connection (and refuses new ones until Heal) or delays every chunk it
// forwards. It speaks no Kafka: the broker is told to advertise the proxy's
// address (see Broker), so every connection Sluice opens goes through it.
//
// All methods are safe for concurrent use. Close stops it and waits for its
// goroutines.
type Proxy struct {
	ln       net.Listener
	upstream string

	cut     atomic.Bool
	latency atomic.Int64 // nanoseconds added to every chunk, each way
	// hole, when set, names the client connections that are black-holed:
	// their bytes stop being forwarded, both ways, but nothing is closed.
	hole atomic.Pointer[func(client net.Addr) bool]

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
	done  chan struct{}

	accepted, refused atomic.Int64
}

// NewProxy listens on addr ("127.0.0.1:0" for any port) and forwards to
// upstream. It starts forwarding at once; Close stops it.
func NewProxy(addr, upstream string) (*Proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, upstream: upstream, conns: map[net.Conn]struct{}{}, done: make(chan struct{})}
	p.wg.Go(p.acceptLoop)
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every open connection and refuses new ones until Heal.
func (p *Proxy) Cut() {
	p.cut.Store(true)
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}

// Heal lets connections through again.
func (p *Proxy) Heal() { p.cut.Store(false) }

// Blackhole stops forwarding the bytes of every connection whose client
// address (the peer that dialled the proxy) match reports, both ways, until
// Unblackhole: the connections stay open and nothing is reset, as when a
// network drops packets, so the peer notices only by its own timeouts. The
// bytes wait (in the proxy and the kernel's buffers) and flow again, intact,
// after Unblackhole. match is asked again for every chunk, so connections
// opened while the hole is on are caught too.
func (p *Proxy) Blackhole(match func(client net.Addr) bool) { p.hole.Store(&match) }

// Unblackhole forwards every connection's bytes again.
func (p *Proxy) Unblackhole() { p.hole.Store(nil) }

// holed reports whether client's bytes are held now.
func (p *Proxy) holed(client net.Addr) bool {
	m := p.hole.Load()
	return m != nil && (*m)(client)
}

// SetLatency delays every forwarded chunk by d, each way (0: none).
func (p *Proxy) SetLatency(d time.Duration) { p.latency.Store(int64(d)) }

// Close stops listening, closes every connection and waits.
func (p *Proxy) Close() {
	select {
	case <-p.done:
		return
	default:
	}
	close(p.done)
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) acceptLoop() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-p.done:
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		if p.cut.Load() {
			p.refused.Add(1)
			c.Close()
			continue
		}
		p.accepted.Add(1)
		p.wg.Go(func() { p.serve(c) })
	}
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
		c.Close()
		return false
	default:
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) serve(down net.Conn) {
	if !p.track(down) {
		return
	}
	defer p.untrack(down)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	var d net.Dialer
	up, err := d.DialContext(ctx, "tcp", p.upstream)
	cancel()
	if err != nil {
		return
	}
	if !p.track(up) {
		return
	}
	defer p.untrack(up)
	if p.cut.Load() { // cut while dialling
		return
	}
	client := down.RemoteAddr()
	var wg sync.WaitGroup
	wg.Go(func() { p.pipe(up, down, client) })
	p.pipe(down, up, client)
	wg.Wait()
}

// pipe copies src to dst until either side fails, then closes both so the
// other direction ends too. While client is black-holed it holds what it
// read and reads no more.
func (p *Proxy) pipe(dst, src net.Conn, client net.Addr) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if d := time.Duration(p.latency.Load()); d > 0 {
				select {
				case <-time.After(d):
				case <-p.done:
					return
				}
			}
			for p.holed(client) {
				if p.cut.Load() {
					return
				}
				select {
				case <-time.After(20 * time.Millisecond):
				case <-p.done:
					return
				}
			}
			if p.cut.Load() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return
			}
			return
		}
	}
}

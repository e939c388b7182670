package sinks_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/consumer"
	"github.com/sluicehq/sluice/sinks"
	"github.com/sluicehq/sluice/sinks/sinktest"
)

// natsServer is an in-process nats-server with JetStream, storing in dir.
// Stop and Start keep its port and its streams.
type natsServer struct {
	t    testing.TB
	dir  string
	port int
	srv  *server.Server
}

func startNATS(t testing.TB) *natsServer {
	t.Helper()
	n := &natsServer{t: t, dir: t.TempDir(), port: -1}
	n.Start()
	t.Cleanup(n.Stop)
	return n
}

func (n *natsServer) Start() {
	n.t.Helper()
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: n.port, JetStream: true, StoreDir: n.dir,
		NoLog: true, NoSigs: true,
	})
	if err != nil {
		n.t.Fatalf("nats-server: %v", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		n.t.Fatal("nats-server not ready")
	}
	n.srv = srv
	n.port = srv.Addr().(*net.TCPAddr).Port
}

func (n *natsServer) Stop() {
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
		n.srv = nil
	}
}

func (n *natsServer) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// stream creates a stream over subject and returns it.
func (n *natsServer) stream(t testing.TB, name, subject string) jetstream.Stream {
	t.Helper()
	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subject},
		Duplicates: 2 * time.Minute, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
	return st
}

func natsRecord(t *testing.T, h nats.Header, data []byte) sinktest.Record {
	r := sinktest.Record{Value: data, Headers: map[string]string{}}
	for k := range h {
		r.Headers[k] = h.Get(k)
	}
	if k := h.Get(sinks.HeaderNATSKey); k != "" {
		r.Key = []byte(k)
	} else if k := h.Get(sinks.HeaderNATSKey + "-B64"); k != "" {
		b, err := base64.StdEncoding.DecodeString(k)
		if err != nil {
			t.Fatal(err)
		}
		r.Key = b
	}
	return r
}

// readStream reads every message of st, in stream order.
func readStream(t *testing.T, st jetstream.Stream, n int) []sinktest.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []sinktest.Record
	for len(out) < n && ctx.Err() == nil {
		batch, err := cons.Fetch(n-len(out), jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			out = append(out, natsRecord(t, m.Headers(), m.Data()))
			got++
		}
		if got == 0 {
			break
		}
	}
	return out
}

func TestNATSJetStreamSuite(t *testing.T) {
	srv := startNATS(t)
	var seq int
	sinktest.Run(t, sinktest.Harness{
		New: func(t *testing.T) (consumer.Sink, sinktest.ReadFunc) {
			seq++
			subject := fmt.Sprintf("out.%d", seq)
			st := srv.stream(t, fmt.Sprintf("OUT%d", seq), subject)
			s, err := sinks.NewNATS(sinks.NATSConfig{URL: srv.URL(), Subject: subject, Timeout: 2 * time.Second,
				Opts: []nats.Option{nats.ReconnectWait(50 * time.Millisecond)}})
			if err != nil {
				t.Fatal(err)
			}
			return s, func(t *testing.T, n int) []sinktest.Record { return readStream(t, st, n) }
		},
		Ordered: true, Headers: true, Idempotent: true,
		Break: func(t *testing.T) func() {
			srv.Stop()
			return srv.Start
		},
	})
}

func TestNATSCoreSuite(t *testing.T) {
	srv := startNATS(t)
	var seq int
	sinktest.Run(t, sinktest.Harness{
		New: func(t *testing.T) (consumer.Sink, sinktest.ReadFunc) {
			seq++
			subject := fmt.Sprintf("core.%d", seq)
			nc, err := nats.Connect(srv.URL())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
			var mu sync.Mutex
			var got []sinktest.Record
			sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
				mu.Lock()
				got = append(got, natsRecord(t, m.Header, m.Data))
				mu.Unlock()
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			s, err := sinks.NewNATS(sinks.NATSConfig{URL: srv.URL(), Subject: subject, Core: true})
			if err != nil {
				t.Fatal(err)
			}
			return s, func(t *testing.T, n int) []sinktest.Record {
				// The sink's flush means the server has every message; one
				// more round trip on our connection means we have them too.
				if err := nc.Flush(); err != nil {
					t.Fatal(err)
				}
				deadline := time.Now().Add(5 * time.Second)
				for {
					mu.Lock()
					have := len(got)
					mu.Unlock()
					if have >= n || time.Now().After(deadline) {
						break
					}
					time.Sleep(10 * time.Millisecond) // the subscription's callback runs on its own goroutine
				}
				_ = sub.Unsubscribe()
				mu.Lock()
				defer mu.Unlock()
				return append([]sinktest.Record(nil), got...)
			}
		},
		Ordered: true, Headers: true,
	})
}

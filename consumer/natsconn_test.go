package consumer_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/consumer"
)

// natsServer is an in-process nats-server with JetStream, its file store in
// a temp dir, on 127.0.0.1. restart stops it and starts it again on the same
// port and store, as a crash-free server restart.
type natsServer struct {
	t    *testing.T
	opts server.Options
	srv  *server.Server
	URL  string
}

func startNATS(t *testing.T, configure ...func(*server.Options)) *natsServer {
	t.Helper()
	ns := &natsServer{t: t, opts: server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoLog: true, NoSigs: true,
	}}
	for _, f := range configure {
		f(&ns.opts)
	}
	ns.start()
	ns.opts.Port = ns.srv.Addr().(*net.TCPAddr).Port
	ns.URL = ns.srv.ClientURL()
	t.Cleanup(ns.stop)
	return ns
}

func (ns *natsServer) start() {
	ns.t.Helper()
	opts := ns.opts
	srv, err := server.NewServer(&opts)
	if err != nil {
		ns.t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		ns.t.Fatal("nats-server did not start")
	}
	ns.srv = srv
}

func (ns *natsServer) stop() {
	if ns.srv != nil {
		ns.srv.Shutdown()
		ns.srv.WaitForShutdown()
		ns.srv = nil
	}
}

func (ns *natsServer) restart() {
	ns.t.Helper()
	ns.stop()
	ns.start()
}

// client connects a plain nats.go client, for setting up and checking.
func (ns *natsServer) client(opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	ns.t.Helper()
	nc, err := nats.Connect(ns.URL, opts...)
	if err != nil {
		ns.t.Fatal(err)
	}
	ns.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		ns.t.Fatal(err)
	}
	return nc, js
}

func natsLog() *slog.Logger {
	if os.Getenv("NATS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// runNATS runs c and returns a function that stops it and returns Run's
// error. A Run that ends by itself fails the test unless stop was called.
func runNATS(t *testing.T, c *consumer.Consumer) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-errc:
			case <-time.After(time.Minute):
				t.Fatal("Run did not return within a minute of its context ending")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// metric sums the samples of a counter or gauge family, or returns a
// histogram's sample count, from reg.
func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var v float64
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				v += m.Counter.GetValue()
			case m.Gauge != nil:
				v += m.Gauge.GetValue()
			case m.Histogram != nil:
				v += float64(m.Histogram.GetSampleCount())
			}
		}
		return v
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// histogram returns a histogram's sample count and sum.
func histogram(t *testing.T, reg *prometheus.Registry, name string) (uint64, float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			h := mf.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	t.Fatalf("histogram %s not registered", name)
	return 0, 0
}

func TestNATSBadCredentialsFailAtStart(t *testing.T) {
	ns := startNATS(t, func(o *server.Options) { o.Username, o.Password = "sluice", "right" })
	for _, tc := range []struct {
		name   string
		source string
		auth   func(*consumer.NATSConfig)
	}{
		{"jetstream wrong password", consumer.SourceJetStream, func(n *consumer.NATSConfig) { n.User, n.Password = "sluice", "wrong" }},
		{"nats wrong password", consumer.SourceNATS, func(n *consumer.NATSConfig) { n.User, n.Password = "sluice", "wrong" }},
		{"jetstream no credentials", consumer.SourceJetStream, func(*consumer.NATSConfig) {}},
		{"nats token instead", consumer.SourceNATS, func(n *consumer.NATSConfig) { n.Token = "nope" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := consumer.Config{Source: tc.source, NATS: consumer.NATSConfig{
				URL: ns.URL, Stream: "S", Subjects: []string{"s.>"}, ConnectTimeout: 2 * time.Second,
			}}
			tc.auth(&cfg.NATS)
			c, err := consumer.New(cfg, consumer.SinkFunc(func(context.Context, *consumer.Message) error { return nil }),
				consumer.WithLogger(natsLog()))
			if err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() { errc <- c.Run(context.Background()) }()
			select {
			case err = <-errc:
			case <-time.After(30 * time.Second):
				t.Fatal("Run did not fail on bad credentials")
			}
			if !errors.Is(err, consumer.ErrNATSAuth) {
				t.Fatalf("Run = %v, want an error wrapping ErrNATSAuth", err)
			}
			if !strings.Contains(err.Error(), "credentials") || !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
				t.Errorf("error does not say what to fix: %v", err)
			}
		})
	}
}

func TestNATSConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   consumer.Config
		field string
	}{
		{"jetstream needs a stream", consumer.Config{Source: consumer.SourceJetStream}, "NATS.Stream"},
		{"core needs subjects", consumer.Config{Source: consumer.SourceNATS}, "NATS.Subjects"},
		{"one kind of credentials", consumer.Config{Source: consumer.SourceJetStream, NATS: consumer.NATSConfig{
			Stream: "S", Token: "t", CredsFile: "/x.creds"}}, "NATS.CredsFile"},
		{"password without user", consumer.Config{Source: consumer.SourceJetStream, NATS: consumer.NATSConfig{
			Stream: "S", Password: "p"}}, "NATS.User"},
		{"deliver policy", consumer.Config{Source: consumer.SourceJetStream, NATS: consumer.NATSConfig{
			Stream: "S", Deliver: "last"}}, "NATS.Deliver"},
		{"durable name", consumer.Config{Source: consumer.SourceJetStream, NATS: consumer.NATSConfig{
			Stream: "S", Consumer: "a.b"}}, "NATS.Consumer"},
		{"ack wait", consumer.Config{Source: consumer.SourceJetStream, NATS: consumer.NATSConfig{
			Stream: "S", AckWait: time.Millisecond}}, "NATS.AckWait"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			var fe *consumer.FieldError
			found := false
			for _, e := range unjoinErr(err) {
				if errors.As(e, &fe) && fe.Field == tc.field {
					found = true
				}
			}
			if !found {
				t.Fatalf("Validate() = %v, want a FieldError for %s", err, tc.field)
			}
		})
	}
	ok := consumer.Config{Source: consumer.SourceJetStream, NATS: consumer.NATSConfig{Stream: "S"}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if ok.NATS.MaxAckPending != ok.MaxRecords || ok.NATS.AckWait != 30*time.Second || ok.NATS.Consumer != "sluice" {
		t.Errorf("defaults: max ack pending %d (window %d), ack wait %s, consumer %q",
			ok.NATS.MaxAckPending, ok.MaxRecords, ok.NATS.AckWait, ok.NATS.Consumer)
	}
}

func unjoinErr(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// writeTLS writes a CA and a server certificate for 127.0.0.1 signed by
// it, and returns the server's TLS config and the CA file.
func writeTLS(t *testing.T) (*tls.Config, string) {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sluice test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := dir + "/ca.pem"
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{{
		Certificate: [][]byte{srvDER}, PrivateKey: srvKey,
	}}}, caFile
}

// Each way to authenticate and TLS: a source connects, consumes and stops.
func TestNATSConnectsWithEachCredential(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := t.TempDir() + "/user.nk"
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	tlsCfg, caFile := writeTLS(t)
	for _, tc := range []struct {
		name   string
		server func(*server.Options)
		client func(*consumer.NATSConfig)
	}{
		{"user and password", func(o *server.Options) { o.Username, o.Password = "u", "p" },
			func(n *consumer.NATSConfig) { n.User, n.Password = "u", "p" }},
		{"token", func(o *server.Options) { o.Authorization = "tok" },
			func(n *consumer.NATSConfig) { n.Token = "tok" }},
		{"nkey seed file", func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} },
			func(n *consumer.NATSConfig) { n.NKeySeedFile = seedFile }},
		{"tls", func(o *server.Options) { o.TLS, o.TLSConfig = true, tlsCfg },
			func(n *consumer.NATSConfig) { n.TLSCAFile = caFile }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := startNATS(t, tc.server)
			sink := newSeqLedger()
			cfg := coreConfig(ns.URL, "auth.>")
			tc.client(&cfg.NATS)
			c, err := consumer.New(cfg, sink, consumer.WithLogger(natsLog()))
			if err != nil {
				t.Fatal(err)
			}
			stop := runNATS(t, c)
			waitReady(t, c)
			opts := []nats.Option{}
			switch tc.name {
			case "user and password":
				opts = append(opts, nats.UserInfo("u", "p"))
			case "token":
				opts = append(opts, nats.Token("tok"))
			case "nkey seed file":
				o, err := nats.NkeyOptionFromSeed(seedFile)
				if err != nil {
					t.Fatal(err)
				}
				opts = append(opts, o)
			case "tls":
				opts = append(opts, nats.RootCAs(caFile))
			}
			nc, _ := ns.client(opts...)
			if err := nc.Publish("auth.x", []byte("hello")); err != nil {
				t.Fatal(err)
			}
			sink.waitDistinct(t, 1, 10*time.Second)
			if err := stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("tls without the CA", func(t *testing.T) {
		ns := startNATS(t, func(o *server.Options) { o.TLS, o.TLSConfig = true, tlsCfg })
		cfg := coreConfig(ns.URL, "auth.>")
		c, err := consumer.New(cfg, newSeqLedger(), consumer.WithLogger(natsLog()))
		if err != nil {
			t.Fatal(err)
		}
		err = c.Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("Run = %v, want a certificate error", err)
		}
	})
}

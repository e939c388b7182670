package consumer

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// NATSConfig configures the NATS sources: the connection (both), the
// JetStream pull consumer (SourceJetStream) and the queue subscription
// (SourceNATS). The zero value of each field means its documented default.
//
// Credentials and certificates are given as file paths and read by nats.go
// when it connects, and again at every reconnect, so a rotated creds file or
// certificate is picked up without a restart. At most one of User/Password,
// Token, CredsFile and NKeySeedFile may be set.
type NATSConfig struct {
	// URL lists the servers, comma separated (default
	// "nats://127.0.0.1:4222"). Use tls:// to require TLS.
	URL string
	// Name is the connection name the server shows (default "sluice").
	Name string

	User     string
	Password string
	Token    string
	// CredsFile is a .creds file (user JWT and NKey seed).
	CredsFile string
	// NKeySeedFile holds an NKey user seed.
	NKeySeedFile string
	// TLSCAFile is a PEM file of the CA to trust; TLSCertFile and
	// TLSKeyFile a client certificate, for mutual TLS. Any of them turns
	// TLS on.
	TLSCAFile   string
	TLSCertFile string
	TLSKeyFile  string

	// ConnectTimeout bounds one connection attempt (default 5 s). The first
	// connection must succeed: Run fails at once otherwise, naming the
	// cause (ErrNATSAuth for rejected credentials).
	ConnectTimeout time.Duration
	// ReconnectWait is the first delay between reconnect attempts; it
	// doubles, with jitter, up to ReconnectMaxWait (default 100 ms to 5 s).
	// Reconnecting never gives up, except when the server rejects the
	// credentials twice in a row: then the connection closes and Run
	// returns an error.
	ReconnectWait    time.Duration
	ReconnectMaxWait time.Duration
	// DrainTimeout bounds the connection's drain at shutdown (default
	// 10 s): the subscriptions stop, and the acks still buffered are sent.
	DrainTimeout time.Duration

	// Stream is the JetStream stream to consume (required for jetstream).
	Stream string
	// Consumer is the durable pull consumer's name (default "sluice").
	// Replicas with the same name share the stream's messages.
	Consumer string
	// Bind uses the consumer as it exists (it must) instead of creating it
	// or updating it to this configuration. Its ack policy must be
	// explicit, and its AckWait and MaxAckPending are used.
	Bind bool
	// Subjects are, for jetstream, the consumer's filter subjects (default:
	// the whole stream) and, for nats, the subjects to subscribe to
	// (required; wildcards allowed).
	Subjects []string
	// Deliver is where a newly created consumer starts: "all" (default) or
	// "new".
	Deliver string
	// AckWait is how long the server waits for an ack before redelivering
	// (default 30 s). Sluice keeps every message it holds alive with
	// InProgress once it is half that old, so a slow sink or a full window
	// does not cause redeliveries.
	AckWait time.Duration
	// MaxAckPending is the most messages the server hands out unacked, to
	// all replicas together (default: MaxRecords, one window). Pulls never
	// ask for more than it leaves room for. With several replicas, raise it
	// to replicas × MaxRecords.
	MaxAckPending int
	// PullMaxRecords caps one pull request (default 50000, at most
	// MaxRecords). Pulls are sized from the window's free room in records
	// and bytes; this only bounds one request's buffers.
	PullMaxRecords int
	// PullMaxWait is how long a pull waits at the server for messages
	// before it ends and another is sent (default 5 s). It matters only
	// when the stream is idle.
	PullMaxWait time.Duration
	// DoubleAck waits for the server to confirm each ack (default false).
	// Slower; it turns a lost ack into a logged error instead of a silent
	// redelivery after AckWait.
	DoubleAck bool
	// KeyHeader names the header that holds a message's ordering key
	// (default: the subject is the key). Messages without the header carry
	// no order.
	KeyHeader string
	// InfoInterval is how often the consumer's state (pending, ack pending,
	// the lag) is read from the server (default 5 s).
	InfoInterval time.Duration

	// Queue is the core NATS queue group (default "sluice"): replicas in
	// one group share the messages.
	Queue string
	// PendingMsgs and PendingBytes bound what the client buffers for core
	// NATS beyond the window (default 65536 messages, 64 MiB). Core NATS
	// cannot pause: past these limits the client drops messages, counted
	// in sluice_nats_dropped_messages_total.
	PendingMsgs  int
	PendingBytes int64

	// Opts are extra nats.go options, applied last.
	Opts []nats.Option
}

func (n *NATSConfig) setDefaults(c *Config) {
	str := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	dur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	str(&n.URL, nats.DefaultURL)
	str(&n.Name, "sluice")
	str(&n.Consumer, "sluice")
	str(&n.Deliver, "all")
	str(&n.Queue, "sluice")
	dur(&n.ConnectTimeout, 5*time.Second)
	dur(&n.ReconnectWait, 100*time.Millisecond)
	dur(&n.ReconnectMaxWait, 5*time.Second)
	dur(&n.DrainTimeout, 10*time.Second)
	dur(&n.AckWait, 30*time.Second)
	dur(&n.PullMaxWait, 5*time.Second)
	dur(&n.InfoInterval, 5*time.Second)
	if n.MaxAckPending == 0 {
		n.MaxAckPending = c.MaxRecords
	}
	if n.PullMaxRecords == 0 {
		n.PullMaxRecords = min(50_000, max(c.MaxRecords, 1))
	}
	if n.PendingMsgs == 0 {
		n.PendingMsgs = 65536
	}
	if n.PendingBytes == 0 {
		n.PendingBytes = 64 << 20
	}
}

func (n *NATSConfig) validate(source string) []error {
	var errs []error
	bad := func(field string, v any, want string) {
		errs = append(errs, &FieldError{Field: "NATS." + field, Value: v, Want: want})
	}
	if strings.TrimSpace(n.URL) == "" {
		bad("URL", n.URL, "want nats://host:port, comma separated for several servers")
	}
	auth := 0
	for _, set := range []bool{n.User != "" || n.Password != "", n.Token != "", n.CredsFile != "", n.NKeySeedFile != ""} {
		if set {
			auth++
		}
	}
	if auth > 1 {
		bad("CredsFile", n.CredsFile, "set at most one of user/password, token, creds file and NKey seed file")
	}
	if n.Password != "" && n.User == "" {
		bad("User", n.User, "required with a password")
	}
	if (n.TLSCertFile == "") != (n.TLSKeyFile == "") {
		bad("TLSKeyFile", n.TLSKeyFile, "set both the client certificate and its key, or neither")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
		min  time.Duration
	}{
		{"ConnectTimeout", n.ConnectTimeout, time.Millisecond},
		{"ReconnectWait", n.ReconnectWait, time.Millisecond},
		{"ReconnectMaxWait", n.ReconnectMaxWait, n.ReconnectWait},
		{"DrainTimeout", n.DrainTimeout, time.Millisecond},
		{"AckWait", n.AckWait, 100 * time.Millisecond},
		{"PullMaxWait", n.PullMaxWait, 100 * time.Millisecond},
		{"InfoInterval", n.InfoInterval, 100 * time.Millisecond},
	} {
		if d.v < d.min {
			bad(d.name, d.v, fmt.Sprintf("want at least %s", d.min))
		}
	}
	switch source {
	case SourceJetStream:
		if n.Stream == "" {
			bad("Stream", n.Stream, "required: the JetStream stream to consume")
		}
		if n.Consumer == "" || strings.ContainsAny(n.Consumer, ".*> \t") {
			bad("Consumer", n.Consumer, "want a durable name without dots, wildcards or spaces")
		}
		if n.Deliver != "all" && n.Deliver != "new" {
			bad("Deliver", n.Deliver, "want all or new")
		}
		if n.MaxAckPending < 1 {
			bad("MaxAckPending", n.MaxAckPending, "want at least 1")
		}
		if n.PullMaxRecords < 1 {
			bad("PullMaxRecords", n.PullMaxRecords, "want at least 1")
		}
	case SourceNATS:
		if len(n.Subjects) == 0 {
			bad("Subjects", n.Subjects, "required: the subjects to subscribe to")
		}
		if n.Queue == "" {
			bad("Queue", n.Queue, "want a queue group name")
		}
		if n.PendingMsgs < 1 {
			bad("PendingMsgs", n.PendingMsgs, "want at least 1")
		}
		if n.PendingBytes < 1024 {
			bad("PendingBytes", n.PendingBytes, "want at least 1KiB")
		}
	}
	for _, s := range n.Subjects {
		if s == "" || strings.ContainsAny(s, " \t") {
			bad("Subjects", n.Subjects, "want subjects without spaces, comma separated")
			break
		}
	}
	return errs
}

// ErrNATSAuth is what Run returns, wrapped, when the NATS server rejects the
// credentials at start-up: fix the user and password, token, NKey seed or
// creds file.
var ErrNATSAuth = errors.New("nats: the server rejected the credentials (check the user and password, token, NKey seed or creds file)")

// natsConn is the connection both NATS sources use, with its state exported
// as metrics and its transitions logged. newNATSConn builds it; dial
// connects (once, from the source's start).
type natsConn struct {
	cfg    *NATSConfig
	nc     *nats.Conn                // set by dial, before any other goroutine uses it
	conn   atomic.Pointer[nats.Conn] // nc, for metrics read concurrently
	log    *slog.Logger
	closed chan struct{} // closed by nats.go's ClosedHandler
	once   sync.Once

	disconnects atomic.Uint64
	reconnects  atomic.Uint64
	slowEvents  atomic.Uint64 // slow-consumer episodes (core NATS)
	lastErr     atomic.Pointer[error]
}

func newNATSConn(cfg *NATSConfig, log *slog.Logger) *natsConn {
	return &natsConn{cfg: cfg, log: log, closed: make(chan struct{})}
}

// dial connects, or returns why it could not: a rejected login wraps
// ErrNATSAuth. It does not retry the first connection: a wrong URL or
// credentials should fail the start, visibly.
func (c *natsConn) dial() error {
	cfg, log := c.cfg, c.log
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.Timeout(cfg.ConnectTimeout),
		nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(func(attempts int) time.Duration {
			d := cfg.ReconnectWait
			for i := 1; i < attempts && d < cfg.ReconnectMaxWait; i++ {
				d *= 2
			}
			d = min(d, cfg.ReconnectMaxWait)
			return d/2 + rand.N(d/2+1)
		}),
		nats.PingInterval(10 * time.Second),
		nats.MaxPingsOutstanding(3),
		nats.DrainTimeout(cfg.DrainTimeout),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if nc.IsClosed() {
				return // our own close or drain, or reconnecting gave up (ClosedHandler)
			}
			c.disconnects.Add(1)
			log.Warn("nats disconnected; reconnecting", "reason", "disconnected", "error", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			c.reconnects.Add(1)
			log.Info("nats reconnected", "reason", "reconnected", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			c.once.Do(func() { close(c.closed) })
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrSlowConsumer) {
				c.slowEvents.Add(1)
				subj := ""
				if sub != nil {
					subj = sub.Subject
				}
				log.Warn("nats slow consumer: the client's pending limits are full, messages are being dropped",
					"reason", "slow_consumer", "subject", subj)
				return
			}
			c.lastErr.Store(&err)
			log.Warn("nats error", "reason", "async_error", "error", err)
		}),
	}
	switch {
	case cfg.User != "":
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	case cfg.Token != "":
		opts = append(opts, nats.Token(cfg.Token))
	case cfg.CredsFile != "":
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	case cfg.NKeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(cfg.NKeySeedFile)
		if err != nil {
			return fmt.Errorf("nats: NKey seed file %s: %w", cfg.NKeySeedFile, err)
		}
		opts = append(opts, o)
	}
	if cfg.TLSCAFile != "" {
		opts = append(opts, nats.RootCAs(cfg.TLSCAFile))
	}
	if cfg.TLSCertFile != "" {
		opts = append(opts, nats.ClientCert(cfg.TLSCertFile, cfg.TLSKeyFile))
	}
	opts = append(opts, cfg.Opts...)
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		if isAuthError(err) {
			return fmt.Errorf("%w: connect to %s: %w", ErrNATSAuth, RedactURL(cfg.URL), err)
		}
		return fmt.Errorf("nats: connect to %s: %w", RedactURL(cfg.URL), err)
	}
	c.nc = nc
	c.conn.Store(nc)
	log.Info("nats connected", "reason", "connected", "server", nc.ConnectedUrlRedacted(),
		"server_version", nc.ConnectedServerVersion())
	return nil
}

func isAuthError(err error) bool {
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) ||
		errors.Is(err, nats.ErrAuthRevoked) || errors.Is(err, nats.ErrAccountAuthExpired) ||
		strings.Contains(strings.ToLower(err.Error()), "authorization violation")
}

// closedErr says why the connection closed for good, for run to return:
// nats.go gives up reconnecting only when the credentials are rejected
// twice in a row.
func (c *natsConn) closedErr() error {
	if p := c.lastErr.Load(); p != nil {
		if isAuthError(*p) {
			return fmt.Errorf("nats: connection closed: %w: %w", ErrNATSAuth, *p)
		}
		return fmt.Errorf("nats: connection closed: %w", *p)
	}
	if err := c.nc.LastError(); err != nil {
		if isAuthError(err) {
			return fmt.Errorf("nats: connection closed: %w: %w", ErrNATSAuth, err)
		}
		return fmt.Errorf("nats: connection closed: %w", err)
	}
	return errors.New("nats: connection closed")
}

// drain stops the subscriptions, sends what is buffered (acks) and closes
// the connection, waiting at most timeout (then it closes it).
func (c *natsConn) drain(timeout time.Duration) {
	if err := c.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		c.log.Warn("nats drain failed; closing", "reason", "drain_error", "error", err)
		c.nc.Close()
	}
	t := time.NewTimer(timeout + time.Second)
	defer t.Stop()
	select {
	case <-c.closed:
	case <-t.C:
		c.log.Warn("nats drain timed out; closing", "reason", "drain_timeout")
		c.nc.Close()
		<-c.closed
	}
}

// register exports the connection's state.
func (c *natsConn) register(reg prometheus.Registerer) {
	f := promauto.With(reg)
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sluice_nats_connected",
		Help: "1 while the NATS connection is up, 0 while it is reconnecting or closed.",
	}, func() float64 {
		if nc := c.conn.Load(); nc != nil && nc.IsConnected() {
			return 1
		}
		return 0
	})
	f.NewCounterFunc(prometheus.CounterOpts{
		Name: "sluice_nats_disconnects_total",
		Help: "Times the NATS connection was lost.",
	}, func() float64 { return float64(c.disconnects.Load()) })
	f.NewCounterFunc(prometheus.CounterOpts{
		Name: "sluice_nats_reconnects_total",
		Help: "Times the NATS connection was re-established.",
	}, func() float64 { return float64(c.reconnects.Load()) })
}

package main

import (
	"fmt"
	"maps"
	"os"
	"strings"
	"time"

	"github.com/sluicehq/sluice/consumer"
)

// NATSEnv is the NATS sources' settings (SLUICE_SOURCE=jetstream or nats):
// the connection, the JetStream pull consumer and the core NATS queue
// subscription. It is embedded in envConfig.
type NATSEnv struct {
	NATSURL  string `env:"NATS_URL" envDefault:"nats://127.0.0.1:4222" help:"jetstream and nats sources: server URL(s), comma separated; tls:// requires TLS"`
	NATSName string `env:"NATS_NAME" envDefault:"sluice" help:"jetstream and nats sources: connection name the server shows"`

	NATSStream         string        `env:"NATS_STREAM" help:"jetstream source: the stream to consume (required for SLUICE_SOURCE=jetstream)"`
	NATSConsumer       string        `env:"NATS_CONSUMER" envDefault:"sluice" help:"jetstream source: durable pull consumer; replicas with the same name share the messages"`
	NATSBind           bool          `env:"NATS_BIND" envDefault:"false" help:"jetstream source: use the consumer as it is (it must exist; its AckWait and MaxAckPending apply) instead of creating or updating it"`
	NATSSubjects       []string      `env:"NATS_SUBJECTS" help:"jetstream: the consumer's filter subjects (default: the whole stream); nats: subjects to subscribe to, wildcards allowed (required for SLUICE_SOURCE=nats)"`
	NATSDeliver        string        `env:"NATS_DELIVER" envDefault:"all" help:"jetstream source: where a newly created consumer starts: all or new"`
	NATSAckWait        time.Duration `env:"NATS_ACK_WAIT" envDefault:"30s" help:"jetstream source: the server redelivers a message not acked within this; messages held longer than half of it get InProgress"`
	NATSMaxAckPending  int           `env:"NATS_MAX_ACK_PENDING" help:"jetstream source: most messages out unacked, all replicas together (default: SLUICE_BUFFER_MAX_RECORDS; set replicas x buffer when scaling out)"`
	NATSPullMaxRecords int           `env:"NATS_PULL_MAX_RECORDS" help:"jetstream source: most records one pull asks for (default: 50000, at most the buffer); pulls are sized from the buffer's free room"`
	NATSPullMaxWait    time.Duration `env:"NATS_PULL_MAX_WAIT" envDefault:"5s" help:"jetstream source: how long a pull waits at the server while the stream is idle"`
	NATSDoubleAck      bool          `env:"NATS_DOUBLE_ACK" envDefault:"false" help:"jetstream source: wait for the server to confirm each ack (slower; a lost ack is logged instead of redelivered silently)"`
	NATSKeyHeader      string        `env:"NATS_KEY_HEADER" help:"jetstream and nats sources: header holding the ordering key (default: the subject is the key)"`
	NATSInfoInterval   time.Duration `env:"NATS_INFO_INTERVAL" envDefault:"5s" help:"jetstream source: how often the consumer's state (num_pending, num_ack_pending: the lag) is read"`

	NATSQueue        string   `env:"NATS_QUEUE" envDefault:"sluice" help:"nats source: queue group; replicas in one group share the messages"`
	NATSPendingMsgs  int      `env:"NATS_PENDING_MSGS" envDefault:"65536" help:"nats source: messages the client buffers beyond the buffer before it drops them (core NATS cannot pause; drops are counted)"`
	NATSPendingBytes byteSize `env:"NATS_PENDING_BYTES" envDefault:"64MiB" help:"nats source: bytes the client buffers beyond the buffer before it drops messages"`

	NATSUser         string `env:"NATS_USER" help:"jetstream and nats sources: user name (with SLUICE_NATS_PASSWORD)"`
	NATSPassword     string `env:"NATS_PASSWORD" secret:"true" help:"jetstream and nats sources: password (prefer _FILE)"`
	NATSPasswordFile string `env:"NATS_PASSWORD_FILE,file" secret:"true" help:"jetstream and nats sources: file holding the password (e.g. a mounted Secret)"`
	NATSToken        string `env:"NATS_TOKEN" secret:"true" help:"jetstream and nats sources: token (prefer _FILE)"`
	NATSTokenFile    string `env:"NATS_TOKEN_FILE,file" secret:"true" help:"jetstream and nats sources: file holding the token"`
	NATSCredsFile    string `env:"NATS_CREDS_FILE" help:"jetstream and nats sources: credentials file (user JWT and NKey seed), read again at every reconnect"`
	NATSNKeyFile     string `env:"NATS_NKEY_FILE" help:"jetstream and nats sources: file holding an NKey user seed"`
	NATSTLSCAFile    string `env:"NATS_TLS_CA_FILE" help:"jetstream and nats sources: PEM file of the CA to trust (turns TLS on)"`
	NATSTLSCertFile  string `env:"NATS_TLS_CERT_FILE" help:"jetstream and nats sources: PEM client certificate, for mutual TLS"`
	NATSTLSKeyFile   string `env:"NATS_TLS_KEY_FILE" help:"jetstream and nats sources: PEM client key, for mutual TLS"`

	NATSConnectTimeout   time.Duration `env:"NATS_CONNECT_TIMEOUT" envDefault:"5s" help:"jetstream and nats sources: bound on one connection attempt; the first must succeed or sluice exits"`
	NATSReconnectWait    time.Duration `env:"NATS_RECONNECT_WAIT" envDefault:"100ms" help:"jetstream and nats sources: first delay between reconnect attempts (doubling, with jitter)"`
	NATSReconnectMaxWait time.Duration `env:"NATS_RECONNECT_MAX_WAIT" envDefault:"5s" help:"jetstream and nats sources: longest delay between reconnect attempts"`
	NATSDrainTimeout     time.Duration `env:"NATS_DRAIN_TIMEOUT" envDefault:"10s" help:"jetstream and nats sources: bound on draining the connection at shutdown (buffered acks are sent)"`
}

// natsConsumerField maps consumer.Config's NATS fields to the variables
// that set them, for fieldProblems.
var natsConsumerField = map[string]string{
	"NATS.URL": "NATS_URL", "NATS.Stream": "NATS_STREAM", "NATS.Consumer": "NATS_CONSUMER",
	"NATS.Subjects": "NATS_SUBJECTS", "NATS.Deliver": "NATS_DELIVER", "NATS.AckWait": "NATS_ACK_WAIT",
	"NATS.MaxAckPending": "NATS_MAX_ACK_PENDING", "NATS.PullMaxRecords": "NATS_PULL_MAX_RECORDS",
	"NATS.PullMaxWait": "NATS_PULL_MAX_WAIT", "NATS.InfoInterval": "NATS_INFO_INTERVAL",
	"NATS.Queue": "NATS_QUEUE", "NATS.PendingMsgs": "NATS_PENDING_MSGS", "NATS.PendingBytes": "NATS_PENDING_BYTES",
	"NATS.User": "NATS_USER", "NATS.CredsFile": "NATS_CREDS_FILE", "NATS.TLSKeyFile": "NATS_TLS_KEY_FILE",
	"NATS.ConnectTimeout": "NATS_CONNECT_TIMEOUT", "NATS.ReconnectWait": "NATS_RECONNECT_WAIT",
	"NATS.ReconnectMaxWait": "NATS_RECONNECT_MAX_WAIT", "NATS.DrainTimeout": "NATS_DRAIN_TIMEOUT",
}

// The consumer validates its NATS settings; this makes its field errors
// name the variables.
func init() { maps.Copy(consumerField, natsConsumerField) }

// natsSourceConfig maps the variables onto consumer.NATSConfig. Secrets
// given as _FILE win over the plain variable only when it is empty.
func (c *envConfig) natsSourceConfig() consumer.NATSConfig {
	password := c.NATSPassword
	if password == "" {
		password = strings.TrimRight(c.NATSPasswordFile, "\r\n")
	}
	token := c.NATSToken
	if token == "" {
		token = strings.TrimRight(c.NATSTokenFile, "\r\n")
	}
	return consumer.NATSConfig{
		URL: c.NATSURL, Name: c.NATSName,
		User: c.NATSUser, Password: password, Token: token,
		CredsFile: c.NATSCredsFile, NKeySeedFile: c.NATSNKeyFile,
		TLSCAFile: c.NATSTLSCAFile, TLSCertFile: c.NATSTLSCertFile, TLSKeyFile: c.NATSTLSKeyFile,
		ConnectTimeout: c.NATSConnectTimeout, ReconnectWait: c.NATSReconnectWait,
		ReconnectMaxWait: c.NATSReconnectMaxWait, DrainTimeout: c.NATSDrainTimeout,
		Stream: c.NATSStream, Consumer: c.NATSConsumer, Bind: c.NATSBind, Subjects: c.NATSSubjects,
		Deliver: c.NATSDeliver, AckWait: c.NATSAckWait, MaxAckPending: c.NATSMaxAckPending,
		PullMaxRecords: c.NATSPullMaxRecords, PullMaxWait: c.NATSPullMaxWait, DoubleAck: c.NATSDoubleAck,
		KeyHeader: c.NATSKeyHeader, InfoInterval: c.NATSInfoInterval,
		Queue: c.NATSQueue, PendingMsgs: c.NATSPendingMsgs, PendingBytes: int64(c.NATSPendingBytes),
	}
}

// natsSourceProblems checks what the consumer cannot: that the credential
// and certificate files nats.go will read exist. Only for the NATS sources.
func (c *envConfig) natsSourceProblems(vars map[string]string) []string {
	if c.Source != consumer.SourceJetStream && c.Source != consumer.SourceNATS {
		return nil
	}
	var out []string
	for _, f := range []struct{ name, path string }{
		{"NATS_CREDS_FILE", c.NATSCredsFile}, {"NATS_NKEY_FILE", c.NATSNKeyFile},
		{"NATS_TLS_CA_FILE", c.NATSTLSCAFile}, {"NATS_TLS_CERT_FILE", c.NATSTLSCertFile},
		{"NATS_TLS_KEY_FILE", c.NATSTLSKeyFile},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			out = append(out, fmt.Sprintf("%s%s=%q: cannot read the file: %v", envPrefix, f.name, vars[envPrefix+f.name], unwrapAll(err)))
		}
	}
	if c.NATSPassword != "" && c.NATSPasswordFile != "" {
		out = append(out, fmt.Sprintf("%sNATS_PASSWORD_FILE=%q: set SLUICE_NATS_PASSWORD or SLUICE_NATS_PASSWORD_FILE, not both",
			envPrefix, vars[envPrefix+"NATS_PASSWORD_FILE"]))
	}
	if c.NATSToken != "" && c.NATSTokenFile != "" {
		out = append(out, fmt.Sprintf("%sNATS_TOKEN_FILE=%q: set SLUICE_NATS_TOKEN or SLUICE_NATS_TOKEN_FILE, not both",
			envPrefix, vars[envPrefix+"NATS_TOKEN_FILE"]))
	}
	return out
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/consumer"
	"github.com/sluicehq/sluice/sinks"
)

// sinkKinds are the values SLUICE_SINK takes.
var sinkKinds = []string{"http", "postgres", "kafka", "nats", "file", "stdout", "noop"}

// SinkEnv is the sinks' settings, the failure policy's (retries,
// dead-letter) and the circuit breaker's. It is embedded in envConfig.
type SinkEnv struct {
	SinkHTTPURL      string            `env:"SINK_HTTP_URL" help:"http sink: URL the messages are sent to (required for SLUICE_SINK=http)"`
	SinkHTTPMethod   string            `env:"SINK_HTTP_METHOD" envDefault:"POST" help:"http sink: request method"`
	SinkHTTPHeaders  map[string]string `env:"SINK_HTTP_HEADERS" secret:"true" help:"http sink: extra request headers, comma separated name:value pairs (e.g. Authorization:Bearer x)"`
	SinkHTTPTimeout  time.Duration     `env:"SINK_HTTP_TIMEOUT" envDefault:"10s" help:"http sink: bound on one request; a timeout is retried"`
	SinkHTTPBatchMax int               `env:"SINK_HTTP_BATCH_MAX" envDefault:"1" help:"http sink: messages per request; 1 sends a JSON object, more a JSON array"`
	SinkHTTPMaxConns int               `env:"SINK_HTTP_MAX_CONNS" envDefault:"64" help:"http sink: connections kept to the host (keep at or above SLUICE_WORKERS_MAX)"`

	SinkPostgresDSN         string `env:"SINK_POSTGRES_DSN" secret:"true" help:"postgres sink: postgres://user:pass@host:5432/db (required for SLUICE_SINK=postgres; prefer _FILE)"`
	SinkPostgresDSNFile     string `env:"SINK_POSTGRES_DSN_FILE,file" secret:"true" help:"postgres sink: file holding the DSN (e.g. a mounted Secret)"`
	SinkPostgresTable       string `env:"SINK_POSTGRES_TABLE" envDefault:"sluice_records" help:"postgres sink: table (or schema.table) the rows go to; see docs/SINKS.md"`
	SinkPostgresCreateTable bool   `env:"SINK_POSTGRES_CREATE_TABLE" envDefault:"false" help:"postgres sink: create the table at start-up when it does not exist"`
	SinkPostgresMaxConns    int    `env:"SINK_POSTGRES_MAX_CONNS" envDefault:"8" help:"postgres sink: connection pool size"`

	SinkKafkaBrokers []string      `env:"SINK_KAFKA_BROKERS" help:"kafka sink: brokers, comma separated host:port (default: SLUICE_KAFKA_BROKERS; TLS and SASL settings are shared)"`
	SinkKafkaTopic   string        `env:"SINK_KAFKA_TOPIC" help:"kafka sink: topic the messages are produced to (required for SLUICE_SINK=kafka)"`
	SinkKafkaTimeout time.Duration `env:"SINK_KAFKA_TIMEOUT" envDefault:"30s" help:"kafka sink: bound on producing one record or batch"`

	SinkNATSURL       string        `env:"SINK_NATS_URL" envDefault:"nats://127.0.0.1:4222" help:"nats sink: server URL(s), comma separated"`
	SinkNATSSubject   string        `env:"SINK_NATS_SUBJECT" help:"nats sink: subject the messages are published to (required for SLUICE_SINK=nats)"`
	SinkNATSCore      bool          `env:"SINK_NATS_CORE" envDefault:"false" help:"nats sink: publish with core NATS (no ack) instead of JetStream"`
	SinkNATSCredsFile string        `env:"SINK_NATS_CREDS_FILE" help:"nats sink and NATS dead-letter: credentials file (JWT and NKey)"`
	SinkNATSTimeout   time.Duration `env:"SINK_NATS_TIMEOUT" envDefault:"10s" help:"nats sink: bound on one publish or batch"`

	SinkFilePath       string   `env:"SINK_FILE_PATH" help:"file sink: JSON-lines file written to (required for SLUICE_SINK=file); its directory must exist"`
	SinkFileMaxBytes   byteSize `env:"SINK_FILE_MAX_BYTES" envDefault:"100MiB" help:"file sink: size at which the file is rotated to .1, .2, ..."`
	SinkFileMaxBackups int      `env:"SINK_FILE_MAX_BACKUPS" envDefault:"5" help:"file sink: rotated files kept"`
	SinkFileFsync      bool     `env:"SINK_FILE_FSYNC" envDefault:"false" help:"file sink: fsync after every write (survives a machine crash, slower)"`

	SinkBreakerFailures    int           `env:"SINK_BREAKER_FAILURES" envDefault:"5" help:"deliveries failing in a row that open the sink's circuit breaker (0: no breaker)"`
	SinkBreakerOpenTimeout time.Duration `env:"SINK_BREAKER_OPEN_TIMEOUT" envDefault:"5s" help:"how long an open breaker fails fast before it lets one probe through"`

	RetryMaxAttempts int           `env:"RETRY_MAX_ATTEMPTS" envDefault:"5" help:"failed attempts before a record is dead-lettered (the sink being down or throttling does not count)"`
	RetryMaxElapsed  time.Duration `env:"RETRY_MAX_ELAPSED" envDefault:"2m" help:"time from a record's first failure after which it is dead-lettered (waits on a down sink do not count)"`

	DLQTopic        string   `env:"DLQ_TOPIC" help:"Kafka topic records are dead-lettered to (with sluice-dlq-* headers saying where from and why)"`
	DLQKafkaBrokers []string `env:"DLQ_KAFKA_BROKERS" help:"brokers of SLUICE_DLQ_TOPIC (default: SLUICE_KAFKA_BROKERS; TLS and SASL settings are shared)"`
	DLQSubject      string   `env:"DLQ_SUBJECT" help:"NATS subject records are dead-lettered to (JetStream publish), instead of a topic"`
	DLQNATSURL      string   `env:"DLQ_NATS_URL" help:"NATS server(s) of SLUICE_DLQ_SUBJECT (default: SLUICE_SINK_NATS_URL)"`
	DLQPolicy       string   `env:"DLQ_POLICY" envDefault:"block" help:"without a DLQ, a record given up on is kept retrying (block: its partition stops, fetching pauses) or dropped and counted (drop)"`
}

// sinkField maps the sinks' config fields to the variables that set them.
var sinkField = map[string]string{
	"HTTP.URL": "SINK_HTTP_URL", "HTTP.Method": "SINK_HTTP_METHOD", "HTTP.Timeout": "SINK_HTTP_TIMEOUT",
	"HTTP.BatchMax": "SINK_HTTP_BATCH_MAX", "HTTP.MaxConns": "SINK_HTTP_MAX_CONNS",
	"Postgres.DSN": "SINK_POSTGRES_DSN", "Postgres.Table": "SINK_POSTGRES_TABLE",
	"Postgres.MaxConns": "SINK_POSTGRES_MAX_CONNS",
	"Kafka.Brokers":     "SINK_KAFKA_BROKERS", "Kafka.Topic": "SINK_KAFKA_TOPIC", "Kafka.Timeout": "SINK_KAFKA_TIMEOUT",
	"NATS.Subject": "SINK_NATS_SUBJECT", "NATS.Timeout": "SINK_NATS_TIMEOUT",
	"File.Path": "SINK_FILE_PATH", "File.MaxBytes": "SINK_FILE_MAX_BYTES", "File.MaxBackups": "SINK_FILE_MAX_BACKUPS",
	"Breaker.OpenTimeout": "SINK_BREAKER_OPEN_TIMEOUT",
}

// sinkProblems checks the sink, retry, dead-letter and breaker variables
// and names every bad one. loadConfig calls it.
func (c *envConfig) sinkProblems(vars map[string]string) []string {
	var out []string
	bad := func(name, want string) {
		out = append(out, fmt.Sprintf("%s%s=%q: %s", envPrefix, name, vars[envPrefix+name], want))
	}
	mapped := func(err error) {
		for _, e := range unjoin(err) {
			var fe *consumer.FieldError
			if errors.As(e, &fe) {
				if name, ok := sinkField[fe.Field]; ok {
					bad(name, fe.Want)
					continue
				}
			}
			if e != nil {
				out = append(out, e.Error())
			}
		}
	}
	switch c.Sink {
	case "http":
		cfg := c.httpConfig()
		mapped(cfg.Validate())
	case "postgres":
		if c.SinkPostgresDSN == "" && c.SinkPostgresDSNFile == "" {
			bad("SINK_POSTGRES_DSN", "required (or SLUICE_SINK_POSTGRES_DSN_FILE) when SLUICE_SINK=postgres")
		} else {
			cfg := c.postgresConfig()
			mapped(cfg.Validate())
		}
	case "kafka":
		cfg := c.kafkaSinkConfig(nil)
		if len(cfg.Brokers) == 0 {
			bad("SINK_KAFKA_BROKERS", "required (or SLUICE_KAFKA_BROKERS) when SLUICE_SINK=kafka")
		} else {
			mapped(cfg.Validate())
		}
	case "nats":
		cfg := c.natsSinkConfig()
		mapped(cfg.Validate())
	case "file":
		cfg := c.fileConfig()
		mapped(cfg.Validate())
		if c.SinkFilePath != "" {
			if st, err := os.Stat(filepath.Dir(c.SinkFilePath)); err != nil || !st.IsDir() {
				bad("SINK_FILE_PATH", "its directory does not exist")
			}
		}
	}
	if c.SinkBreakerFailures < 0 {
		bad("SINK_BREAKER_FAILURES", "want 0 (no breaker) or more")
	} else if c.SinkBreakerFailures > 0 {
		cfg := sinks.BreakerConfig{Failures: c.SinkBreakerFailures, OpenTimeout: c.SinkBreakerOpenTimeout}
		mapped(cfg.Validate())
	}
	// The consumer fills in a default for 0; here 0 is a mistake.
	if c.RetryMaxAttempts < 1 {
		bad("RETRY_MAX_ATTEMPTS", "want at least 1")
	}
	if c.RetryMaxElapsed <= 0 {
		bad("RETRY_MAX_ELAPSED", "want a positive duration")
	}
	switch c.DLQPolicy {
	case "block", "drop":
	default:
		bad("DLQ_POLICY", "want block or drop")
	}
	if c.DLQTopic != "" && c.DLQSubject != "" {
		bad("DLQ_SUBJECT", "set SLUICE_DLQ_TOPIC or SLUICE_DLQ_SUBJECT, not both")
	}
	if c.DLQTopic != "" && len(c.dlqBrokers()) == 0 {
		bad("DLQ_KAFKA_BROKERS", "required (or SLUICE_KAFKA_BROKERS) when SLUICE_DLQ_TOPIC is set")
	}
	if c.DLQSubject != "" {
		cfg := sinks.NATSConfig{Subject: c.DLQSubject}
		if err := cfg.Validate(); err != nil {
			bad("DLQ_SUBJECT", "want a subject without spaces or wildcards")
		}
	}
	return out
}

func (c *envConfig) httpConfig() sinks.HTTPConfig {
	return sinks.HTTPConfig{URL: c.SinkHTTPURL, Method: c.SinkHTTPMethod, Headers: c.SinkHTTPHeaders,
		Timeout: c.SinkHTTPTimeout, BatchMax: c.SinkHTTPBatchMax, MaxConns: c.SinkHTTPMaxConns}
}

func (c *envConfig) postgresConfig() sinks.PostgresConfig {
	dsn := c.SinkPostgresDSN
	if dsn == "" {
		dsn = trimNewline(c.SinkPostgresDSNFile)
	}
	return sinks.PostgresConfig{DSN: dsn, Table: c.SinkPostgresTable, CreateTable: c.SinkPostgresCreateTable,
		MaxConns: c.SinkPostgresMaxConns}
}

func (c *envConfig) kafkaSinkConfig(opts []kgo.Opt) sinks.KafkaConfig {
	brokers := c.SinkKafkaBrokers
	if len(brokers) == 0 {
		brokers = c.KafkaBrokers
	}
	return sinks.KafkaConfig{Brokers: brokers, Topic: c.SinkKafkaTopic, Timeout: c.SinkKafkaTimeout, Opts: opts}
}

func (c *envConfig) natsOpts() []nats.Option {
	if c.SinkNATSCredsFile == "" {
		return nil
	}
	return []nats.Option{nats.UserCredentials(c.SinkNATSCredsFile)}
}

func (c *envConfig) natsSinkConfig() sinks.NATSConfig {
	return sinks.NATSConfig{URL: c.SinkNATSURL, Subject: c.SinkNATSSubject, Core: c.SinkNATSCore,
		Timeout: c.SinkNATSTimeout, Opts: c.natsOpts()}
}

func (c *envConfig) fileConfig() sinks.FileConfig {
	return sinks.FileConfig{Path: c.SinkFilePath, MaxBytes: int64(c.SinkFileMaxBytes),
		MaxBackups: c.SinkFileMaxBackups, Sync: c.SinkFileFsync}
}

func (c *envConfig) dlqBrokers() []string {
	if len(c.DLQKafkaBrokers) > 0 {
		return c.DLQKafkaBrokers
	}
	return c.KafkaBrokers
}

func trimNewline(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}

// buildSinks builds the sink SLUICE_SINK names, instrumented and behind a
// circuit breaker, and the dead-letter destination (nil when none). It
// checks a PostgreSQL table before returning. On error it closes what it
// built.
func (c *envConfig) buildSinks(ctx context.Context, stdout io.Writer, reg prometheus.Registerer, log *slog.Logger) (sink, dlq consumer.Sink, err error) {
	base, err := c.baseSink(ctx, stdout)
	if err != nil || c.Sink == "noop" {
		return base, nil, err // noop measures the pipeline itself: nothing around it
	}
	opts := []sinks.Option{sinks.WithRegisterer(reg), sinks.WithLogger(log)}
	sink = sinks.Instrument(base, c.Sink, opts...)
	if c.SinkBreakerFailures > 0 {
		sink, err = sinks.NewBreaker(sink, c.Sink, sinks.BreakerConfig{
			Failures: c.SinkBreakerFailures, OpenTimeout: c.SinkBreakerOpenTimeout}, opts...)
		if err != nil {
			_ = sinks.Close(ctx, base)
			return nil, nil, err
		}
	}
	dlq, err = c.deadLetterSink()
	if err != nil {
		_ = sinks.Close(ctx, sink)
		return nil, nil, fmt.Errorf("dead-letter destination: %w", err)
	}
	if dlq != nil {
		dlq = sinks.Instrument(dlq, "dead_letter", opts...)
	}
	return sink, dlq, nil
}

// baseSink builds the sink itself. It returns a nil interface on error.
func (c *envConfig) baseSink(ctx context.Context, stdout io.Writer) (consumer.Sink, error) {
	switch c.Sink {
	case "noop":
		return sinks.Noop{}, nil
	case "stdout":
		return sinks.NewStdout(stdout), nil
	case "file":
		return orNil(sinks.NewFile(c.fileConfig()))
	case "http":
		return orNil(sinks.NewHTTP(c.httpConfig()))
	case "nats":
		return orNil(sinks.NewNATS(c.natsSinkConfig()))
	case "kafka":
		kopts, err := c.kafkaOpts()
		if err != nil {
			return nil, err
		}
		return orNil(sinks.NewKafka(c.kafkaSinkConfig(kopts)))
	case "postgres":
		pg, err := sinks.NewPostgres(c.postgresConfig())
		if err != nil {
			return nil, err
		}
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := pg.Setup(sctx); err != nil {
			_ = pg.Close(ctx)
			return nil, err
		}
		return pg, nil
	}
	return nil, fmt.Errorf("unknown sink %q", c.Sink)
}

// deadLetterSink builds the dead-letter destination: nil when none is set.
func (c *envConfig) deadLetterSink() (consumer.Sink, error) {
	switch {
	case c.DLQTopic != "":
		kopts, err := c.kafkaOpts()
		if err != nil {
			return nil, err
		}
		return orNil(sinks.NewKafka(sinks.KafkaConfig{Brokers: c.dlqBrokers(), Topic: c.DLQTopic, Opts: kopts}))
	case c.DLQSubject != "":
		url := c.DLQNATSURL
		if url == "" {
			url = c.SinkNATSURL
		}
		return orNil(sinks.NewNATS(sinks.NATSConfig{URL: url, Subject: c.DLQSubject, Opts: c.natsOpts()}))
	}
	return nil, nil
}

// orNil turns a constructor's (typed nil, error) into (nil interface, error).
func orNil[S consumer.Sink](s S, err error) (consumer.Sink, error) {
	if err != nil {
		return nil, err
	}
	return s, nil
}

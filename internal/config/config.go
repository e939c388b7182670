package config

import (
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluicehq/sluice/autoscale"
	"github.com/sluicehq/sluice/consumer"
	"github.com/sluicehq/sluice/sinks"
)

// Config is the service's configuration: each package's own Config, built
// and validated once by Load, plus what only the service uses. Do not
// modify it after Load: the sinks' and the consumer's configs already hold
// their defaults and derived values.
type Config struct {
	Consumer    consumer.Config  // the pipeline and its source; Workers is the pool to start with
	Autoscale   autoscale.Config // the worker controller (when AutoscaleOn)
	AutoscaleOn bool

	Sink  string // SLUICE_SINK: which of Sinks is used
	Sinks Sinks
	DLQ   DLQ

	KafkaAuth KafkaAuth // TLS and SASL for every Kafka client (source, sink, dead-letter)

	HTTPAddr       string        // /metrics, /healthz, /readyz
	AdminAddr      string        // /drain, /debug/flow, /debug/pprof/
	DrainExitAfter time.Duration // exit this long after a drain completes, without a signal
	LogLevel       string
}

// Sinks holds every sink's settings; only the one SLUICE_SINK names is
// validated (and has its Validate defaults filled in).
type Sinks struct {
	HTTP          sinks.HTTPConfig
	Postgres      sinks.PostgresConfig
	Kafka         sinks.KafkaConfig // Opts: TLS and SASL from KafkaAuth
	NATS          sinks.NATSConfig  // Opts: the credentials file
	NATSCredsFile string            // for the NATS sink and the NATS dead-letter destination
	File          sinks.FileConfig
	Breaker       sinks.BreakerConfig // Failures 0: no breaker
}

// DLQ is the dead-letter destination: a Kafka topic, a NATS subject, or
// neither.
type DLQ struct {
	Topic        string
	KafkaBrokers []string // default: the source's brokers
	Subject      string
	NATSURL      string // default: the NATS sink's URL
}

// KafkaAuth is how Kafka clients authenticate; Load turns it into franz-go
// options (Consumer.Kafka.Opts, Sinks.Kafka.Opts, DLQKafka).
type KafkaAuth struct {
	TLSEnabled                         bool
	TLSCAFile, TLSCertFile, TLSKeyFile string
	SASLMechanism                      string
	SASLUsername, SASLPassword         string
	SASLOAuthTokenFile                 string // oauthbearer: read at every authentication

	aws awsEnv // aws-msk-iam: the AWS_* credentials, from the same environment
}

// SinkKinds are the values SLUICE_SINK takes.
var SinkKinds = []string{"http", "postgres", "kafka", "nats", "file", "stdout", "noop"}

// serviceDefaults are the defaults of the settings only the service has.
func serviceDefaults(c *Config) {
	c.AutoscaleOn = true
	c.Sink = "stdout"
	c.HTTPAddr = ":8080"
	c.AdminAddr = "127.0.0.1:8081"
	c.DrainExitAfter = 15 * time.Second
	c.LogLevel = "info"
	c.KafkaAuth.SASLMechanism = "none"
}

// defaults is a Config holding every package's own defaults: the zero
// configs, validated (Validate fills in the defaults), then the derived
// settings zeroed again so that they follow what is set.
func defaults() Config {
	var c Config
	serviceDefaults(&c)

	kafka := consumer.Config{Source: consumer.SourceKafka}
	_ = kafka.Validate() // only to fill in defaults: the errors are about what is unset
	js := consumer.Config{Source: consumer.SourceJetStream}
	_ = js.Validate()
	c.Consumer = js
	c.Consumer.Source = kafka.Source
	c.Consumer.Kafka = kafka.Kafka

	c.Autoscale = autoscale.Config{Min: autoscale.DefaultMin, Max: autoscale.DefaultMax,
		Interval: autoscale.DefaultInterval, ScaleDownWindow: autoscale.DefaultScaleDownWindow}

	_ = c.Sinks.HTTP.Validate()
	_ = c.Sinks.Postgres.Validate()
	_ = c.Sinks.Kafka.Validate()
	_ = c.Sinks.NATS.Validate()
	_ = c.Sinks.File.Validate()
	_ = c.Sinks.Breaker.Validate()

	for _, s := range table {
		if s.derived {
			field(&c, s.to).SetZero()
		}
	}
	return c
}

// sinkNATSOpts are the NATS options of the sink and the NATS dead-letter
// destination.
func (c *Config) sinkNATSOpts() []nats.Option {
	if c.Sinks.NATSCredsFile == "" {
		return nil
	}
	return []nats.Option{nats.UserCredentials(c.Sinks.NATSCredsFile)}
}

// DeadLetterKafka is the Kafka dead-letter destination's config (when
// DLQ.Topic is set).
func (c *Config) DeadLetterKafka() sinks.KafkaConfig {
	return sinks.KafkaConfig{Brokers: c.DLQ.KafkaBrokers, Topic: c.DLQ.Topic, Opts: c.Sinks.Kafka.Opts}
}

// DeadLetterNATS is the NATS dead-letter destination's config (when
// DLQ.Subject is set).
func (c *Config) DeadLetterNATS() sinks.NATSConfig {
	return sinks.NATSConfig{URL: c.DLQ.NATSURL, Subject: c.DLQ.Subject, Opts: c.sinkNATSOpts()}
}

// fmtDuration writes 2m rather than 2m0s.
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

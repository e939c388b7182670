package main

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/dustin/go-humanize"

	"github.com/sluicehq/sluice/consumer"
)

// envPrefix starts every variable Sluice reads.
const envPrefix = "SLUICE_"

// envConfig is every setting, read from SLUICE_* variables. The help tag
// documents the variable; `sluice config --env` prints them all, and the
// README's table is checked against it.
type envConfig struct {
	Source  string `env:"SOURCE" envDefault:"kafka" help:"where messages come from: kafka, jetstream (NATS JetStream, at least once) or nats (core NATS, at most once)"`
	NATSEnv        // SLUICE_NATS_*: the jetstream and nats sources, config_nats.go

	KafkaBrokers          []string      `env:"KAFKA_BROKERS" help:"bootstrap brokers, comma separated host:port (required for kafka)"`
	KafkaTopics           []string      `env:"KAFKA_TOPICS" help:"topics to consume, comma separated (required for kafka)"`
	KafkaGroup            string        `env:"KAFKA_GROUP" envDefault:"sluice" help:"consumer group; replicas with the same group share the partitions"`
	KafkaClientID         string        `env:"KAFKA_CLIENT_ID" envDefault:"sluice" help:"client id sent to the brokers"`
	KafkaStartOffset      string        `env:"KAFKA_START_OFFSET" envDefault:"earliest" help:"where a partition with no committed offset starts: earliest or latest"`
	KafkaFetchMaxWait     time.Duration `env:"KAFKA_FETCH_MAX_WAIT" envDefault:"250ms" help:"longest a broker holds a fetch; also bounds how late a resume takes effect"`
	KafkaSessionTimeout   time.Duration `env:"KAFKA_SESSION_TIMEOUT" envDefault:"45s" help:"how long the coordinator waits for a silent member before moving its partitions (faster recovery after a crash vs more rebalances on a slow network)"`
	KafkaFetchMaxBytes    byteSize      `env:"KAFKA_FETCH_MAX_BYTES" help:"largest fetch response (default: derived from the buffer so a poll fits in it)"`
	KafkaTLSEnabled       bool          `env:"KAFKA_TLS_ENABLED" envDefault:"false" help:"connect to the brokers with TLS"`
	KafkaTLSCAFile        string        `env:"KAFKA_TLS_CA_FILE" help:"PEM file of the CA to trust (default: the system pool)"`
	KafkaTLSCertFile      string        `env:"KAFKA_TLS_CERT_FILE" help:"PEM client certificate, for mutual TLS"`
	KafkaTLSKeyFile       string        `env:"KAFKA_TLS_KEY_FILE" help:"PEM client key, for mutual TLS"`
	KafkaSASLMechanism    string        `env:"KAFKA_SASL_MECHANISM" envDefault:"none" help:"none, plain, scram-sha-256 or scram-sha-512"`
	KafkaSASLUsername     string        `env:"KAFKA_SASL_USERNAME" help:"SASL user"`
	KafkaSASLPassword     string        `env:"KAFKA_SASL_PASSWORD" secret:"true" help:"SASL password (prefer _FILE)"`
	KafkaSASLPasswordFile string        `env:"KAFKA_SASL_PASSWORD_FILE,file" secret:"true" help:"file holding the SASL password (e.g. a mounted Secret)"`

	BufferMaxRecords int           `env:"BUFFER_MAX_RECORDS" envDefault:"100000" help:"in-flight budget in records, for the whole process (fetched until committed)"`
	BufferMaxBytes   byteSize      `env:"BUFFER_MAX_BYTES" envDefault:"64MiB" help:"in-flight budget in bytes of key+value+headers; units such as 64MiB or 1GB"`
	BufferHighWater  float64       `env:"BUFFER_HIGH_WATER" envDefault:"0.8" help:"fraction of the budget at which partitions pause"`
	BufferLowWater   float64       `env:"BUFFER_LOW_WATER" envDefault:"0.5" help:"fraction of the budget at which paused partitions resume"`
	BufferPauseDelay time.Duration `env:"BUFFER_PAUSE_DELAY" envDefault:"200ms" help:"how long the window stays above high water (not yet back at low) before partitions pause; the budget holds regardless"`

	Ordering     string `env:"ORDERING" envDefault:"key" help:"key (same key in order), partition, or none"`
	BatchMax     int    `env:"BATCH_MAX" envDefault:"256" help:"most messages a worker takes from one lane at once"`
	WorkersMin   int    `env:"WORKERS_MIN" envDefault:"1" help:"fewest workers"`
	WorkersMax   int    `env:"WORKERS_MAX" envDefault:"64" help:"most workers"`
	AutoscaleEnv        // SLUICE_AUTOSCALE_*, SLUICE_SINK_MAX_CONCURRENCY: autoscale.go

	CommitInterval      time.Duration `env:"COMMIT_INTERVAL" envDefault:"1s" help:"how often delivered offsets are committed (also sooner under pressure, on revoke and on shutdown)"`
	RebalanceTimeout    time.Duration `env:"REBALANCE_TIMEOUT" envDefault:"10s" help:"how long a revoke waits for in-flight deliveries of the revoked partitions"`
	ShutdownTimeout     time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"30s" help:"how long shutdown or drain waits for in-flight work; keep it below the pod's grace period"`
	RetryInitialBackoff time.Duration `env:"RETRY_INITIAL_BACKOFF" envDefault:"100ms" help:"first delay before retrying a failed delivery"`
	RetryMaxBackoff     time.Duration `env:"RETRY_MAX_BACKOFF" envDefault:"10s" help:"longest delay between delivery attempts"`

	Sink    string `env:"SINK" envDefault:"stdout" help:"where messages go: http, postgres, kafka, nats, file, stdout or noop"`
	SinkEnv        // SLUICE_SINK_*, SLUICE_RETRY_MAX_*, SLUICE_DLQ_*: config_sinks.go

	HTTPAddr string `env:"HTTP_ADDR" envDefault:":8080" help:"address of the metrics, health and drain endpoints"`
	LogLevel string `env:"LOG_LEVEL" envDefault:"info" help:"debug, info, warn or error"`
}

// byteSize is a size in bytes that accepts human units (64MiB, 1GB, 512k).
type byteSize int64

func (b *byteSize) UnmarshalText(text []byte) error {
	n, err := humanize.ParseBytes(string(text))
	if err != nil {
		return fmt.Errorf("want a size such as 64MiB or 1GB")
	}
	if n > 1<<50 {
		return fmt.Errorf("want a size below 1PiB")
	}
	*b = byteSize(n)
	return nil
}

func (b byteSize) String() string {
	if b == 0 {
		return "0"
	}
	return humanize.IBytes(uint64(b))
}

// configError lists every bad variable.
type configError struct{ problems []string }

func (e *configError) Error() string {
	return "invalid configuration:\n  " + strings.Join(e.problems, "\n  ")
}

// field describes one variable of envConfig.
type field struct {
	name, env, def, help string
	secret, file         bool
}

// fields lists every variable in declaration order. Embedded structs (one
// per concern, e.g. a sink's settings in its own file) are flattened; field
// names must be unique across them.
func fields() []field {
	var out []field
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Anonymous && f.Type.Kind() == reflect.Struct {
				walk(f.Type)
				continue
			}
			key, opts, _ := strings.Cut(f.Tag.Get("env"), ",")
			out = append(out, field{
				name: f.Name, env: envPrefix + key, def: f.Tag.Get("envDefault"), help: f.Tag.Get("help"),
				secret: f.Tag.Get("secret") == "true", file: strings.Contains(opts, "file"),
			})
		}
	}
	walk(reflect.TypeFor[envConfig]())
	return out
}

// fieldValues returns the values of every variable's field, in the order
// of fields().
func fieldValues(cfg *envConfig) []reflect.Value {
	var out []reflect.Value
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		t := v.Type()
		for i := range t.NumField() {
			if f := t.Field(i); f.Anonymous && f.Type.Kind() == reflect.Struct {
				walk(v.Field(i))
				continue
			}
			out = append(out, v.Field(i))
		}
	}
	walk(reflect.ValueOf(cfg).Elem())
	return out
}

// loadConfig reads the environment, checks every variable and returns the
// configuration, or a *configError naming every bad one.
func loadConfig(environ []string) (*envConfig, error) {
	vars := map[string]string{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	var problems []string
	known := map[string]field{}
	byName := map[string]field{}
	for _, f := range fields() {
		known[f.env] = f
		byName[f.name] = f
	}
	for k := range vars {
		if strings.HasPrefix(k, envPrefix) {
			if _, ok := known[k]; !ok && !serviceLink(k, vars[k]) {
				problems = append(problems, fmt.Sprintf("%s: unknown variable (see `sluice config --env`)", k))
			}
		}
	}

	var cfg envConfig
	err := env.ParseWithOptions(&cfg, env.Options{Environment: vars, Prefix: envPrefix})
	var agg env.AggregateError
	if errors.As(err, &agg) {
		for _, e := range agg.Errors {
			var pe env.ParseError
			var fe env.LoadFileContentError
			switch {
			case errors.As(e, &pe):
				f := byName[pe.Name]
				problems = append(problems, fmt.Sprintf("%s=%q: %s", f.env, vars[f.env], wantFor(pe.Type, pe.Err)))
			case errors.As(e, &fe):
				problems = append(problems, fmt.Sprintf("%s=%q: cannot read the file: %v", fe.Key, fe.Filename, unwrapAll(fe.Err)))
			default:
				problems = append(problems, e.Error())
			}
		}
	} else if err != nil {
		problems = append(problems, err.Error())
	}
	bad := func(name string, want string) {
		f := known[envPrefix+name]
		problems = append(problems, fmt.Sprintf("%s=%q: %s", f.env, vars[f.env], want))
	}
	oneOf := func(name, v string, allowed ...string) {
		for _, a := range allowed {
			if v == a {
				return
			}
		}
		bad(name, "want one of "+strings.Join(allowed, ", "))
	}
	oneOf("SOURCE", cfg.Source, "kafka", "jetstream", "nats")
	problems = append(problems, cfg.natsSourceProblems(vars)...)
	oneOf("SINK", cfg.Sink, sinkKinds...)
	problems = append(problems, cfg.sinkProblems(vars)...)
	oneOf("LOG_LEVEL", cfg.LogLevel, "debug", "info", "warn", "error")
	oneOf("KAFKA_SASL_MECHANISM", cfg.KafkaSASLMechanism, "none", "plain", "scram-sha-256", "scram-sha-512")
	if cfg.KafkaSASLMechanism != "none" && cfg.KafkaSASLMechanism != "" {
		if cfg.KafkaSASLUsername == "" {
			bad("KAFKA_SASL_USERNAME", "required when SLUICE_KAFKA_SASL_MECHANISM is set")
		}
		if cfg.KafkaSASLPassword == "" && cfg.KafkaSASLPasswordFile == "" {
			bad("KAFKA_SASL_PASSWORD", "required (or SLUICE_KAFKA_SASL_PASSWORD_FILE) when SLUICE_KAFKA_SASL_MECHANISM is set")
		}
	}
	if (cfg.KafkaTLSCertFile == "") != (cfg.KafkaTLSKeyFile == "") {
		bad("KAFKA_TLS_KEY_FILE", "set both SLUICE_KAFKA_TLS_CERT_FILE and SLUICE_KAFKA_TLS_KEY_FILE, or neither")
	}
	if cfg.WorkersMin < 1 {
		bad("WORKERS_MIN", "want at least 1")
	}
	if cfg.WorkersMax < max(1, cfg.WorkersMin) {
		bad("WORKERS_MAX", "want at least 1 and at least SLUICE_WORKERS_MIN")
	}
	cfg.checkAutoscale(bad)
	if cfg.HTTPAddr == "" {
		bad("HTTP_ADDR", "want host:port or :port")
	}

	// The packages validate their own settings; map their fields back.
	if ccfg, err := cfg.consumerConfig(); err != nil {
		problems = append(problems, err.Error())
	} else if err := ccfg.Validate(); err != nil {
		problems = append(problems, fieldProblems(err, vars)...)
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, &configError{problems: dedupe(problems)}
	}
	return &cfg, nil
}

// consumerField maps consumer.Config fields to the variables that set them.
var consumerField = map[string]string{
	"MaxRecords": "BUFFER_MAX_RECORDS", "MaxBytes": "BUFFER_MAX_BYTES",
	"HighWater": "BUFFER_HIGH_WATER", "LowWater": "BUFFER_LOW_WATER", "PauseDelay": "BUFFER_PAUSE_DELAY",
	"Ordering": "ORDERING", "Workers": "WORKERS_MIN", "BatchMax": "BATCH_MAX",
	"CommitInterval": "COMMIT_INTERVAL", "RebalanceTimeout": "REBALANCE_TIMEOUT",
	"ShutdownTimeout": "SHUTDOWN_TIMEOUT", "RetryInitialBackoff": "RETRY_INITIAL_BACKOFF",
	"RetryMaxBackoff": "RETRY_MAX_BACKOFF", "RetryMaxAttempts": "RETRY_MAX_ATTEMPTS",
	"RetryMaxElapsed": "RETRY_MAX_ELAPSED", "DeadLetterPolicy": "DLQ_POLICY",
	"Kafka.Brokers": "KAFKA_BROKERS", "Kafka.Topics": "KAFKA_TOPICS",
	"Kafka.StartOffset": "KAFKA_START_OFFSET", "Kafka.FetchMaxWait": "KAFKA_FETCH_MAX_WAIT",
	"Kafka.FetchMaxBytes": "KAFKA_FETCH_MAX_BYTES", "Kafka.SessionTimeout": "KAFKA_SESSION_TIMEOUT",
}

func fieldProblems(err error, vars map[string]string) []string {
	var out []string
	for _, e := range unjoin(err) {
		var fe *consumer.FieldError
		if errors.As(e, &fe) {
			if name, ok := consumerField[fe.Field]; ok {
				out = append(out, fmt.Sprintf("%s%s=%q: %s", envPrefix, name, vars[envPrefix+name], fe.Want))
				continue
			}
		}
		out = append(out, e.Error())
	}
	return out
}

// consumerConfig maps the variables onto the consumer's Config.
func (c *envConfig) consumerConfig() (consumer.Config, error) {
	kopts, err := c.kafkaOpts()
	if err != nil {
		return consumer.Config{}, err
	}
	return consumer.Config{
		Source: c.Source, NATS: c.natsSourceConfig(),
		MaxRecords: c.BufferMaxRecords, MaxBytes: int64(c.BufferMaxBytes),
		HighWater: c.BufferHighWater, LowWater: c.BufferLowWater, PauseDelay: c.BufferPauseDelay,
		Ordering: consumer.Ordering(c.Ordering), Workers: c.initialWorkers(), BatchMax: c.BatchMax,
		CommitInterval: c.CommitInterval, RebalanceTimeout: c.RebalanceTimeout,
		ShutdownTimeout:     c.ShutdownTimeout,
		RetryInitialBackoff: c.RetryInitialBackoff, RetryMaxBackoff: c.RetryMaxBackoff,
		RetryMaxAttempts: c.RetryMaxAttempts, RetryMaxElapsed: c.RetryMaxElapsed, DeadLetterPolicy: consumer.DeadLetterPolicy(c.DLQPolicy),
		Kafka: consumer.KafkaConfig{
			Brokers: c.KafkaBrokers, Topics: c.KafkaTopics, Group: c.KafkaGroup,
			ClientID: c.KafkaClientID, StartOffset: c.KafkaStartOffset,
			FetchMaxWait: c.KafkaFetchMaxWait, FetchMaxBytes: int64(c.KafkaFetchMaxBytes),
			SessionTimeout: c.KafkaSessionTimeout,
			Opts:           kopts,
		},
	}, nil
}

// printConfig writes the effective configuration, secrets redacted.
func printConfig(w io.Writer, cfg *envConfig) {
	vals := fieldValues(cfg)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, f := range fields() {
		val := fmt.Sprint(vals[i].Interface())
		if fv, ok := vals[i].Interface().([]string); ok {
			val = strings.Join(fv, ",")
		}
		if f.secret && val != "" {
			val = "<redacted>"
		}
		fmt.Fprintf(tw, "%s\t%s\n", f.env, val)
	}
	tw.Flush()
}

// printEnvTable writes every variable as a Markdown table.
func printEnvTable(w io.Writer) {
	fmt.Fprintln(w, "| variable | default | meaning |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, f := range fields() {
		def := f.def
		if def != "" {
			def = "`" + def + "`"
		}
		fmt.Fprintf(w, "| `%s` | %s | %s |\n", f.env, def, f.help)
	}
}

// wantFor says what a variable of type t should look like.
func wantFor(t reflect.Type, err error) string {
	switch t {
	case reflect.TypeFor[time.Duration]():
		return "want a duration such as 500ms, 2s or 1m"
	case reflect.TypeFor[byteSize]():
		return unwrapAll(err).Error()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int64:
		return "want a whole number"
	case reflect.Float64:
		return "want a number such as 0.8"
	case reflect.Bool:
		return "want true or false"
	}
	return unwrapAll(err).Error()
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func unwrapAll(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

func dedupe(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/sluicehq/sluice/consumer"
	"github.com/sluicehq/sluice/sinks"
)

// Prefix starts every variable Sluice reads.
const Prefix = "SLUICE_"

// Error lists every bad variable, one problem a line.
type Error struct{ Problems []string }

func (e *Error) Error() string {
	return "invalid configuration:\n  " + strings.Join(e.Problems, "\n  ")
}

// Load reads environ (KEY=value strings), checks every SLUICE_ variable and
// returns the configuration, or an *Error naming every bad variable. It
// reads the files that _FILE variables name and checks that the files the
// clients will open exist; it connects to nothing.
func Load(environ []string) (*Config, error) {
	vars := map[string]string{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	l := loader{vars: vars, byEnv: map[string]setting{}}
	for _, s := range table {
		l.byEnv[Prefix+s.name] = s
	}
	for k, v := range vars {
		if _, ok := l.byEnv[k]; strings.HasPrefix(k, Prefix) && !ok && !serviceLink(k, v) {
			l.problems = append(l.problems, k+": unknown variable (see `sluice config --env`)")
		}
	}
	cfg := defaults()
	for _, s := range table {
		l.set(&cfg, s)
	}
	l.resolve(&cfg)
	l.check(&cfg)
	if len(l.problems) > 0 {
		sort.Strings(l.problems)
		return nil, &Error{Problems: slices.Compact(l.problems)}
	}
	return &cfg, nil
}

type loader struct {
	vars     map[string]string
	byEnv    map[string]setting
	problems []string
}

// bad records a problem with the variable SLUICE_<name>.
func (l *loader) bad(name, want string) {
	s := l.byEnv[Prefix+name]
	l.problems = append(l.problems, fmt.Sprintf("%s%s=%q: %s", Prefix, name, l.shown(s), want))
}

// shown is a variable's value as an error may quote it.
func (l *loader) shown(s setting) string {
	v := l.vars[Prefix+s.name]
	switch {
	case s.secret && !s.file && v != "":
		return "<redacted>"
	case s.url:
		return consumer.RedactURL(v)
	}
	return v
}

// set parses s's variable, when set, into its field.
func (l *loader) set(cfg *Config, s setting) {
	raw, ok := l.vars[Prefix+s.name]
	if !ok || raw == "" {
		return
	}
	if s.file {
		if plain := strings.TrimSuffix(s.name, "_FILE"); l.vars[Prefix+plain] != "" {
			l.bad(s.name, fmt.Sprintf("set %s%s or %s%s, not both", Prefix, plain, Prefix, s.name))
			return
		}
		b, err := os.ReadFile(raw)
		if err != nil {
			l.bad(s.name, "cannot read the file: "+unwrapAll(err).Error())
			return
		}
		raw = strings.TrimRight(string(b), "\r\n")
	}
	if err := parse(field(cfg, s.to), raw, s.size); err != nil {
		l.bad(s.name, err.Error())
	}
}

// field is the settable field at path (a.b.c) in cfg.
func field(cfg *Config, path string) reflect.Value {
	v := reflect.ValueOf(cfg).Elem()
	for name := range strings.SplitSeq(path, ".") {
		v = v.FieldByName(name)
		if !v.IsValid() {
			panic("config: no field " + path) // a mistake in the table; TestTable catches it
		}
	}
	return v
}

var durationType = reflect.TypeFor[time.Duration]()

// parse sets v from raw; its error says what is wanted.
func parse(v reflect.Value, raw string, size bool) error {
	switch {
	case size:
		n, err := humanize.ParseBytes(raw)
		if err != nil {
			return errors.New("want a size such as 64MiB or 1GB")
		}
		if n > 1<<50 {
			return errors.New("want a size below 1PiB")
		}
		v.SetInt(int64(n))
	case v.Type() == durationType:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return errors.New("want a duration such as 500ms, 2s or 1m")
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.String:
		v.SetString(raw)
	case v.Kind() == reflect.Int || v.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || v.OverflowInt(n) {
			return errors.New("want a whole number")
		}
		v.SetInt(n)
	case v.Kind() == reflect.Float64:
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return errors.New("want a number such as 0.8")
		}
		v.SetFloat(f)
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return errors.New("want true or false")
		}
		v.SetBool(b)
	case v.Type() == reflect.TypeFor[[]string]():
		v.Set(reflect.ValueOf(strings.Split(raw, ",")))
	case v.Type() == reflect.TypeFor[map[string]string]():
		m := map[string]string{}
		for pair := range strings.SplitSeq(raw, ",") {
			k, val, ok := strings.Cut(pair, ":")
			if !ok || k == "" {
				return errors.New("want comma separated name:value pairs")
			}
			m[k] = val
		}
		v.Set(reflect.ValueOf(m))
	default:
		panic("config: no parser for " + v.Type().String())
	}
	return nil
}

// resolve fills in what follows from other settings.
func (l *loader) resolve(cfg *Config) {
	if cfg.AutoscaleOn {
		cfg.Consumer.Workers = cfg.Autoscale.Min
	} else {
		cfg.Consumer.Workers = cfg.Autoscale.Max
	}
	if len(cfg.Sinks.Kafka.Brokers) == 0 {
		cfg.Sinks.Kafka.Brokers = cfg.Consumer.Kafka.Brokers
	}
	if len(cfg.DLQ.KafkaBrokers) == 0 {
		cfg.DLQ.KafkaBrokers = cfg.Consumer.Kafka.Brokers
	}
	if cfg.DLQ.NATSURL == "" {
		cfg.DLQ.NATSURL = cfg.Sinks.NATS.URL
	}
	cfg.Sinks.NATS.Opts = cfg.sinkNATSOpts()
	if cfg.Consumer.Kafka.ClientID == "" {
		// The host name tells the replicas apart in the brokers' logs,
		// quotas and group descriptions; in a pod it is the pod's name.
		if h, err := os.Hostname(); err == nil {
			cfg.Consumer.Kafka.ClientID = h
		}
	}
	if cfg.KafkaAuth.SASLMechanism == "" {
		cfg.KafkaAuth.SASLMechanism = "none"
	}
	cfg.KafkaAuth.aws = awsFromEnv(l.vars)
	opts, err := cfg.KafkaAuth.opts()
	if err != nil {
		l.problems = append(l.problems, err.Error())
	}
	cfg.Consumer.Kafka.Opts = opts
	cfg.Sinks.Kafka.Opts = opts
}

// check adds every problem of cfg: the rules between settings here, then
// each package's own Validate (which also fills in its defaults), whose
// field errors name the variable of the field.
func (l *loader) check(cfg *Config) {
	oneOf := func(name, v string, allowed ...string) {
		if !slices.Contains(allowed, v) {
			l.bad(name, "want one of "+strings.Join(allowed, ", "))
		}
	}
	oneOf("SOURCE", cfg.Consumer.Source, consumer.SourceKafka, consumer.SourceKafkaShare, consumer.SourceJetStream, consumer.SourceNATS)
	oneOf("SINK", cfg.Sink, SinkKinds...)
	oneOf("LOG_LEVEL", cfg.LogLevel, "debug", "info", "warn", "error")

	a := cfg.KafkaAuth
	oneOf("KAFKA_SASL_MECHANISM", a.SASLMechanism, "none", "plain", "scram-sha-256", "scram-sha-512", "oauthbearer", "aws-msk-iam")
	switch {
	case a.SASLMechanism == "aws-msk-iam":
		if p := a.aws.problem(); p != "" {
			l.bad("KAFKA_SASL_MECHANISM", p)
		}
	case a.SASLMechanism == "oauthbearer":
		if a.SASLOAuthTokenFile == "" {
			l.bad("KAFKA_SASL_OAUTH_TOKEN_FILE", "required when SLUICE_KAFKA_SASL_MECHANISM=oauthbearer")
		} else if _, err := os.Stat(a.SASLOAuthTokenFile); err != nil {
			l.bad("KAFKA_SASL_OAUTH_TOKEN_FILE", "cannot read the file: "+unwrapAll(err).Error())
		}
	case a.SASLOAuthTokenFile != "":
		l.bad("KAFKA_SASL_OAUTH_TOKEN_FILE", "only with SLUICE_KAFKA_SASL_MECHANISM=oauthbearer")
	}
	if a.SASLMechanism != "none" && a.SASLMechanism != "oauthbearer" && a.SASLMechanism != "aws-msk-iam" {
		if a.SASLUsername == "" {
			l.bad("KAFKA_SASL_USERNAME", "required when SLUICE_KAFKA_SASL_MECHANISM is set")
		}
		if a.SASLPassword == "" && l.vars[Prefix+"KAFKA_SASL_PASSWORD_FILE"] == "" {
			l.bad("KAFKA_SASL_PASSWORD", "required (or SLUICE_KAFKA_SASL_PASSWORD_FILE) when SLUICE_KAFKA_SASL_MECHANISM is set")
		}
	}
	if (a.TLSCertFile == "") != (a.TLSKeyFile == "") {
		l.bad("KAFKA_TLS_KEY_FILE", "set both SLUICE_KAFKA_TLS_CERT_FILE and SLUICE_KAFKA_TLS_KEY_FILE, or neither")
	}

	as := cfg.Autoscale
	if as.Min < 1 {
		l.bad("WORKERS_MIN", "want at least 1")
	}
	if as.Max < max(1, as.Min) {
		l.bad("WORKERS_MAX", "want at least 1 and at least SLUICE_WORKERS_MIN")
	}
	if as.Interval <= 0 {
		l.bad("AUTOSCALE_INTERVAL", "want a positive duration such as 1s")
	}
	if as.MaxStep < 0 {
		l.bad("AUTOSCALE_MAX_STEP", "want 0 (adaptive) or more")
	}
	if as.ScaleDownWindow < 0 {
		l.bad("AUTOSCALE_SCALE_DOWN_WINDOW", "want 0 or a positive duration")
	}
	if as.SinkMaxConcurrency < 0 {
		l.bad("SINK_MAX_CONCURRENCY", "want 0 (no limit) or more")
	}
	l.checkAddrs(cfg)
	if cfg.DrainExitAfter < 0 {
		l.bad("DRAIN_EXIT_AFTER", "want 0 (exit as soon as the drain completes) or a positive duration")
	}
	// The consumer fills in a default for 0; here 0 is a mistake.
	if cfg.Consumer.RetryMaxAttempts < 1 {
		l.bad("RETRY_MAX_ATTEMPTS", "want at least 1")
	}
	if cfg.Consumer.RetryMaxElapsed <= 0 {
		l.bad("RETRY_MAX_ELAPSED", "want a positive duration")
	}
	if p := cfg.Consumer.DeadLetterPolicy; p != consumer.DeadLetterBlock && p != consumer.DeadLetterDrop {
		l.bad("DLQ_POLICY", "want block or drop")
	}
	l.checkNATSFiles(cfg)
	l.checkSinks(cfg)
	l.fieldErrors("Consumer.", cfg.Consumer.Validate())
}

// checkAddrs checks the two listen addresses: each host:port (or :port),
// and not the same port, since the admin endpoints must not be served
// where the public ones are. Port 0 (any free port) may appear twice.
func (l *loader) checkAddrs(cfg *Config) {
	ports := map[string]string{}
	for _, a := range []struct{ name, addr string }{{"HTTP_ADDR", cfg.HTTPAddr}, {"ADMIN_ADDR", cfg.AdminAddr}} {
		_, port, err := net.SplitHostPort(a.addr)
		if err != nil || port == "" {
			l.bad(a.name, "want host:port or :port")
			continue
		}
		if other, dup := ports[port]; dup && port != "0" {
			l.bad(a.name, "want a port other than "+Prefix+other+"'s: the admin endpoints are not served on the public port")
		}
		ports[port] = a.name
	}
}

// checkNATSFiles checks what the consumer cannot: that the files nats.go
// will read exist. Only for the NATS sources.
func (l *loader) checkNATSFiles(cfg *Config) {
	if s := cfg.Consumer.Source; s != consumer.SourceJetStream && s != consumer.SourceNATS {
		return
	}
	n := cfg.Consumer.NATS
	for _, f := range []struct{ name, path string }{
		{"NATS_CREDS_FILE", n.CredsFile}, {"NATS_NKEY_FILE", n.NKeySeedFile},
		{"NATS_TLS_CA_FILE", n.TLSCAFile}, {"NATS_TLS_CERT_FILE", n.TLSCertFile}, {"NATS_TLS_KEY_FILE", n.TLSKeyFile},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			l.bad(f.name, "cannot read the file: "+unwrapAll(err).Error())
		}
	}
}

// checkSinks validates the sink SLUICE_SINK names, the breaker and the
// dead-letter destination.
func (l *loader) checkSinks(cfg *Config) {
	s := &cfg.Sinks
	switch cfg.Sink {
	case "http":
		l.fieldErrors("Sinks.", s.HTTP.Validate())
	case "postgres":
		if s.Postgres.DSN == "" {
			l.bad("SINK_POSTGRES_DSN", "required (or SLUICE_SINK_POSTGRES_DSN_FILE) when SLUICE_SINK=postgres")
		} else {
			l.fieldErrors("Sinks.", s.Postgres.Validate())
		}
	case "kafka":
		if len(s.Kafka.Brokers) == 0 {
			l.bad("SINK_KAFKA_BROKERS", "required (or SLUICE_KAFKA_BROKERS) when SLUICE_SINK=kafka")
		} else {
			l.fieldErrors("Sinks.", s.Kafka.Validate())
		}
	case "nats":
		l.fieldErrors("Sinks.", s.NATS.Validate())
	case "file":
		l.fieldErrors("Sinks.", s.File.Validate())
		if s.File.Path != "" {
			if st, err := os.Stat(filepath.Dir(s.File.Path)); err != nil || !st.IsDir() {
				l.bad("SINK_FILE_PATH", "its directory does not exist")
			}
		}
	}
	if s.Breaker.Failures < 0 {
		l.bad("SINK_BREAKER_FAILURES", "want 0 (no breaker) or more")
	} else if s.Breaker.Failures > 0 {
		l.fieldErrors("Sinks.", s.Breaker.Validate())
	}

	d := cfg.DLQ
	if d.Topic != "" && d.Subject != "" {
		l.bad("DLQ_SUBJECT", "set SLUICE_DLQ_TOPIC or SLUICE_DLQ_SUBJECT, not both")
	}
	if d.Topic != "" && len(d.KafkaBrokers) == 0 {
		l.bad("DLQ_KAFKA_BROKERS", "required (or SLUICE_KAFKA_BROKERS) when SLUICE_DLQ_TOPIC is set")
	}
	if d.Subject != "" {
		nc := sinks.NATSConfig{Subject: d.Subject}
		if err := nc.Validate(); err != nil {
			l.bad("DLQ_SUBJECT", "want a subject without spaces or wildcards")
		}
	}
}

// fieldErrors adds the problems in err (a package's Validate), naming the
// variable whose field (prefix + FieldError.Field) is bad. When two
// variables fill one field (X and X_FILE), the one that is set is named.
func (l *loader) fieldErrors(prefix string, err error) {
	if err == nil {
		return
	}
	for _, e := range unjoin(err) {
		var fe *consumer.FieldError
		if errors.As(e, &fe) {
			if s, ok := l.settingAt(prefix + fe.Field); ok {
				l.bad(s.name, fe.Want)
				continue
			}
		}
		l.problems = append(l.problems, e.Error())
	}
}

func (l *loader) settingAt(path string) (setting, bool) {
	var found []setting
	for _, s := range table {
		if s.to == path {
			found = append(found, s)
		}
	}
	for _, s := range found {
		if l.vars[Prefix+s.name] != "" {
			return s, true
		}
	}
	if len(found) > 0 {
		return found[0], true
	}
	return setting{}, false
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

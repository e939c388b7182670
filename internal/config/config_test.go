package config

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/autoscale"
	"github.com/sluicehq/sluice/consumer"
	"github.com/sluicehq/sluice/sinks"
)

var kafkaBase = []string{"SLUICE_KAFKA_BROKERS=127.0.0.1:9092", "SLUICE_KAFKA_TOPICS=orders"}

func load(t *testing.T, environ ...string) *Config {
	t.Helper()
	cfg, err := Load(environ)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestTable: every setting names a field that exists, once per variable,
// with help text; X_FILE fills the same field as X and is as secret.
func TestTable(t *testing.T) {
	seen := map[string]bool{}
	var cfg Config
	for _, s := range table {
		if seen[s.name] {
			t.Errorf("%s declared twice", s.name)
		}
		seen[s.name] = true
		if s.help == "" {
			t.Errorf("%s has no help text", s.name)
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s: %v", s.name, r)
				}
			}()
			_ = parse(field(&cfg, s.to), "1", s.size) // no panic: the field exists and has a parser
		}()
	}
	for _, s := range table {
		if !s.file {
			continue
		}
		plain := strings.TrimSuffix(s.name, "_FILE")
		var twin *setting
		for i := range table {
			if table[i].name == plain {
				twin = &table[i]
			}
		}
		if twin == nil || twin.to != s.to || twin.secret != s.secret {
			t.Errorf("%s has no plain twin %s filling %s with the same secrecy", s.name, plain, s.to)
		}
	}
}

// TestDefaultsAreThePackages: with nothing set, every package gets exactly
// what it would choose itself, and the docs show those values. A default
// written in a second place (SLUICE_WORKERS_MAX 64 beside
// autoscale.DefaultMax 256, as it was) fails here.
func TestDefaultsAreThePackages(t *testing.T) {
	cfg := load(t, kafkaBase...)

	want := consumer.Config{Kafka: consumer.KafkaConfig{Brokers: []string{"127.0.0.1:9092"}, Topics: []string{"orders"}},
		Workers: autoscale.DefaultMin}
	_ = want.Validate()
	// The one default the service sets itself: the client id is the host
	// name (the pod's name), so that brokers can tell the replicas apart.
	if h, err := os.Hostname(); err == nil {
		want.Kafka.ClientID = h
	}
	got := cfg.Consumer
	got.Kafka.Opts = nil
	got.NATS = consumer.NATSConfig{} // filled for the docs; the kafka source leaves it zero
	if !reflect.DeepEqual(got, want) {
		t.Errorf("consumer config with nothing set:\n got %+v\nwant %+v", got, want)
	}

	wantAS := autoscale.Config{Min: autoscale.DefaultMin, Max: autoscale.DefaultMax,
		Interval: autoscale.DefaultInterval, ScaleDownWindow: autoscale.DefaultScaleDownWindow}
	if cfg.Autoscale != wantAS {
		t.Errorf("autoscale config with nothing set: %+v, want %+v", cfg.Autoscale, wantAS)
	}

	js := consumer.Config{Source: consumer.SourceJetStream, NATS: consumer.NATSConfig{Stream: "S"}}
	_ = js.Validate()
	gotJS := load(t, "SLUICE_SOURCE=jetstream", "SLUICE_NATS_STREAM=S").Consumer.NATS
	if !reflect.DeepEqual(gotJS, js.NATS) {
		t.Errorf("jetstream config with nothing set:\n got %+v\nwant %+v", gotJS, js.NATS)
	}

	httpWant := sinks.HTTPConfig{URL: "http://x"}
	_ = httpWant.Validate()
	if got := load(t, append(kafkaBase, "SLUICE_SINK=http", "SLUICE_SINK_HTTP_URL=http://x")...).Sinks.HTTP; !reflect.DeepEqual(got, httpWant) {
		t.Errorf("http sink config with nothing set: %+v, want %+v", got, httpWant)
	}
	for _, sink := range []struct {
		env  []string
		get  func(*Config) any
		want func() any
	}{
		{[]string{"SLUICE_SINK=file", "SLUICE_SINK_FILE_PATH=" + t.TempDir() + "/f"},
			func(c *Config) any { return c.Sinks.File },
			func() any { c := sinks.FileConfig{Path: ""}; _ = c.Validate(); return c }},
		{[]string{"SLUICE_SINK=postgres", "SLUICE_SINK_POSTGRES_DSN=postgres://u@h/db"},
			func(c *Config) any { c.Sinks.Postgres.DSN = ""; return c.Sinks.Postgres },
			func() any { c := sinks.PostgresConfig{}; _ = c.Validate(); return c }},
		{nil, func(c *Config) any { return c.Sinks.Breaker },
			func() any { c := sinks.BreakerConfig{}; _ = c.Validate(); return c }},
	} {
		c := load(t, append(kafkaBase, sink.env...)...)
		got := sink.get(c)
		if fc, ok := got.(sinks.FileConfig); ok {
			fc.Path = ""
			got = fc
		}
		if !reflect.DeepEqual(got, sink.want()) {
			t.Errorf("%v with nothing else set: %+v, want %+v", sink.env, got, sink.want())
		}
	}

	// What the docs (README, `sluice config --env`, the chart's tests) say.
	docs := map[string]string{}
	for _, v := range Vars() {
		docs[v.Name] = v.Default
	}
	for name, want := range map[string]string{
		"SLUICE_WORKERS_MAX":           strconv.Itoa(autoscale.DefaultMax),
		"SLUICE_WORKERS_MIN":           strconv.Itoa(autoscale.DefaultMin),
		"SLUICE_AUTOSCALE_INTERVAL":    fmtDuration(autoscale.DefaultInterval),
		"SLUICE_BUFFER_MAX_RECORDS":    strconv.Itoa(want.MaxRecords),
		"SLUICE_BUFFER_MAX_BYTES":      "64MiB",
		"SLUICE_RETRY_MAX_ELAPSED":     "2m",
		"SLUICE_SINK_HTTP_MAX_CONNS":   strconv.Itoa(httpWant.MaxConns),
		"SLUICE_NATS_ACK_WAIT":         fmtDuration(js.NATS.AckWait),
		"SLUICE_KAFKA_FETCH_MAX_BYTES": "", // derived from the buffer
		"SLUICE_NATS_MAX_ACK_PENDING":  "",
	} {
		if docs[name] != want {
			t.Errorf("the docs give %s the default %q, want %q", name, docs[name], want)
		}
	}
}

// TestDerivedFollowTheirSource: a derived default follows what it is
// derived from instead of the default computed for the docs.
func TestDerivedFollowTheirSource(t *testing.T) {
	cfg := load(t, "SLUICE_SOURCE=jetstream", "SLUICE_NATS_STREAM=S", "SLUICE_BUFFER_MAX_RECORDS=700")
	if n := cfg.Consumer.NATS; n.MaxAckPending != 700 || n.PullMaxRecords != 700 {
		t.Errorf("MaxAckPending %d, PullMaxRecords %d: want both 700 (the buffer)", n.MaxAckPending, n.PullMaxRecords)
	}
	small := load(t, append(kafkaBase, "SLUICE_BUFFER_MAX_BYTES=1MiB")...).Consumer.Kafka.FetchMaxBytes
	large := load(t, append(kafkaBase, "SLUICE_BUFFER_MAX_BYTES=1GiB")...).Consumer.Kafka.FetchMaxBytes
	if small >= large {
		t.Errorf("FetchMaxBytes %d with a 1MiB buffer, %d with 1GiB: want it to follow the buffer", small, large)
	}
}

func TestZeroMeansWhatTheHelpSays(t *testing.T) {
	cfg := load(t, append(kafkaBase, "SLUICE_SINK_BREAKER_FAILURES=0", "SLUICE_AUTOSCALE=false", "SLUICE_WORKERS_MAX=12")...)
	if cfg.Sinks.Breaker.Failures != 0 {
		t.Errorf("SLUICE_SINK_BREAKER_FAILURES=0 gave %d failures, want 0 (no breaker)", cfg.Sinks.Breaker.Failures)
	}
	if cfg.AutoscaleOn || cfg.Consumer.Workers != 12 {
		t.Errorf("SLUICE_AUTOSCALE=false: on %v, workers %d, want a fixed pool of 12", cfg.AutoscaleOn, cfg.Consumer.Workers)
	}
	if _, err := Load(append(kafkaBase, "SLUICE_RETRY_MAX_ATTEMPTS=0")); err == nil || !strings.Contains(err.Error(), "SLUICE_RETRY_MAX_ATTEMPTS") {
		t.Errorf("SLUICE_RETRY_MAX_ATTEMPTS=0 accepted: %v", err)
	}
}

func TestPasswordFromFile(t *testing.T) {
	f := t.TempDir() + "/pw"
	if err := os.WriteFile(f, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := load(t, "SLUICE_KAFKA_BROKERS=127.0.0.1:9092", "SLUICE_KAFKA_TOPICS=a",
		"SLUICE_KAFKA_SASL_MECHANISM=scram-sha-256", "SLUICE_KAFKA_SASL_USERNAME=me",
		"SLUICE_KAFKA_SASL_PASSWORD_FILE="+f)
	if cfg.KafkaAuth.SASLPassword != "s3cret" || len(cfg.Consumer.Kafka.Opts) != 1 {
		t.Fatalf("password %q, %d Kafka options: want the file's content and the SASL option", cfg.KafkaAuth.SASLPassword, len(cfg.Consumer.Kafka.Opts))
	}
	_, err := Load([]string{"SLUICE_KAFKA_BROKERS=x:1", "SLUICE_KAFKA_TOPICS=a",
		"SLUICE_KAFKA_SASL_PASSWORD_FILE=/nonexistent/pw"})
	if err == nil || !strings.Contains(err.Error(), "SLUICE_KAFKA_SASL_PASSWORD_FILE") {
		t.Fatalf("a missing secret file must be named: %v", err)
	}
	_, err = Load(append(kafkaBase, "SLUICE_KAFKA_SASL_PASSWORD=x", "SLUICE_KAFKA_SASL_PASSWORD_FILE="+f))
	if err == nil || !strings.Contains(err.Error(), "not both") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("a secret set twice must be refused without showing it: %v", err)
	}
}

func TestREADMEDocumentsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var env bytes.Buffer
	EnvTable(&env)
	if !bytes.Contains(readme, env.Bytes()) {
		t.Errorf("README.md's environment table is not what the code documents: run `make readme`")
	}
}

func TestNATSEnvironment(t *testing.T) {
	pw := t.TempDir() + "/pw"
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := load(t, "SLUICE_SOURCE=jetstream", "SLUICE_NATS_STREAM=ORDERS", "SLUICE_NATS_SUBJECTS=orders.eu.>,orders.us.>",
		"SLUICE_NATS_USER=me", "SLUICE_NATS_PASSWORD_FILE="+pw, "SLUICE_NATS_ACK_WAIT=1m",
		"SLUICE_NATS_MAX_ACK_PENDING=5000", "SLUICE_NATS_KEY_HEADER=Tenant")
	cc := cfg.Consumer
	n := cc.NATS
	if cc.Source != "jetstream" || n.Stream != "ORDERS" || len(n.Subjects) != 2 || n.User != "me" ||
		n.Password != "s3cret" || n.AckWait != time.Minute || n.MaxAckPending != 5000 || n.KeyHeader != "Tenant" ||
		n.Consumer != "sluice" || n.URL != "nats://127.0.0.1:4222" {
		t.Fatalf("mapped config: source %q, %+v", cc.Source, n)
	}
}

// TestFieldErrorsNameTheVariable: a package's field error is reported
// under the variable that sets the field, with no map kept beside the
// table.
func TestFieldErrorsNameTheVariable(t *testing.T) {
	for _, tc := range []struct{ env, want string }{
		{"SLUICE_KAFKA_START_OFFSET=middle", `SLUICE_KAFKA_START_OFFSET="middle": want earliest or latest`},
		{"SLUICE_SINK_HTTP_METHOD=post", `SLUICE_SINK_HTTP_METHOD="post"`},
		{"SLUICE_SINK_BREAKER_OPEN_TIMEOUT=1ns", `SLUICE_SINK_BREAKER_OPEN_TIMEOUT="1ns"`},
		{"SLUICE_BUFFER_LOW_WATER=0.9", `SLUICE_BUFFER_LOW_WATER="0.9"`},
		{"SLUICE_SINK_HTTP_BODY=json", `SLUICE_SINK_HTTP_BODY="json": want envelope or raw`},
		{"SLUICE_SINK_HTTP_FORWARD_HEADERS=traceparent,Host", `SLUICE_SINK_HTTP_FORWARD_HEADERS="traceparent,Host": want header names`},
		{"SLUICE_KAFKA_ISOLATION=committed", `SLUICE_KAFKA_ISOLATION="committed": want read_committed or read_uncommitted`},
		{"SLUICE_KAFKA_TOPICS_REGEX=orders-.*", `SLUICE_KAFKA_TOPICS_REGEX="orders-.*": want Topics or TopicsRegex, not both`},
		{"SLUICE_KAFKA_INSTANCE_ID=pod a", `SLUICE_KAFKA_INSTANCE_ID="pod a": want at most 249 characters and no spaces`},
	} {
		_, err := Load(append(kafkaBase, "SLUICE_SINK=http", "SLUICE_SINK_HTTP_URL=http://x", tc.env))
		var ce *Error
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a problem %s", tc.env, err, tc.want)
		}
	}
}

// TestListenAddresses: the admin endpoints default to loopback, a port
// apart from the public one; an address without a port, or the admin
// address on the public port, is refused naming the variable.
func TestListenAddresses(t *testing.T) {
	cfg := load(t, kafkaBase...)
	if cfg.HTTPAddr != ":8080" || cfg.AdminAddr != "127.0.0.1:8081" || cfg.DrainExitAfter != 15*time.Second {
		t.Errorf("defaults: http %q admin %q drain exit after %v", cfg.HTTPAddr, cfg.AdminAddr, cfg.DrainExitAfter)
	}
	load(t, append(kafkaBase, "SLUICE_HTTP_ADDR=127.0.0.1:0", "SLUICE_ADMIN_ADDR=127.0.0.1:0", "SLUICE_DRAIN_EXIT_AFTER=0")...)
	for _, tc := range []struct {
		env  []string
		name string
	}{
		{[]string{"SLUICE_ADMIN_ADDR=localhost"}, "SLUICE_ADMIN_ADDR"},
		{[]string{"SLUICE_ADMIN_ADDR="}, ""}, // unset: the default
		{[]string{"SLUICE_HTTP_ADDR=:9090", "SLUICE_ADMIN_ADDR=127.0.0.1:9090"}, "SLUICE_ADMIN_ADDR"},
		{[]string{"SLUICE_DRAIN_EXIT_AFTER=-1s"}, "SLUICE_DRAIN_EXIT_AFTER"},
	} {
		_, err := Load(append(slicesClone(kafkaBase), tc.env...))
		switch {
		case tc.name == "" && err != nil:
			t.Errorf("%v: %v", tc.env, err)
		case tc.name != "" && (err == nil || !strings.Contains(err.Error(), tc.name)):
			t.Errorf("%v: error %v does not name %s", tc.env, err, tc.name)
		}
	}
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }

// TestKafkaSubscriptionAndMembership: the regex replaces the topic list (a
// bad one is refused naming the variable), the client id defaults to the
// host name and can be set, and the membership and fetch settings reach
// the consumer's config.
func TestKafkaSubscriptionAndMembership(t *testing.T) {
	brokers := "SLUICE_KAFKA_BROKERS=127.0.0.1:9092"
	k := load(t, brokers, "SLUICE_KAFKA_TOPICS_REGEX=orders-.*", "SLUICE_KAFKA_INSTANCE_ID=sluice-0",
		"SLUICE_KAFKA_ISOLATION=read_uncommitted", "SLUICE_KAFKA_RACK=eu-west-1a", "SLUICE_KAFKA_CLIENT_ID=c1").Consumer.Kafka
	if k.TopicsRegex != "orders-.*" || len(k.Topics) != 0 || k.InstanceID != "sluice-0" ||
		k.Isolation != "read_uncommitted" || k.Rack != "eu-west-1a" || k.ClientID != "c1" {
		t.Errorf("kafka config: %+v", k)
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		t.Fatalf("no host name: %v", err)
	}
	if k := load(t, kafkaBase...).Consumer.Kafka; k.ClientID != host || k.Isolation != "read_committed" {
		t.Errorf("defaults: client id %q (want the host name %q), isolation %q", k.ClientID, host, k.Isolation)
	}
	for _, tc := range []struct{ env, want string }{
		{"SLUICE_KAFKA_TOPICS_REGEX=orders-(", `SLUICE_KAFKA_TOPICS_REGEX="orders-(": want a regular expression`},
		{"SLUICE_KAFKA_TOPICS_REGEX=", `SLUICE_KAFKA_TOPICS="": want at least one topic`},
	} {
		_, err := Load([]string{brokers, tc.env})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a problem %s", tc.env, err, tc.want)
		}
	}
}

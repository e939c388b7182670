package config

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzLoadConfig feeds Load arbitrary environments: one variable per
// line, as "KEY=value". Whatever it gets, Load must not panic, must be
// deterministic, and must either return a configuration the consumer
// accepts or a *Error that names at least one problem. Variables that
// name files (*_FILE) are dropped: the fuzzer must not make the test read
// /dev/zero.
//
// The seed corpus is in testdata/fuzz/FuzzLoadConfig; CI runs it briefly:
//
//	go test -run '^$' -fuzz FuzzLoadConfig -fuzztime 10s ./internal/config
func FuzzLoadConfig(f *testing.F) {
	for _, seed := range []string{
		"SLUICE_KAFKA_BROKERS=127.0.0.1:9092\nSLUICE_KAFKA_TOPICS=orders",
		"SLUICE_KAFKA_BROKERS=a:1,b:2\nSLUICE_KAFKA_TOPICS=t1,t2\nSLUICE_BUFFER_MAX_BYTES=1GiB\nSLUICE_BUFFER_MAX_RECORDS=5000",
		"SLUICE_KAFKA_BROKERS=k:9092\nSLUICE_KAFKA_TOPICS=t\nSLUICE_BUFFER_HIGH_WATER=0.5\nSLUICE_BUFFER_LOW_WATER=0.6",
		"SLUICE_KAFKA_BROKERS=k:9092\nSLUICE_KAFKA_TOPICS=t\nSLUICE_KAFKA_SASL_MECHANISM=scram-sha-512\nSLUICE_KAFKA_SASL_USERNAME=u\nSLUICE_KAFKA_SASL_PASSWORD=hunter2",
		"SLUICE_KAFKA_BROKERS=k:9092\nSLUICE_KAFKA_TOPICS=t\nSLUICE_COMMIT_INTERVAL=-1s\nSLUICE_WORKERS_MIN=9\nSLUICE_WORKERS_MAX=3",
		"SLUICE_ORDERING=sideways\nSLUICE_SINK=tape\nSLUICE_NOPE=1\nSLUICE_BUFFER_MAX_BYTES=lots",
		"SLUICE_KAFKA_FETCH_MAX_WAIT=1ns\nSLUICE_BATCH_MAX=0\nSLUICE_HTTP_ADDR=",
		"",
		"=\n==\nSLUICE_=\nPATH=/usr/bin",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data string) {
		environ := fuzzEnviron(data)
		cfg, err := Load(environ)
		cfg2, err2 := Load(environ)
		if (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() {
			t.Fatalf("not deterministic: %v then %v", err, err2)
		}
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error is %T, want *Error: %v", err, err)
			}
			if len(ce.Problems) == 0 {
				t.Fatal("configError with no problems")
			}
			for _, p := range ce.Problems {
				if strings.TrimSpace(p) == "" {
					t.Fatalf("empty problem in %q", ce.Problems)
				}
			}
			return
		}
		if cfg == nil {
			t.Fatal("nil config and nil error")
		}
		if cfg2 == nil {
			t.Fatal("second load: nil config")
		}
		if err := cfg.Consumer.Validate(); err != nil {
			t.Fatalf("Load accepted what the consumer refuses: %v", err)
		}
		var out bytes.Buffer
		Print(&out, environ, cfg)
		if pw := cfg.KafkaAuth.SASLPassword; len(pw) >= 6 && !strings.Contains(cfgWithoutSecret(environ), pw) &&
			strings.Contains(out.String(), pw) {
			t.Fatalf("Print shows the SASL password:\n%s", out.String())
		}
	})
}

// fuzzEnviron turns fuzz data into an environment, dropping file variables.
func fuzzEnviron(data string) []string {
	var env []string
	for _, line := range strings.Split(data, "\n") {
		k, _, _ := strings.Cut(line, "=")
		if strings.Contains(k, "_FILE") {
			continue
		}
		env = append(env, line)
	}
	return env
}

// cfgWithoutSecret is every value but the password's, to tell a password
// that leaks from one that is also, by chance, another variable's value.
func cfgWithoutSecret(environ []string) string {
	var b strings.Builder
	for _, kv := range environ {
		if !strings.HasPrefix(kv, "SLUICE_KAFKA_SASL_PASSWORD=") {
			b.WriteString(kv)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

package config

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// envOAuthBrokers points TestOAuthBearerRealBroker at a broker listener
// that takes SASL OAUTHBEARER with Kafka's unsecured JWT validator (see
// docs/KAFKA.md for the broker properties).
const envOAuthBrokers = "SLUICEDEV_TEST_KAFKA_OAUTH_BROKERS"

// unsecuredJWT is a JWT with no signature (alg none), as Kafka's unsecured
// validator takes: subject sub, valid until exp.
func unsecuredJWT(t *testing.T, sub string, exp time.Time) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	now := time.Now().Add(-time.Minute)
	return enc(map[string]any{"alg": "none"}) + "." +
		enc(map[string]any{"sub": sub, "iat": now.Unix(), "exp": exp.Unix()}) + "."
}

// TestOAuthBearerConfig: oauthbearer needs a token file that exists, and
// the file without the mechanism is a mistake; both named.
func TestOAuthBearerConfig(t *testing.T) {
	f := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	load(t, append(kafkaBase, "SLUICE_KAFKA_SASL_MECHANISM=oauthbearer", "SLUICE_KAFKA_SASL_OAUTH_TOKEN_FILE="+f)...)
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"SLUICE_KAFKA_SASL_MECHANISM=oauthbearer"}, "SLUICE_KAFKA_SASL_OAUTH_TOKEN_FILE=\"\": required"},
		{[]string{"SLUICE_KAFKA_SASL_MECHANISM=oauthbearer", "SLUICE_KAFKA_SASL_OAUTH_TOKEN_FILE=/nonexistent/t"}, "cannot read the file"},
		{[]string{"SLUICE_KAFKA_SASL_OAUTH_TOKEN_FILE=" + f}, "only with SLUICE_KAFKA_SASL_MECHANISM=oauthbearer"},
	} {
		_, err := Load(append(slicesClone(kafkaBase), tc.env...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.env, err, tc.want)
		}
	}
}

// TestOAuthBearerRealBroker: against a real broker's OAUTHBEARER listener
// (unsecured JWT validator), the token in the file authenticates; after the
// file is replaced by an expired token a new connection is refused, and
// after it is replaced by a fresh one a new connection is accepted again:
// the file is read at every authentication, not once at start. The
// broker's refusal does not quote the token.
func TestOAuthBearerRealBroker(t *testing.T) {
	brokers := os.Getenv(envOAuthBrokers)
	if brokers == "" {
		t.Skip(envOAuthBrokers + " unset: no broker with an OAUTHBEARER listener (docs/KAFKA.md says how to start one)")
	}
	f := filepath.Join(t.TempDir(), "token")
	write := func(tok string) {
		t.Helper()
		// Written aside and renamed, as the kubelet swaps a projected token.
		tmp := f + ".new"
		if err := os.WriteFile(tmp, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f); err != nil {
			t.Fatal(err)
		}
	}
	write(unsecuredJWT(t, "sluice-a", time.Now().Add(time.Hour)))
	cfg := load(t, "SLUICE_KAFKA_BROKERS="+brokers, "SLUICE_KAFKA_TOPICS=t",
		"SLUICE_KAFKA_SASL_MECHANISM=oauthbearer", "SLUICE_KAFKA_SASL_OAUTH_TOKEN_FILE="+f)
	connect := func() error {
		t.Helper()
		opts := append([]kgo.Opt{kgo.SeedBrokers(cfg.Consumer.Kafka.Brokers...), kgo.RequestRetries(0)}, cfg.Consumer.Kafka.Opts...)
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return cl.Ping(ctx)
	}
	if err := connect(); err != nil {
		t.Fatalf("a valid token: %v", err)
	}
	expired := unsecuredJWT(t, "sluice-b", time.Now().Add(-30*time.Second))
	write(expired)
	err := connect()
	if err == nil {
		t.Fatal("an expired token was accepted: the file was not read again")
	}
	if strings.Contains(err.Error(), expired) {
		t.Errorf("the error quotes the token: %v", err)
	}
	t.Logf("expired token refused: %v", err)
	write(unsecuredJWT(t, "sluice-c", time.Now().Add(time.Hour)))
	if err := connect(); err != nil {
		t.Fatalf("a fresh token after an expired one: %v", err)
	}
}

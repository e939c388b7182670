package config

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/aws"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// opts turns the TLS and SASL settings into franz-go options, reading the
// certificate files.
func (a KafkaAuth) opts() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if a.TLSEnabled {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if a.TLSCAFile != "" {
			pem, err := os.ReadFile(a.TLSCAFile)
			if err != nil {
				return nil, fmt.Errorf("SLUICE_KAFKA_TLS_CA_FILE: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("SLUICE_KAFKA_TLS_CA_FILE: no PEM certificate in %s", a.TLSCAFile)
			}
			tc.RootCAs = pool
		}
		if a.TLSCertFile != "" && a.TLSKeyFile != "" {
			cert, err := tls.LoadX509KeyPair(a.TLSCertFile, a.TLSKeyFile)
			if err != nil {
				return nil, fmt.Errorf("SLUICE_KAFKA_TLS_CERT_FILE/KEY_FILE: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	switch a.SASLMechanism {
	case "plain":
		opts = append(opts, kgo.SASL(plain.Auth{User: a.SASLUsername, Pass: a.SASLPassword}.AsMechanism()))
	case "scram-sha-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: a.SASLUsername, Pass: a.SASLPassword}.AsSha256Mechanism()))
	case "scram-sha-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: a.SASLUsername, Pass: a.SASLPassword}.AsSha512Mechanism()))
	case "oauthbearer":
		opts = append(opts, kgo.SASL(oauth.Oauth(tokenFile(a.SASLOAuthTokenFile))))
	case "aws-msk-iam":
		sts := &http.Client{Timeout: 30 * time.Second}
		opts = append(opts, kgo.SASL(aws.ManagedStreamingIAM(a.aws.mechanism(sts))))
	}
	return opts, nil
}

// tokenFile returns the OAUTHBEARER token source: the file is read at
// every authentication (each new connection, and each re-authentication
// before the broker's session lifetime ends), so a token rotated in place,
// as the kubelet rotates a projected service-account token, is used from
// the next one on. The token is never logged or put into an error.
func tokenFile(path string) func(context.Context) (oauth.Auth, error) {
	return func(context.Context) (oauth.Auth, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return oauth.Auth{}, fmt.Errorf("SLUICE_KAFKA_SASL_OAUTH_TOKEN_FILE: %w", err)
		}
		token := strings.TrimSpace(string(b))
		if token == "" {
			return oauth.Auth{}, errors.New("SLUICE_KAFKA_SASL_OAUTH_TOKEN_FILE: the file is empty")
		}
		return oauth.Auth{Token: token}, nil
	}
}

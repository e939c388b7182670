package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/twmb/franz-go/pkg/kgo"
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
	}
	return opts, nil
}

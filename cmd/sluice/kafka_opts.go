package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// kafkaOpts turns the TLS and SASL variables into franz-go options.
func (c *envConfig) kafkaOpts() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if c.KafkaTLSEnabled {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.KafkaTLSCAFile != "" {
			pem, err := os.ReadFile(c.KafkaTLSCAFile)
			if err != nil {
				return nil, fmt.Errorf("SLUICE_KAFKA_TLS_CA_FILE: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("SLUICE_KAFKA_TLS_CA_FILE: no PEM certificate in %s", c.KafkaTLSCAFile)
			}
			tc.RootCAs = pool
		}
		if c.KafkaTLSCertFile != "" {
			cert, err := tls.LoadX509KeyPair(c.KafkaTLSCertFile, c.KafkaTLSKeyFile)
			if err != nil {
				return nil, fmt.Errorf("SLUICE_KAFKA_TLS_CERT_FILE/KEY_FILE: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	pass := c.KafkaSASLPassword
	if pass == "" {
		pass = strings.TrimRight(c.KafkaSASLPasswordFile, "\r\n")
	}
	switch c.KafkaSASLMechanism {
	case "plain":
		opts = append(opts, kgo.SASL(plain.Auth{User: c.KafkaSASLUsername, Pass: pass}.AsMechanism()))
	case "scram-sha-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: c.KafkaSASLUsername, Pass: pass}.AsSha256Mechanism()))
	case "scram-sha-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: c.KafkaSASLUsername, Pass: pass}.AsSha512Mechanism()))
	}
	return opts, nil
}

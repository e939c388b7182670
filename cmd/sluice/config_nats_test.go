package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/sluicehq/sluice/internal/testutil"
)

func TestBadNATSEnvironmentNamesTheVariables(t *testing.T) {
	for _, tc := range []struct {
		name    string
		environ []string
		want    []string
	}{
		{"jetstream without a stream", []string{"SLUICE_SOURCE=jetstream"}, []string{"SLUICE_NATS_STREAM"}},
		{"nats without subjects", []string{"SLUICE_SOURCE=nats"}, []string{"SLUICE_NATS_SUBJECTS"}},
		{"unknown source", []string{"SLUICE_SOURCE=rabbit"}, []string{"SLUICE_SOURCE", "jetstream", "nats"}},
		{"missing creds file", []string{"SLUICE_SOURCE=jetstream", "SLUICE_NATS_STREAM=S",
			"SLUICE_NATS_CREDS_FILE=/nonexistent/user.creds"}, []string{"SLUICE_NATS_CREDS_FILE", "cannot read"}},
		{"two kinds of credentials", []string{"SLUICE_SOURCE=nats", "SLUICE_NATS_SUBJECTS=a",
			"SLUICE_NATS_USER=me", "SLUICE_NATS_TOKEN=t"}, []string{"SLUICE_NATS_CREDS_FILE", "at most one"}},
		{"bad durations and sizes", []string{"SLUICE_SOURCE=jetstream", "SLUICE_NATS_STREAM=S",
			"SLUICE_NATS_ACK_WAIT=1ms", "SLUICE_NATS_DELIVER=last", "SLUICE_NATS_PENDING_BYTES=lots"},
			[]string{"SLUICE_NATS_ACK_WAIT", "SLUICE_NATS_DELIVER", "SLUICE_NATS_PENDING_BYTES"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), []string{"config"}, tc.environ, &stdout, &stderr); code != 2 {
				t.Fatalf("exit %d, want 2; stderr:\n%s", code, stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
		})
	}
}

// Credentials the server rejects: the service says so and exits non-zero
// at start, instead of retrying forever.
func TestServiceExitsOnBadNATSCredentials(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: t.TempDir(), NoLog: true, NoSigs: true, Username: "sluice", Password: "right"})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	for _, source := range []string{"jetstream", "nats"} {
		t.Run(source, func(t *testing.T) {
			environ := []string{
				"SLUICE_SOURCE=" + source, "SLUICE_NATS_URL=" + srv.ClientURL(), "SLUICE_NATS_STREAM=S",
				"SLUICE_NATS_SUBJECTS=s.>", "SLUICE_NATS_USER=sluice", "SLUICE_NATS_PASSWORD=wrong",
				"SLUICE_SINK=noop", "SLUICE_HTTP_ADDR=127.0.0.1:0", "SLUICE_ADMIN_ADDR=127.0.0.1:0",
			}
			var stdout, stderr testutil.SyncBuffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			code := run(ctx, []string{"run"}, environ, &stdout, &stderr)
			if ctx.Err() != nil {
				t.Fatal("sluice kept running with rejected credentials")
			}
			if code == 0 {
				t.Fatalf("exit 0 with rejected credentials; stderr:\n%s", stderr.String())
			}
			if !strings.Contains(stderr.String(), "rejected the credentials") {
				t.Errorf("the error does not say the credentials were rejected:\n%s", stderr.String())
			}
		})
	}
}

package sinks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/consumer"
	"github.com/sluicehq/sluice/sinks"
	"github.com/sluicehq/sluice/sinks/sinktest"
)

// postgresDSN returns the test database, or skips loudly without one.
func postgresDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("SLUICEDEV_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("SKIPPED: PostgreSQL tests need a server: export SLUICEDEV_TEST_POSTGRES_DSN=$(scripts/postgres.sh start) (make test does it)")
	}
	return dsn
}

var pgTableSeq atomic.Int64

// pgTable returns a table name unique to this run, dropped after the test.
func pgTable(t testing.TB, dsn string) string {
	name := fmt.Sprintf("sink_test_%d_%d", time.Now().UnixNano()%1e9, pgTableSeq.Add(1))
	t.Cleanup(func() { pgExec(t, dsn, "DROP TABLE IF EXISTS "+name) })
	return name
}

func pgExec(t testing.TB, dsn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func newPostgres(t testing.TB, dsn, table string, create bool) *sinks.Postgres {
	t.Helper()
	s, err := sinks.NewPostgres(sinks.PostgresConfig{DSN: dsn, Table: table, CreateTable: create})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Setup(ctx); err != nil {
		s.Close(ctx)
		t.Fatal(err)
	}
	return s
}

func readPostgres(t *testing.T, dsn, table string) []sinktest.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT key, value, headers FROM `+table+` ORDER BY source, topic, "partition", "offset"`)
	if err != nil {
		t.Fatal(err)
	}
	var out []sinktest.Record
	for rows.Next() {
		var r sinktest.Record
		var hdr []byte
		if err := rows.Scan(&r.Key, &r.Value, &hdr); err != nil {
			t.Fatal(err)
		}
		if hdr != nil {
			if err := json.Unmarshal(hdr, &r.Headers); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPostgresSuite(t *testing.T) {
	dsn := postgresDSN(t)
	sinktest.Run(t, sinktest.Harness{
		New: func(t *testing.T) (consumer.Sink, sinktest.ReadFunc) {
			table := pgTable(t, dsn)
			return newPostgres(t, dsn, table, true), func(t *testing.T, _ int) []sinktest.Record {
				return readPostgres(t, dsn, table)
			}
		},
		Headers: true, Idempotent: true,
	})
}

func TestPostgresReplayLeavesOneRowPerRecord(t *testing.T) {
	dsn := postgresDSN(t)
	table := pgTable(t, dsn)
	s := newPostgres(t, dsn, table, true)
	defer s.Close(context.Background())
	msgs := sinktest.Messages(1000)
	ctx := context.Background()
	for round := range 3 { // the first delivery, then two full replays (batches and singles)
		if round == 1 {
			for _, m := range msgs {
				if err := s.Deliver(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			continue
		}
		for i := 0; i < len(msgs); i += 256 {
			if n, err := s.DeliverBatch(ctx, msgs[i:min(len(msgs), i+256)]); err != nil {
				t.Fatalf("batch at %d: %d, %v", i, n, err)
			}
		}
	}
	rows := readPostgres(t, dsn, table)
	if len(rows) != len(msgs) {
		t.Fatalf("%d rows after 3 deliveries of %d records, want exactly one each", len(rows), len(msgs))
	}
}

func TestPostgresSaysWhatIsWrongWithTheTable(t *testing.T) {
	dsn := postgresDSN(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	missing := pgTable(t, dsn)
	s, err := sinks.NewPostgres(sinks.PostgresConfig{DSN: dsn, Table: missing})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Setup(ctx)
	s.Close(ctx)
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "CREATE_TABLE") {
		t.Errorf("missing table: %v", err)
	}

	bad := pgTable(t, dsn)
	pgExec(t, dsn, `CREATE TABLE `+bad+` (source text, topic text, "partition" bigint, value text)`)
	s, err = sinks.NewPostgres(sinks.PostgresConfig{DSN: dsn, Table: bad, CreateTable: true})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Setup(ctx)
	s.Close(ctx)
	if err == nil {
		t.Fatal("a table that does not fit passed Setup")
	}
	for _, want := range []string{`missing column "offset" bigint`, `column "partition" is bigint, want integer`,
		`column "value" is text, want bytea`, "no primary key or unique index"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}
}

func TestPostgresRejectedRowIsPermanent(t *testing.T) {
	dsn := postgresDSN(t)
	table := pgTable(t, dsn)
	s := newPostgres(t, dsn, table, true)
	defer s.Close(context.Background())
	pgExec(t, dsn, `ALTER TABLE `+table+` ADD CONSTRAINT small CHECK (length(value) < 100)`)
	m := sinktest.Messages(1)[0]
	m.Value = make([]byte, 200)
	err := s.Deliver(context.Background(), m)
	if !consumer.IsPermanent(err) {
		t.Errorf("check violation: %v, want a permanent error", err)
	}
}

package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluicehq/sluice/consumer"
)

// PostgresConfig configures the PostgreSQL sink. The zero value of each field
// means its documented default.
type PostgresConfig struct {
	// DSN says where to connect, as a URL or key=value string (required).
	DSN string
	// Table receives the rows (default sluice_records); it may name a
	// schema ("events.orders"). See [Postgres] for the columns it needs.
	Table string
	// CreateTable creates the table (and nothing else) at Setup when it does
	// not exist (default false: a missing table is an error).
	CreateTable bool
	// MaxConns bounds the pool (default 8). A worker holds a connection only
	// for one statement.
	MaxConns int
	// Timeout bounds one statement (default 30 s).
	Timeout time.Duration
}

func (c *PostgresConfig) setDefaults() {
	if c.Table == "" {
		c.Table = "sluice_records"
	}
	if c.MaxConns == 0 {
		c.MaxConns = 8
	}
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
}

var tableName = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*\.)?[A-Za-z_][A-Za-z0-9_]*$`)

// Validate fills in defaults and reports every invalid field.
func (c *PostgresConfig) Validate() error {
	c.setDefaults()
	var errs []error
	bad := func(field string, v any, want string) {
		errs = append(errs, &consumer.FieldError{Field: "Postgres." + field, Value: v, Want: want})
	}
	if _, err := pgxpool.ParseConfig(c.DSN); c.DSN == "" || err != nil {
		bad("DSN", "<redacted>", "want a PostgreSQL URL (postgres://user@host:5432/db) or key=value DSN")
	}
	if !tableName.MatchString(c.Table) {
		bad("Table", c.Table, "want table or schema.table (letters, digits, _)")
	}
	if c.MaxConns < 1 {
		bad("MaxConns", c.MaxConns, "want at least 1")
	}
	if c.Timeout < time.Millisecond {
		bad("Timeout", c.Timeout, "want at least 1ms")
	}
	return errors.Join(errs...)
}

// postgresColumns are the columns the sink writes, with the types it needs.
var postgresColumns = []struct{ name, typ string }{
	{"source", "text"}, {"topic", "text"}, {"partition", "integer"}, {"offset", "bigint"},
	{"key", "bytea"}, {"value", "bytea"}, {"headers", "jsonb"}, {"time", "timestamp with time zone"},
}

// Postgres inserts messages as rows of a table, one statement per batch:
//
//	CREATE TABLE sluice_records (
//	    source      text        NOT NULL,  -- kafka, jetstream or nats
//	    topic       text        NOT NULL,  -- topic, stream or subject
//	    "partition" integer     NOT NULL,  -- 0 for NATS
//	    "offset"    bigint      NOT NULL,  -- offset, or stream sequence
//	    key         bytea,
//	    value       bytea,
//	    headers     jsonb,                 -- {"name": "value", ...}
//	    "time"      timestamptz,
//	    inserted_at timestamptz NOT NULL DEFAULT now(),
//	    PRIMARY KEY (source, topic, "partition", "offset")
//	);
//
// It is idempotent: a record that is delivered again (after a crash or a
// rebalance) hits the primary key and is skipped (ON CONFLICT DO NOTHING),
// so at-least-once delivery leaves exactly one row per record. A table may
// have more columns (with defaults); it must have these, with these types,
// and a unique key on exactly the first four. Setup checks that.
//
// Errors: a row the database rejects (bad data, a failed constraint) is
// permanent; a database that cannot be reached, or is shutting down or out
// of resources, is unavailable; the rest is transient. Safe for concurrent
// use; Close closes the pool.
type Postgres struct {
	cfg    PostgresConfig
	pool   *pgxpool.Pool
	table  string // quoted
	insert string
	closed atomic.Bool
}

var (
	_ consumer.Sink      = (*Postgres)(nil)
	_ consumer.BatchSink = (*Postgres)(nil)
	_ consumer.Pinger    = (*Postgres)(nil)
)

// NewPostgres validates cfg and creates the connection pool. It connects
// lazily; call Setup before the first delivery to check (or create) the table.
func NewPostgres(cfg PostgresConfig) (*Postgres, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	pc.MaxConns = int32(cfg.MaxConns)
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	var parts []string
	for _, p := range strings.Split(cfg.Table, ".") {
		parts = append(parts, pgx.Identifier{p}.Sanitize())
	}
	table := strings.Join(parts, ".")
	return &Postgres{
		cfg: cfg, pool: pool, table: table,
		insert: `INSERT INTO ` + table + ` (source, topic, "partition", "offset", key, value, headers, "time")
SELECT * FROM unnest($1::text[], $2::text[], $3::integer[], $4::bigint[], $5::bytea[], $6::bytea[], $7::jsonb[], $8::timestamptz[])
ON CONFLICT (source, topic, "partition", "offset") DO NOTHING`,
	}, nil
}

// Setup connects and checks that the table has the columns and unique key
// the sink needs, creating it first when CreateTable is set and it does not
// exist. The error names everything that is wrong.
func (p *Postgres) Setup(ctx context.Context) error {
	var exists bool
	if err := p.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, p.table).Scan(&exists); err != nil {
		return pgError(fmt.Errorf("postgres: connect: %w", err))
	}
	if !exists {
		if !p.cfg.CreateTable {
			return fmt.Errorf("postgres: table %s does not exist; create it (see docs/SINKS.md) or set CreateTable (SLUICE_SINK_POSTGRES_CREATE_TABLE=true)", p.cfg.Table)
		}
		_, err := p.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+p.table+` (
	source      text        NOT NULL,
	topic       text        NOT NULL,
	"partition" integer     NOT NULL,
	"offset"    bigint      NOT NULL,
	key         bytea,
	value       bytea,
	headers     jsonb,
	"time"      timestamptz,
	inserted_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (source, topic, "partition", "offset"))`)
		if err != nil {
			return fmt.Errorf("postgres: create table %s: %w", p.cfg.Table, err)
		}
	}
	return p.checkTable(ctx)
}

func (p *Postgres) checkTable(ctx context.Context) error {
	rows, err := p.pool.Query(ctx, `SELECT a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`, p.table)
	if err != nil {
		return pgError(fmt.Errorf("postgres: read columns of %s: %w", p.cfg.Table, err))
	}
	have := map[string]string{}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return fmt.Errorf("postgres: read columns of %s: %w", p.cfg.Table, err)
		}
		have[name] = typ
	}
	if err := rows.Err(); err != nil {
		return pgError(fmt.Errorf("postgres: read columns of %s: %w", p.cfg.Table, err))
	}
	var problems []string
	for _, c := range postgresColumns {
		switch typ, ok := have[c.name]; {
		case !ok:
			problems = append(problems, fmt.Sprintf("missing column %q %s", c.name, c.typ))
		case typ != c.typ:
			problems = append(problems, fmt.Sprintf("column %q is %s, want %s", c.name, typ, c.typ))
		}
	}
	// ON CONFLICT needs a unique index on exactly (source, topic, partition, offset).
	var unique bool
	err = p.pool.QueryRow(ctx, `SELECT EXISTS (
	SELECT 1 FROM pg_index i WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indpred IS NULL
	AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_attribute a
	     WHERE a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)) = ARRAY['offset','partition','source','topic']
	AND i.indnkeyatts = 4)`, p.table).Scan(&unique)
	if err != nil {
		return pgError(fmt.Errorf("postgres: read indexes of %s: %w", p.cfg.Table, err))
	}
	if !unique {
		problems = append(problems, `no primary key or unique index on exactly (source, topic, "partition", "offset"): it makes replays idempotent`)
	}
	if len(problems) > 0 {
		return fmt.Errorf("postgres: table %s does not fit: %s", p.cfg.Table, strings.Join(problems, "; "))
	}
	return nil
}

// Deliver inserts m (or skips it if its row is there already).
func (p *Postgres) Deliver(ctx context.Context, m *consumer.Message) error {
	_, err := p.DeliverBatch(ctx, []*consumer.Message{m})
	return err
}

// DeliverBatch inserts msgs in one statement: all of them or none.
func (p *Postgres) DeliverBatch(ctx context.Context, msgs []*consumer.Message) (int, error) {
	if p.closed.Load() {
		return 0, fmt.Errorf("postgres: %w", ErrClosed)
	}
	n := len(msgs)
	sources, topics := make([]string, n), make([]string, n)
	parts, offsets := make([]int32, n), make([]int64, n)
	keys, values := make([][]byte, n), make([][]byte, n)
	headers, times := make([][]byte, n), make([]*time.Time, n)
	for i, m := range msgs {
		sources[i], topics[i], parts[i], offsets[i] = m.Source, m.Topic, m.Partition, m.Offset
		keys[i], values[i] = m.Key, m.Value
		if len(m.Headers) > 0 {
			hm := make(map[string]string, len(m.Headers))
			for _, h := range m.Headers {
				hm[h.Key] = string(h.Value)
			}
			headers[i], _ = json.Marshal(hm)
		}
		if !m.Time.IsZero() {
			t := m.Time
			times[i] = &t
		}
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	if _, err := p.pool.Exec(ctx, p.insert, sources, topics, parts, offsets, keys, values, headers, times); err != nil {
		return 0, pgError(fmt.Errorf("postgres: insert into %s: %w", p.cfg.Table, err))
	}
	return n, nil
}

// pgError marks what a retry cannot fix as permanent and a database that
// is not there as unavailable.
func pgError(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "22"), strings.HasPrefix(pe.Code, "23"):
			// data exception, integrity constraint violation: this row.
			return consumer.Permanent(err)
		case strings.HasPrefix(pe.Code, "08"), strings.HasPrefix(pe.Code, "53"),
			strings.HasPrefix(pe.Code, "57P"):
			// connection exception, insufficient resources, shutting down.
			return consumer.Unavailable(err)
		}
		return err
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return consumer.Unavailable(err)
	}
	return unavailableIfDial(err)
}

// Ping checks that the database answers.
func (p *Postgres) Ping(ctx context.Context) error { return pgError(p.pool.Ping(ctx)) }

// Close closes the pool, waiting for connections in use. It is idempotent.
func (p *Postgres) Close(context.Context) error {
	p.closed.Store(true)
	p.pool.Close()
	return nil
}

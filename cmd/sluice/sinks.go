package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/consumer"
	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/sinks"
)

// buildSinks builds the sink SLUICE_SINK names, instrumented and behind a
// circuit breaker (noop bare: it measures the pipeline itself), and the
// dead-letter destination (nil when none). It checks a PostgreSQL table
// before returning. On error it closes what it built. The caller closes
// both after the consumer has stopped.
func buildSinks(ctx context.Context, cfg *config.Config, stdout io.Writer, reg prometheus.Registerer, log *slog.Logger) (sink, dlq consumer.Sink, err error) {
	base, err := baseSink(ctx, cfg, stdout)
	if err != nil || cfg.Sink == "noop" {
		return base, nil, err
	}
	opts := []sinks.Option{sinks.WithRegisterer(reg), sinks.WithLogger(log)}
	sink = sinks.Instrument(base, cfg.Sink, opts...)
	if cfg.Sinks.Breaker.Failures > 0 {
		sink, err = sinks.NewBreaker(sink, cfg.Sink, cfg.Sinks.Breaker, opts...)
		if err != nil {
			_ = sinks.Close(ctx, base)
			return nil, nil, err
		}
	}
	switch {
	case cfg.DLQ.Topic != "":
		dlq, err = orNil(sinks.NewKafka(cfg.DeadLetterKafka()))
	case cfg.DLQ.Subject != "":
		dlq, err = orNil(sinks.NewNATS(cfg.DeadLetterNATS()))
	}
	if err != nil {
		_ = sinks.Close(ctx, sink)
		return nil, nil, fmt.Errorf("dead-letter destination: %w", err)
	}
	if dlq != nil {
		dlq = sinks.Instrument(dlq, "dead_letter", opts...)
	}
	return sink, dlq, nil
}

// baseSink builds the sink itself. It returns a nil interface on error.
func baseSink(ctx context.Context, cfg *config.Config, stdout io.Writer) (consumer.Sink, error) {
	s := cfg.Sinks
	switch cfg.Sink {
	case "noop":
		return sinks.Noop{}, nil
	case "stdout":
		return sinks.NewStdout(stdout), nil
	case "file":
		return orNil(sinks.NewFile(s.File))
	case "http":
		return orNil(sinks.NewHTTP(s.HTTP))
	case "nats":
		return orNil(sinks.NewNATS(s.NATS))
	case "kafka":
		return orNil(sinks.NewKafka(s.Kafka))
	case "postgres":
		pg, err := sinks.NewPostgres(s.Postgres)
		if err != nil {
			return nil, err
		}
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := pg.Setup(sctx); err != nil {
			_ = pg.Close(ctx)
			return nil, err
		}
		return pg, nil
	}
	return nil, fmt.Errorf("unknown sink %q", cfg.Sink)
}

// orNil turns a constructor's (typed nil, error) into (nil interface, error).
func orNil[S consumer.Sink](s S, err error) (consumer.Sink, error) {
	if err != nil {
		return nil, err
	}
	return s, nil
}

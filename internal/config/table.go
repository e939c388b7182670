package config

// setting declares one variable. to is the path, in Config, of the field
// its value goes to; a field error from the owning package's Validate names
// the same path, so errors map back to the variable with no second table.
type setting struct {
	name string // after SLUICE_
	to   string // field path in Config
	help string

	secret  bool // redacted by `sluice config` and in errors
	url     bool // URL(s): shown with the userinfo and query values redacted (consumer.RedactURL)
	file    bool // the value names a file whose content goes to `to` (X_FILE beside X)
	size    bool // a byte size with units (64MiB, 1GB)
	derived bool // left zero unless set: the owner derives it from other settings
}

// table is every variable, in the order the docs list them.
var table = []setting{
	{name: "SOURCE", to: "Consumer.Source", help: "where messages come from: kafka, jetstream (NATS JetStream, at least once) or nats (core NATS, at most once)"},

	{name: "NATS_URL", to: "Consumer.NATS.URL", url: true, help: "jetstream and nats sources: server URL(s), comma separated; tls:// requires TLS"},
	{name: "NATS_NAME", to: "Consumer.NATS.Name", help: "jetstream and nats sources: connection name the server shows"},
	{name: "NATS_STREAM", to: "Consumer.NATS.Stream", help: "jetstream source: the stream to consume (required for SLUICE_SOURCE=jetstream)"},
	{name: "NATS_CONSUMER", to: "Consumer.NATS.Consumer", help: "jetstream source: durable pull consumer; replicas with the same name share the messages"},
	{name: "NATS_BIND", to: "Consumer.NATS.Bind", help: "jetstream source: use the consumer as it is (it must exist; its AckWait and MaxAckPending apply) instead of creating or updating it"},
	{name: "NATS_SUBJECTS", to: "Consumer.NATS.Subjects", help: "jetstream: the consumer's filter subjects (default: the whole stream); nats: subjects to subscribe to, wildcards allowed (required for SLUICE_SOURCE=nats)"},
	{name: "NATS_DELIVER", to: "Consumer.NATS.Deliver", help: "jetstream source: where a newly created consumer starts: all or new"},
	{name: "NATS_ACK_WAIT", to: "Consumer.NATS.AckWait", help: "jetstream source: the server redelivers a message not acked within this; messages held longer than half of it get InProgress"},
	{name: "NATS_MAX_ACK_PENDING", to: "Consumer.NATS.MaxAckPending", derived: true, help: "jetstream source: most messages out unacked, all replicas together (default: SLUICE_BUFFER_MAX_RECORDS; set replicas x buffer when scaling out)"},
	{name: "NATS_PULL_MAX_RECORDS", to: "Consumer.NATS.PullMaxRecords", derived: true, help: "jetstream source: most records one pull asks for (default: 50000, at most the buffer); pulls are sized from the buffer's free room"},
	{name: "NATS_PULL_MAX_WAIT", to: "Consumer.NATS.PullMaxWait", help: "jetstream source: how long a pull waits at the server while the stream is idle"},
	{name: "NATS_DOUBLE_ACK", to: "Consumer.NATS.DoubleAck", help: "jetstream source: wait for the server to confirm each ack (slower; a lost ack is logged instead of redelivered silently)"},
	{name: "NATS_KEY_HEADER", to: "Consumer.NATS.KeyHeader", help: "jetstream and nats sources: header holding the ordering key (default: the subject is the key)"},
	{name: "NATS_INFO_INTERVAL", to: "Consumer.NATS.InfoInterval", help: "jetstream source: how often the consumer's state (num_pending, num_ack_pending: the lag) is read"},
	{name: "NATS_QUEUE", to: "Consumer.NATS.Queue", help: "nats source: queue group; replicas in one group share the messages"},
	{name: "NATS_PENDING_MSGS", to: "Consumer.NATS.PendingMsgs", help: "nats source: messages the client buffers beyond the buffer before it drops them (core NATS cannot pause; drops are counted)"},
	{name: "NATS_PENDING_BYTES", to: "Consumer.NATS.PendingBytes", size: true, help: "nats source: bytes the client buffers beyond the buffer before it drops messages"},
	{name: "NATS_USER", to: "Consumer.NATS.User", help: "jetstream and nats sources: user name (with SLUICE_NATS_PASSWORD)"},
	{name: "NATS_PASSWORD", to: "Consumer.NATS.Password", secret: true, help: "jetstream and nats sources: password (prefer _FILE)"},
	{name: "NATS_PASSWORD_FILE", to: "Consumer.NATS.Password", secret: true, file: true, help: "jetstream and nats sources: file holding the password (e.g. a mounted Secret)"},
	{name: "NATS_TOKEN", to: "Consumer.NATS.Token", secret: true, help: "jetstream and nats sources: token (prefer _FILE)"},
	{name: "NATS_TOKEN_FILE", to: "Consumer.NATS.Token", secret: true, file: true, help: "jetstream and nats sources: file holding the token"},
	{name: "NATS_CREDS_FILE", to: "Consumer.NATS.CredsFile", help: "jetstream and nats sources: credentials file (user JWT and NKey seed), read again at every reconnect"},
	{name: "NATS_NKEY_FILE", to: "Consumer.NATS.NKeySeedFile", help: "jetstream and nats sources: file holding an NKey user seed"},
	{name: "NATS_TLS_CA_FILE", to: "Consumer.NATS.TLSCAFile", help: "jetstream and nats sources: PEM file of the CA to trust (turns TLS on)"},
	{name: "NATS_TLS_CERT_FILE", to: "Consumer.NATS.TLSCertFile", help: "jetstream and nats sources: PEM client certificate, for mutual TLS"},
	{name: "NATS_TLS_KEY_FILE", to: "Consumer.NATS.TLSKeyFile", help: "jetstream and nats sources: PEM client key, for mutual TLS"},
	{name: "NATS_CONNECT_TIMEOUT", to: "Consumer.NATS.ConnectTimeout", help: "jetstream and nats sources: bound on one connection attempt; the first must succeed or sluice exits"},
	{name: "NATS_RECONNECT_WAIT", to: "Consumer.NATS.ReconnectWait", help: "jetstream and nats sources: first delay between reconnect attempts (doubling, with jitter)"},
	{name: "NATS_RECONNECT_MAX_WAIT", to: "Consumer.NATS.ReconnectMaxWait", help: "jetstream and nats sources: longest delay between reconnect attempts"},
	{name: "NATS_DRAIN_TIMEOUT", to: "Consumer.NATS.DrainTimeout", help: "jetstream and nats sources: bound on draining the connection at shutdown (buffered acks are sent)"},

	{name: "KAFKA_BROKERS", to: "Consumer.Kafka.Brokers", help: "bootstrap brokers, comma separated host:port (required for kafka)"},
	{name: "KAFKA_TOPICS", to: "Consumer.Kafka.Topics", help: "topics to consume, comma separated (required for kafka)"},
	{name: "KAFKA_GROUP", to: "Consumer.Kafka.Group", help: "consumer group; replicas with the same group share the partitions"},
	{name: "KAFKA_CLIENT_ID", to: "Consumer.Kafka.ClientID", help: "client id sent to the brokers"},
	{name: "KAFKA_START_OFFSET", to: "Consumer.Kafka.StartOffset", help: "where a partition with no committed offset starts: earliest or latest"},
	{name: "KAFKA_FETCH_MAX_WAIT", to: "Consumer.Kafka.FetchMaxWait", help: "longest a broker holds a fetch; also bounds how late a resume takes effect"},
	{name: "KAFKA_SESSION_TIMEOUT", to: "Consumer.Kafka.SessionTimeout", help: "how long the coordinator waits for a silent member before moving its partitions (faster recovery after a crash vs more rebalances on a slow network)"},
	{name: "KAFKA_FETCH_MAX_BYTES", to: "Consumer.Kafka.FetchMaxBytes", size: true, derived: true, help: "largest fetch response (default: derived from the buffer so a poll fits in it)"},
	{name: "KAFKA_TLS_ENABLED", to: "KafkaAuth.TLSEnabled", help: "connect to the brokers with TLS"},
	{name: "KAFKA_TLS_CA_FILE", to: "KafkaAuth.TLSCAFile", help: "PEM file of the CA to trust (default: the system pool)"},
	{name: "KAFKA_TLS_CERT_FILE", to: "KafkaAuth.TLSCertFile", help: "PEM client certificate, for mutual TLS"},
	{name: "KAFKA_TLS_KEY_FILE", to: "KafkaAuth.TLSKeyFile", help: "PEM client key, for mutual TLS"},
	{name: "KAFKA_SASL_MECHANISM", to: "KafkaAuth.SASLMechanism", help: "none, plain, scram-sha-256 or scram-sha-512"},
	{name: "KAFKA_SASL_USERNAME", to: "KafkaAuth.SASLUsername", help: "SASL user"},
	{name: "KAFKA_SASL_PASSWORD", to: "KafkaAuth.SASLPassword", secret: true, help: "SASL password (prefer _FILE)"},
	{name: "KAFKA_SASL_PASSWORD_FILE", to: "KafkaAuth.SASLPassword", secret: true, file: true, help: "file holding the SASL password (e.g. a mounted Secret)"},

	{name: "BUFFER_MAX_RECORDS", to: "Consumer.MaxRecords", help: "in-flight budget in records, for the whole process (fetched until committed)"},
	{name: "BUFFER_MAX_BYTES", to: "Consumer.MaxBytes", size: true, help: "in-flight budget in bytes of key+value+headers; units such as 64MiB or 1GB"},
	{name: "BUFFER_HIGH_WATER", to: "Consumer.HighWater", help: "fraction of the budget at which partitions pause"},
	{name: "BUFFER_LOW_WATER", to: "Consumer.LowWater", help: "fraction of the budget at which paused partitions resume"},
	{name: "BUFFER_PAUSE_DELAY", to: "Consumer.PauseDelay", help: "how long the window stays above high water (not yet back at low) before partitions pause; the budget holds regardless"},
	{name: "ORDERING", to: "Consumer.Ordering", help: "key (same key in order), partition, or none"},
	{name: "BATCH_MAX", to: "Consumer.BatchMax", help: "most messages a worker takes from one lane at once"},
	{name: "WORKERS_MIN", to: "Autoscale.Min", help: "fewest workers"},
	{name: "WORKERS_MAX", to: "Autoscale.Max", help: "most workers"},
	{name: "AUTOSCALE", to: "AutoscaleOn", help: "size the worker pool between SLUICE_WORKERS_MIN and _MAX from what the pipeline measures; false: a fixed pool of SLUICE_WORKERS_MAX"},
	{name: "AUTOSCALE_INTERVAL", to: "Autoscale.Interval", help: "how often the controller samples the pipeline and decides"},
	{name: "AUTOSCALE_MAX_STEP", to: "Autoscale.MaxStep", help: "most workers added or removed by one decision (0: adaptive, max(4, n) up and max(4, n/2) down)"},
	{name: "AUTOSCALE_SCALE_DOWN_WINDOW", to: "Autoscale.ScaleDownWindow", help: "scale down only to the highest target seen over this window (as the Kubernetes HPA)"},
	{name: "SINK_MAX_CONCURRENCY", to: "Autoscale.SinkMaxConcurrency", help: "most concurrent deliveries the sink can take (0: no limit beyond what the sink itself declares)"},

	{name: "COMMIT_INTERVAL", to: "Consumer.CommitInterval", help: "how often delivered offsets are committed (also sooner under pressure, on revoke and on shutdown)"},
	{name: "COMMIT_TIMEOUT", to: "Consumer.CommitTimeout", help: "bound on each commit (on the interval, on revoke, at shutdown), so a coordinator that does not answer cannot hold up a revoke or a shutdown"},
	{name: "REBALANCE_TIMEOUT", to: "Consumer.RebalanceTimeout", help: "how long a revoke waits for in-flight deliveries of the revoked partitions; Kafka: members ask the group coordinator to wait this + SLUICE_COMMIT_TIMEOUT + 2s (at least 4s; 22s by default) for them to rejoin a rebalance"},
	{name: "SHUTDOWN_TIMEOUT", to: "Consumer.ShutdownTimeout", help: "how long shutdown or drain waits for in-flight work; keep it below the pod's grace period"},
	{name: "RETRY_INITIAL_BACKOFF", to: "Consumer.RetryInitialBackoff", help: "first delay before retrying a failed delivery"},
	{name: "RETRY_MAX_BACKOFF", to: "Consumer.RetryMaxBackoff", help: "longest delay between delivery attempts"},

	{name: "SINK", to: "Sink", help: "where messages go: http, postgres, kafka, nats, file, stdout or noop"},
	{name: "SINK_HTTP_URL", to: "Sinks.HTTP.URL", url: true, help: "http sink: URL the messages are sent to (required for SLUICE_SINK=http)"},
	{name: "SINK_HTTP_METHOD", to: "Sinks.HTTP.Method", help: "http sink: request method"},
	{name: "SINK_HTTP_HEADERS", to: "Sinks.HTTP.Headers", secret: true, help: "http sink: extra request headers, comma separated name:value pairs (e.g. Authorization:Bearer x)"},
	{name: "SINK_HTTP_TIMEOUT", to: "Sinks.HTTP.Timeout", help: "http sink: bound on one request; a timeout is retried"},
	{name: "SINK_HTTP_BATCH_MAX", to: "Sinks.HTTP.BatchMax", help: "http sink: messages per request; 1 sends a JSON object, more a JSON array"},
	{name: "SINK_HTTP_MAX_CONNS", to: "Sinks.HTTP.MaxConns", help: "http sink: connections kept to the host (keep at or above SLUICE_WORKERS_MAX)"},
	{name: "SINK_POSTGRES_DSN", to: "Sinks.Postgres.DSN", secret: true, help: "postgres sink: postgres://user:pass@host:5432/db (required for SLUICE_SINK=postgres; prefer _FILE)"},
	{name: "SINK_POSTGRES_DSN_FILE", to: "Sinks.Postgres.DSN", secret: true, file: true, help: "postgres sink: file holding the DSN (e.g. a mounted Secret)"},
	{name: "SINK_POSTGRES_TABLE", to: "Sinks.Postgres.Table", help: "postgres sink: table (or schema.table) the rows go to; see docs/SINKS.md"},
	{name: "SINK_POSTGRES_CREATE_TABLE", to: "Sinks.Postgres.CreateTable", help: "postgres sink: create the table at start-up when it does not exist"},
	{name: "SINK_POSTGRES_MAX_CONNS", to: "Sinks.Postgres.MaxConns", help: "postgres sink: connection pool size"},
	{name: "SINK_KAFKA_BROKERS", to: "Sinks.Kafka.Brokers", help: "kafka sink: brokers, comma separated host:port (default: SLUICE_KAFKA_BROKERS; TLS and SASL settings are shared)"},
	{name: "SINK_KAFKA_TOPIC", to: "Sinks.Kafka.Topic", help: "kafka sink: topic the messages are produced to (required for SLUICE_SINK=kafka)"},
	{name: "SINK_KAFKA_TIMEOUT", to: "Sinks.Kafka.Timeout", help: "kafka sink: bound on producing one record or batch"},
	{name: "SINK_NATS_URL", to: "Sinks.NATS.URL", url: true, help: "nats sink: server URL(s), comma separated"},
	{name: "SINK_NATS_SUBJECT", to: "Sinks.NATS.Subject", help: "nats sink: subject the messages are published to (required for SLUICE_SINK=nats)"},
	{name: "SINK_NATS_CORE", to: "Sinks.NATS.Core", help: "nats sink: publish with core NATS (no ack) instead of JetStream"},
	{name: "SINK_NATS_CREDS_FILE", to: "Sinks.NATSCredsFile", help: "nats sink and NATS dead-letter: credentials file (JWT and NKey)"},
	{name: "SINK_NATS_TIMEOUT", to: "Sinks.NATS.Timeout", help: "nats sink: bound on one publish or batch"},
	{name: "SINK_FILE_PATH", to: "Sinks.File.Path", help: "file sink: JSON-lines file written to (required for SLUICE_SINK=file); its directory must exist"},
	{name: "SINK_FILE_MAX_BYTES", to: "Sinks.File.MaxBytes", size: true, help: "file sink: size at which the file is rotated to .1, .2, ..."},
	{name: "SINK_FILE_MAX_BACKUPS", to: "Sinks.File.MaxBackups", help: "file sink: rotated files kept"},
	{name: "SINK_FILE_FSYNC", to: "Sinks.File.Sync", help: "file sink: fsync after every write (survives a machine crash, slower)"},
	{name: "SINK_BREAKER_FAILURES", to: "Sinks.Breaker.Failures", help: "deliveries failing in a row that open the sink's circuit breaker (0: no breaker)"},
	{name: "SINK_BREAKER_OPEN_TIMEOUT", to: "Sinks.Breaker.OpenTimeout", help: "how long an open breaker fails fast before it lets one probe through"},
	{name: "RETRY_MAX_ATTEMPTS", to: "Consumer.RetryMaxAttempts", help: "failed attempts before a record is dead-lettered (the sink being down or throttling does not count)"},
	{name: "RETRY_MAX_ELAPSED", to: "Consumer.RetryMaxElapsed", help: "time from a record's first failure after which it is dead-lettered (waits on a down sink do not count)"},
	{name: "DLQ_TOPIC", to: "DLQ.Topic", help: "Kafka topic records are dead-lettered to (with sluice-dlq-* headers saying where from and why)"},
	{name: "DLQ_KAFKA_BROKERS", to: "DLQ.KafkaBrokers", help: "brokers of SLUICE_DLQ_TOPIC (default: SLUICE_KAFKA_BROKERS; TLS and SASL settings are shared)"},
	{name: "DLQ_SUBJECT", to: "DLQ.Subject", help: "NATS subject records are dead-lettered to (JetStream publish), instead of a topic"},
	{name: "DLQ_NATS_URL", to: "DLQ.NATSURL", url: true, help: "NATS server(s) of SLUICE_DLQ_SUBJECT (default: SLUICE_SINK_NATS_URL)"},
	{name: "DLQ_POLICY", to: "Consumer.DeadLetterPolicy", help: "without a DLQ, a record given up on is kept retrying (block: its partition stops, fetching pauses) or dropped and counted (drop)"},

	{name: "HTTP_ADDR", to: "HTTPAddr", help: "address of the public endpoints: /metrics, /healthz and /readyz"},
	{name: "ADMIN_ADDR", to: "AdminAddr", help: "address of the admin endpoints: POST /drain, /debug/flow and /debug/pprof/; keep it on loopback (sluice drain and kubectl port-forward reach it there)"},
	{name: "DRAIN_EXIT_AFTER", to: "DrainExitAfter", help: "after a drain (POST /drain) completes, the process exits 0 by itself this long after unless a signal ends it first, so a drain with no SIGTERM after it leaves no idle process"},
	{name: "LOG_LEVEL", to: "LogLevel", help: "debug, info, warn or error"},
}

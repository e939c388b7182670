{{/*
=============================================================================
The one place where chart values meet SLUICE_* variables.

Each line is `<path under .Values.config>: <variable>`. To add a setting or
follow a rename, change one line here, then the key in values.yaml and its
entry in values.schema.json (helm/test checks that the three agree).

sluice.configEnv: the value becomes the variable.
  - a string, number or bool: as is (numbers without exponent: 1e+06 -> 1000000)
  - a list: joined with ","
  - a secret reference {name, key}: valueFrom.secretKeyRef (for settings the
    binary reads only from the environment)
  - "" / [] / {} / null: not set, the binary's default applies
sluice.configFiles: settings the binary reads from a file, given as a path.
  - a string: the path, as is (a file you mount yourself, see extraVolumes)
  - a secret reference {name, key}: the key is mounted read-only at
    /etc/sluice/secrets/<path with dashes>/<key> and the variable points at it
=============================================================================
*/}}
{{- define "sluice.configEnv" -}}
source: SLUICE_SOURCE
kafka.brokers: SLUICE_KAFKA_BROKERS
kafka.topics: SLUICE_KAFKA_TOPICS
kafka.topicsRegex: SLUICE_KAFKA_TOPICS_REGEX
kafka.group: SLUICE_KAFKA_GROUP
kafka.clientId: SLUICE_KAFKA_CLIENT_ID
kafka.instanceId: SLUICE_KAFKA_INSTANCE_ID
kafka.isolation: SLUICE_KAFKA_ISOLATION
kafka.rack: SLUICE_KAFKA_RACK
kafka.startOffset: SLUICE_KAFKA_START_OFFSET
kafka.fetchMaxWait: SLUICE_KAFKA_FETCH_MAX_WAIT
kafka.sessionTimeout: SLUICE_KAFKA_SESSION_TIMEOUT
kafka.fetchMaxBytes: SLUICE_KAFKA_FETCH_MAX_BYTES
kafka.shareAcquireMode: SLUICE_KAFKA_SHARE_ACQUIRE_MODE
kafka.tls.enabled: SLUICE_KAFKA_TLS_ENABLED
kafka.sasl.mechanism: SLUICE_KAFKA_SASL_MECHANISM
kafka.sasl.username: SLUICE_KAFKA_SASL_USERNAME
nats.url: SLUICE_NATS_URL
nats.name: SLUICE_NATS_NAME
nats.stream: SLUICE_NATS_STREAM
nats.consumer: SLUICE_NATS_CONSUMER
nats.bind: SLUICE_NATS_BIND
nats.subjects: SLUICE_NATS_SUBJECTS
nats.deliver: SLUICE_NATS_DELIVER
nats.ackWait: SLUICE_NATS_ACK_WAIT
nats.maxAckPending: SLUICE_NATS_MAX_ACK_PENDING
nats.pullMaxRecords: SLUICE_NATS_PULL_MAX_RECORDS
nats.pullMaxWait: SLUICE_NATS_PULL_MAX_WAIT
nats.doubleAck: SLUICE_NATS_DOUBLE_ACK
nats.keyHeader: SLUICE_NATS_KEY_HEADER
nats.infoInterval: SLUICE_NATS_INFO_INTERVAL
nats.queue: SLUICE_NATS_QUEUE
nats.pendingMsgs: SLUICE_NATS_PENDING_MSGS
nats.pendingBytes: SLUICE_NATS_PENDING_BYTES
nats.user: SLUICE_NATS_USER
nats.connectTimeout: SLUICE_NATS_CONNECT_TIMEOUT
nats.reconnectWait: SLUICE_NATS_RECONNECT_WAIT
nats.reconnectMaxWait: SLUICE_NATS_RECONNECT_MAX_WAIT
nats.drainTimeout: SLUICE_NATS_DRAIN_TIMEOUT
buffer.maxRecords: SLUICE_BUFFER_MAX_RECORDS
buffer.maxBytes: SLUICE_BUFFER_MAX_BYTES
buffer.highWater: SLUICE_BUFFER_HIGH_WATER
buffer.lowWater: SLUICE_BUFFER_LOW_WATER
buffer.pauseDelay: SLUICE_BUFFER_PAUSE_DELAY
ordering: SLUICE_ORDERING
batchMax: SLUICE_BATCH_MAX
workers.min: SLUICE_WORKERS_MIN
workers.max: SLUICE_WORKERS_MAX
autoscale.enabled: SLUICE_AUTOSCALE
autoscale.interval: SLUICE_AUTOSCALE_INTERVAL
autoscale.maxStep: SLUICE_AUTOSCALE_MAX_STEP
autoscale.scaleDownWindow: SLUICE_AUTOSCALE_SCALE_DOWN_WINDOW
commitInterval: SLUICE_COMMIT_INTERVAL
commitTimeout: SLUICE_COMMIT_TIMEOUT
rebalanceTimeout: SLUICE_REBALANCE_TIMEOUT
shutdownTimeout: SLUICE_SHUTDOWN_TIMEOUT
httpAddr: SLUICE_HTTP_ADDR
adminAddr: SLUICE_ADMIN_ADDR
drainExitAfter: SLUICE_DRAIN_EXIT_AFTER
logLevel: SLUICE_LOG_LEVEL
sink.type: SLUICE_SINK
sink.maxConcurrency: SLUICE_SINK_MAX_CONCURRENCY
sink.http.url: SLUICE_SINK_HTTP_URL
sink.http.timeout: SLUICE_SINK_HTTP_TIMEOUT
sink.http.headers: SLUICE_SINK_HTTP_HEADERS
sink.http.method: SLUICE_SINK_HTTP_METHOD
sink.http.batchMax: SLUICE_SINK_HTTP_BATCH_MAX
sink.http.maxConns: SLUICE_SINK_HTTP_MAX_CONNS
sink.http.body: SLUICE_SINK_HTTP_BODY
sink.http.contentType: SLUICE_SINK_HTTP_CONTENT_TYPE
sink.http.forwardHeaders: SLUICE_SINK_HTTP_FORWARD_HEADERS
sink.postgres.table: SLUICE_SINK_POSTGRES_TABLE
sink.postgres.createTable: SLUICE_SINK_POSTGRES_CREATE_TABLE
sink.postgres.maxConns: SLUICE_SINK_POSTGRES_MAX_CONNS
sink.kafka.brokers: SLUICE_SINK_KAFKA_BROKERS
sink.kafka.topic: SLUICE_SINK_KAFKA_TOPIC
sink.kafka.timeout: SLUICE_SINK_KAFKA_TIMEOUT
sink.nats.url: SLUICE_SINK_NATS_URL
sink.nats.subject: SLUICE_SINK_NATS_SUBJECT
sink.nats.core: SLUICE_SINK_NATS_CORE
sink.nats.timeout: SLUICE_SINK_NATS_TIMEOUT
sink.file.path: SLUICE_SINK_FILE_PATH
sink.file.maxBytes: SLUICE_SINK_FILE_MAX_BYTES
sink.file.maxBackups: SLUICE_SINK_FILE_MAX_BACKUPS
sink.file.fsync: SLUICE_SINK_FILE_FSYNC
sink.breaker.failures: SLUICE_SINK_BREAKER_FAILURES
sink.breaker.openTimeout: SLUICE_SINK_BREAKER_OPEN_TIMEOUT
retry.maxAttempts: SLUICE_RETRY_MAX_ATTEMPTS
retry.initialBackoff: SLUICE_RETRY_INITIAL_BACKOFF
retry.maxBackoff: SLUICE_RETRY_MAX_BACKOFF
retry.maxElapsed: SLUICE_RETRY_MAX_ELAPSED
dlq.topic: SLUICE_DLQ_TOPIC
dlq.subject: SLUICE_DLQ_SUBJECT
dlq.policy: SLUICE_DLQ_POLICY
dlq.kafkaBrokers: SLUICE_DLQ_KAFKA_BROKERS
dlq.natsUrl: SLUICE_DLQ_NATS_URL
{{- end }}

{{- define "sluice.configFiles" -}}
kafka.tls.ca: SLUICE_KAFKA_TLS_CA_FILE
kafka.tls.cert: SLUICE_KAFKA_TLS_CERT_FILE
kafka.tls.key: SLUICE_KAFKA_TLS_KEY_FILE
kafka.sasl.password: SLUICE_KAFKA_SASL_PASSWORD_FILE
kafka.sasl.oauthToken: SLUICE_KAFKA_SASL_OAUTH_TOKEN_FILE
nats.creds: SLUICE_NATS_CREDS_FILE
nats.nkey: SLUICE_NATS_NKEY_FILE
nats.password: SLUICE_NATS_PASSWORD_FILE
nats.token: SLUICE_NATS_TOKEN_FILE
nats.tls.ca: SLUICE_NATS_TLS_CA_FILE
nats.tls.cert: SLUICE_NATS_TLS_CERT_FILE
nats.tls.key: SLUICE_NATS_TLS_KEY_FILE
sink.postgres.dsn: SLUICE_SINK_POSTGRES_DSN_FILE
sink.nats.creds: SLUICE_SINK_NATS_CREDS_FILE
{{- end }}

{{/*
sluice.configValue: the value at a dotted path under .Values.config, or nil.
Usage: include "sluice.configValue" (list $ "kafka.tls.ca") | fromJson
returns {"v": <value>} (templates return strings: JSON keeps the type).
*/}}
{{- define "sluice.configValue" -}}
{{- $v := (index . 0).Values.config }}
{{- range splitList "." (index . 1) }}
{{- if kindIs "map" $v }}{{ $v = get $v . }}{{ else }}{{ $v = "" }}{{ end }}
{{- end }}
{{- dict "v" $v | toJson }}
{{- end }}

{{/* sluice.isSecretRef: "true" when the value is a {name, key} secret reference. */}}
{{- define "sluice.isSecretRef" -}}
{{- if and (kindIs "map" .) (hasKey . "name") (hasKey . "key") }}true{{ end }}
{{- end }}

{{/* sluice.scalar: a value as an env string; whole numbers never in exponent form. */}}
{{- define "sluice.scalar" -}}
{{- if kindIs "float64" . }}
{{- if eq (float64 (int64 .)) . }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- else if kindIs "slice" . }}
{{- $out := list }}
{{- range . }}{{ $out = append $out (include "sluice.scalar" .) }}{{ end }}
{{- join "," $out }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}

{{- define "sluice.secretMountPath" -}}
{{- printf "/etc/sluice/secrets/%s" (. | lower | replace "." "-") }}
{{- end }}

{{/*
sluice.env: the container's env list, sorted by name: every config setting,
GOMEMLIMIT, then .Values.env. A name in .Values.env replaces the chart's own
entry (the pass-through wins without a duplicate name).
*/}}
{{- define "sluice.env" -}}
{{- $root := . }}
{{- /* A variable also in .Values.env is left to it: no duplicate names. */}}
{{- $passed := dict }}
{{- range .Values.env }}{{ $_ := set $passed .name true }}{{ end }}
{{- $table := include "sluice.configEnv" . | fromYaml }}
{{- $files := include "sluice.configFiles" . | fromYaml }}
{{- $byName := dict }}
{{- range $path, $name := $table }}{{ $_ := set $byName $name (list "env" $path) }}{{ end }}
{{- range $path, $name := $files }}{{ $_ := set $byName $name (list "file" $path) }}{{ end }}
{{- range $name := keys $byName | sortAlpha }}
{{- if not (hasKey $passed $name) }}
{{- $kind := index (get $byName $name) 0 }}
{{- $path := index (get $byName $name) 1 }}
{{- $v := (include "sluice.configValue" (list $root $path) | fromJson).v }}
{{- if and (eq $name "SLUICE_KAFKA_INSTANCE_ID") $root.Values.kafkaInstanceIdFromPodName }}
{{- if $v }}{{ fail "set config.kafka.instanceId or kafkaInstanceIdFromPodName, not both" }}{{ end }}
- name: {{ $name }}
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- else if include "sluice.isSecretRef" $v }}
{{- if eq $kind "file" }}
- name: {{ $name }}
  value: {{ printf "%s/%s" (include "sluice.secretMountPath" $path) $v.key | quote }}
{{- else }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $v.name | quote }}
      key: {{ $v.key | quote }}
{{- end }}
{{- else if and (not (kindIs "map" $v)) (or (kindIs "bool" $v) (kindIs "float64" $v) (kindIs "int" $v) (kindIs "int64" $v) $v) }}
- name: {{ $name }}
  value: {{ include "sluice.scalar" $v | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- if and .Values.goMemLimitFromResources .Values.resources .Values.resources.limits .Values.resources.limits.memory (not (hasKey $passed "GOMEMLIMIT")) }}
- name: GOMEMLIMIT
  value: {{ include "sluice.memoryBytes" .Values.resources.limits.memory | float64 | mulf 0.9 | floor | int64 | toString | quote }}
{{- end }}
{{- with .Values.env }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* sluice.secretVolumes / sluice.secretVolumeMounts: one per file setting given as a secret reference. */}}
{{- define "sluice.secretVolumes" -}}
{{- $root := . }}
{{- $files := include "sluice.configFiles" . | fromYaml }}
{{- range $path := keys $files | sortAlpha }}
{{- $v := (include "sluice.configValue" (list $root $path) | fromJson).v }}
{{- if include "sluice.isSecretRef" $v }}
- name: {{ printf "secret-%s" ($path | lower | replace "." "-") | trunc 63 | trimSuffix "-" }}
  secret:
    secretName: {{ $v.name | quote }}
    defaultMode: 0440
    items:
      - key: {{ $v.key | quote }}
        path: {{ $v.key | quote }}
{{- end }}
{{- end }}
{{- end }}

{{- define "sluice.secretVolumeMounts" -}}
{{- $root := . }}
{{- $files := include "sluice.configFiles" . | fromYaml }}
{{- range $path := keys $files | sortAlpha }}
{{- $v := (include "sluice.configValue" (list $root $path) | fromJson).v }}
{{- if include "sluice.isSecretRef" $v }}
- name: {{ printf "secret-%s" ($path | lower | replace "." "-") | trunc 63 | trimSuffix "-" }}
  mountPath: {{ include "sluice.secretMountPath" $path }}
  readOnly: true
{{- end }}
{{- end }}
{{- end }}

{{/* sluice.memoryBytes: a Kubernetes memory quantity ("256Mi", "1G", "1048576") in bytes. */}}
{{- define "sluice.memoryBytes" -}}
{{- $q := include "sluice.scalar" . }}
{{- if not (regexMatch "^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$" $q) }}
{{- fail (printf "resources.limits.memory %q: want a quantity such as 256Mi or 1Gi (or set goMemLimitFromResources: false)" $q) }}
{{- end }}
{{- $num := regexFind "^[0-9]+(\\.[0-9]+)?" $q }}
{{- $mult := get (dict "" 1.0 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "k" 1000.0 "M" 1000000.0 "G" 1000000000.0 "T" 1000000000000.0) (trimPrefix $num $q) }}
{{- mulf (float64 $num) $mult | int64 }}
{{- end }}

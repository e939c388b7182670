{{/*
Names and labels, in the shape `helm create` gives them.
*/}}

{{- define "sluice.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: <release>-<chart>, or <release> when the release name already
contains the chart name. Truncated to 63 characters (DNS label).
*/}}
{{- define "sluice.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "sluice.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: never change them after the first install (a Deployment's
selector is immutable).
*/}}
{{- define "sluice.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sluice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sluice.labels" -}}
helm.sh/chart: {{ include "sluice.chart" . }}
{{ include "sluice.selectorLabels" . }}
app.kubernetes.io/version: {{ include "sluice.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sluice
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "sluice.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sluice.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sluice.metricsServiceName" -}}
{{- printf "%s-metrics" (include "sluice.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}

{{- define "sluice.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{- define "sluice.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "sluice.imageTag" .) }}
{{- end }}
{{- end }}

{{/*
The container port, taken from config.httpAddr (":8080", "0.0.0.0:9090") so
that the probes, the Service and the process can never disagree.
*/}}
{{- define "sluice.httpPort" -}}
{{- $addr := toString (default ":8080" .Values.config.httpAddr) }}
{{- if not (regexMatch "^(\\[[0-9a-fA-F:.]*\\]|[^:\\[\\]]*):[0-9]+$" $addr) }}
{{- fail (printf "config.httpAddr %q: want [host]:port, e.g. \":8080\"" $addr) }}
{{- end }}
{{- $port := regexFind "[0-9]+$" $addr }}
{{- $port }}
{{- end }}

{{/* sluice.adminPort: the port of config.adminAddr (the binary's default 127.0.0.1:8081 when unset). */}}
{{- define "sluice.adminPort" -}}
{{- regexFind "[0-9]+$" (toString (default "127.0.0.1:8081" .Values.config.adminAddr)) }}
{{- end }}

{{/*
sluice.durationSeconds: a Go duration string ("30s", "1m30s", "500ms") as
seconds (a float). Fails on anything else, naming the value.
Usage: include "sluice.durationSeconds" (list "config.shutdownTimeout" $value)
*/}}
{{- define "sluice.durationSeconds" -}}
{{- $what := index . 0 }}
{{- $d := toString (index . 1) }}
{{- if not (regexMatch "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$" $d) }}
{{- fail (printf "%s %q: want a Go duration such as \"30s\" or \"1m30s\"" $what $d) }}
{{- end }}
{{- $unit := dict "ns" 0.000000001 "us" 0.000001 "µs" 0.000001 "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 }}
{{- $total := 0.0 }}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h)" $d -1 }}
{{- $num := regexFind "^[0-9]+(\\.[0-9]+)?" . }}
{{- $total = addf $total (mulf (float64 $num) (get $unit (trimPrefix $num .))) }}
{{- end }}
{{- $total }}
{{- end }}

{{/*
sluice.validate: the checks a JSON schema cannot express. Included by the
Deployment, so a bad combination fails `helm install` and `helm template`.
*/}}
{{- define "sluice.validate" -}}
{{- $a := .Values.autoscaling }}
{{- if and $a.hpa.enabled $a.keda.enabled }}
{{- fail "autoscaling.hpa.enabled and autoscaling.keda.enabled are both true: pick one (KEDA creates its own HPA, and two HPAs on one Deployment fight)" }}
{{- end }}
{{- if and (or $a.hpa.enabled $a.keda.enabled) (gt (int $a.minReplicas) (int (include "sluice.maxReplicas" .))) }}
{{- fail (printf "autoscaling.minReplicas (%d) is above the effective maxReplicas (%s: maxReplicas capped at autoscaling.partitions)" (int $a.minReplicas) (include "sluice.maxReplicas" .)) }}
{{- end }}
{{- if and $a.keda.enabled $a.keda.kafka.enabled (eq .Values.config.source "kafka-share") }}
{{- fail "autoscaling.keda.kafka: KEDA's Kafka scaler reads consumer groups, not share groups; with config.source kafka-share scale on Sluice's signal (autoscaling.keda.prometheus)" }}
{{- end }}
{{- if and $a.hpa.enabled (lt (int $a.minReplicas) 1) }}
{{- fail "autoscaling.minReplicas must be at least 1 with the HPA (scale to zero needs KEDA: autoscaling.keda.idleReplicaCount: 0)" }}
{{- end }}
{{- if and $a.keda.enabled (not (kindIs "invalid" $a.keda.idleReplicaCount)) (ge (int $a.keda.idleReplicaCount) (int $a.minReplicas)) }}
{{- fail (printf "autoscaling.keda.idleReplicaCount (%d) must be below autoscaling.minReplicas (%d): KEDA refuses the ScaledObject otherwise" (int $a.keda.idleReplicaCount) (int $a.minReplicas)) }}
{{- end }}
{{- $shutdown := include "sluice.durationSeconds" (list "config.shutdownTimeout" (default "30s" .Values.config.shutdownTimeout)) | float64 }}
{{- if le (float64 .Values.terminationGracePeriodSeconds) $shutdown }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be longer than config.shutdownTimeout (%s): the kubelet would kill the pod in the middle of its drain. Raise terminationGracePeriodSeconds to at least %d." (int .Values.terminationGracePeriodSeconds) (toString (default "30s" .Values.config.shutdownTimeout)) (add1 (int (ceil $shutdown)))) }}
{{- end }}
{{- $adminPort := include "sluice.adminPort" . }}
{{- if eq $adminPort (include "sluice.httpPort" .) }}
{{- fail (printf "config.adminAddr and config.httpAddr share port %s: the admin endpoints (drain, pprof) must not be served where the metrics are; pick another port for either" $adminPort) }}
{{- end }}
{{- $c := .Values.config }}
{{- if or (eq $c.source "kafka") (eq $c.source "kafka-share") }}
{{- if or (not $c.kafka.brokers) (and (not $c.kafka.topics) (not $c.kafka.topicsRegex)) }}
{{- fail (printf "config.source is %s: set config.kafka.brokers and config.kafka.topics" $c.source) }}
{{- end }}
{{- else }}
{{- if not $c.nats.url }}
{{- fail (printf "config.source is %s: set config.nats.url (the binary's default, 127.0.0.1, is the pod itself)" $c.source) }}
{{- end }}
{{- end }}
{{- range $side := list "kafka" "nats" }}
{{- $tls := (get $c $side).tls }}
{{- if ne (empty $tls.cert) (empty $tls.key) }}
{{- fail (printf "config.%s.tls.cert and config.%s.tls.key: set both (mutual TLS) or neither; the binary refuses one without the other" $side $side) }}
{{- end }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (eq $c.source "nats") (not $c.nats.queue) }}
{{- fail "config.source is nats with replicaCount > 1 and no config.nats.queue: every replica would get every message" }}
{{- end }}
{{- if and $a.keda.enabled (not $a.keda.prometheus.enabled) (not $a.keda.kafka.enabled) }}
{{- fail "autoscaling.keda.enabled: enable at least one trigger (autoscaling.keda.prometheus or autoscaling.keda.kafka)" }}
{{- end }}
{{- if and $a.keda.enabled $a.keda.prometheus.enabled (not $a.keda.prometheus.serverAddress) }}
{{- fail "autoscaling.keda.prometheus.serverAddress is required (the Prometheus URL KEDA queries)" }}
{{- end }}
{{- if and $a.keda.enabled $a.keda.kafka.enabled (ne $c.source "kafka") (not $a.keda.kafka.bootstrapServers) }}
{{- fail "autoscaling.keda.kafka needs bootstrapServers when config.source is not kafka" }}
{{- end }}
{{- end }}

{{/*
Effective maximum of replicas: autoscaling.maxReplicas, capped at
autoscaling.partitions when that is known (a member without a partition idles).
*/}}
{{- define "sluice.maxReplicas" -}}
{{- $max := int .Values.autoscaling.maxReplicas }}
{{- $parts := int .Values.autoscaling.partitions }}
{{- if and (gt $parts 0) (lt $parts $max) (ne .Values.config.source "kafka-share") }}{{ $parts }}{{ else }}{{ $max }}{{ end }}
{{- end }}

{{/*
The Prometheus selector of this release's series, as the ServiceMonitor labels them.
*/}}
{{- define "sluice.promSelector" -}}
{{- printf "namespace=%q,service=%q" .Release.Namespace (include "sluice.metricsServiceName" .) }}
{{- end }}

{{/* sluice.intOrString: "3" -> 3, "50%" -> "50%" (an IntOrString field). */}}
{{- define "sluice.intOrString" -}}
{{- if regexMatch "^[0-9]+$" . }}{{ . }}{{ else }}{{ . | quote }}{{ end }}
{{- end }}

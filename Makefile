# Sluice: build, test, demo, bench.
#
#   make test    everything that runs on this machine (what CI runs):
#                vet, the race-enabled suite (kfake, in-process nats-server,
#                a throwaway PostgreSQL), the same integration tests against a
#                real Apache Kafka broker, and the Helm chart against a real
#                kube-apiserver. Parts that cannot run here say so loudly.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: build build-dev test vet test-unit test-kafka test-k8s test-monitoring chaos chaos-long check check-long fuzz demo bench readme image image-check test-cluster

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/sluice ./cmd/sluice

# The demo and the benchmarks: a command of their own, so that the service
# binary links the service only (no kfake, no nats-server, no simulator).
build-dev:
	$(GO) build -o bin/sluice-dev ./cmd/sluice-dev

vet:
	$(GO) vet ./...

test: vet test-unit test-kafka test-k8s test-monitoring

# The suite with a throwaway PostgreSQL for the PostgreSQL sink (its tests
# skip, saying so, when the server cannot be started).
test-unit:
	@dsn=$$(scripts/postgres.sh start) || dsn=; \
	SLUICEDEV_TEST_POSTGRES_DSN=$$dsn $(GO) test -race -count=1 -timeout 20m ./...; rc=$$?; \
	scripts/postgres.sh stop; exit $$rc

# The Kafka integration tests and the overhead bench against a real broker
# (scripts/kafka.sh fetches Apache Kafka with Maven; skipped loudly without
# java and mvn, a failure with SLUICEDEV_REQUIRE_KAFKA=1).
test-kafka:
	scripts/test-real-kafka.sh

# The chart: render matrix with strict decoding, helm lint, and a real
# kube-apiserver with etcd (tools built from the Go module proxy and cached
# in ~/.cache/sluice; skipped loudly when they cannot be built, a failure
# with SLUICEDEV_K8S=require).
test-k8s: build
	SLUICEDEV_BIN=$(CURDIR)/bin/sluice scripts/k8s.sh all

# The alert rules: promtool check and each alert's firing and silent cases
# (scripts/prometheus.sh installs Debian's prometheus package when missing;
# skipped loudly when it cannot, a failure with SLUICEDEV_PROMETHEUS=require).
# A real Prometheus evaluating every dashboard query and alert against the
# real binary is e2e/monitoring_test.go, in test-unit.
test-monitoring:
	scripts/prometheus.sh rules || [ $$? -eq 3 ]

# The fault suite against the real binary: kfake, then a real broker
# (20 000 records a scenario, about 9 minutes); chaos-long soaks.
chaos: build
	scripts/chaos.sh

chaos-long: build
	scripts/chaos.sh --long
	$(if $(CHECK_DURATION),scripts/check.sh --for $(CHECK_DURATION))

# The adversarial checker (e2e/check.go): the fixed seeds on kfake, JetStream
# and a real broker (about 8 minutes); check-long runs random seeds on each
# for CHECK_DURATION (also run by `make chaos-long CHECK_DURATION=30m`).
CHECK_DURATION ?=
check:
	scripts/check.sh

check-long:
	scripts/check.sh --for $(or $(CHECK_DURATION),10m)

# Each fuzz target for FUZZTIME, from its seed corpus in testdata/fuzz/. A
# count of executions, not a duration: with a duration, Go 1.26's fuzz
# coordinator can report its own deadline as the target's failure ("context
# deadline exceeded", no failing input; golang/go#75804, fixed in Go 1.27),
# which a rehearsal of .ci/run hit on a loaded machine.
FUZZTIME ?= 10000x
# The targets are found in the tests (Name:./dir), so a new one is fuzzed too.
FUZZ_TARGETS := $(shell grep -rHo --include='*_test.go' --exclude-dir=build --exclude-dir=bin '^func Fuzz[A-Za-z0-9_]*' . | \
	sed -E 's|^(.*)/[^/]*:func (Fuzz[A-Za-z0-9_]*)|\2:\1|' | sort)
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t%%:*} ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$${t%%:*}$$" -fuzztime $(FUZZTIME) $${t#*:}; \
	done

demo:
	$(GO) run ./cmd/sluice-dev demo

bench: build build-dev
	./bin/sluice-dev bench overhead

# The OCI image without a container engine (scripts/image.sh): amd64 and
# arm64, reproducible (the commit's time as SOURCE_DATE_EPOCH), written to
# bin/image/ (an OCI layout) and bin/sluice-image.tar; prints its digest.
# image-check builds it twice, the second time with an empty Go build cache,
# and fails unless the digests match. (The Dockerfile describes the same
# image for a container engine: docker build --build-arg VERSION=... .)
image:
	VERSION=$(VERSION) scripts/image.sh build

image-check:
	VERSION=$(VERSION) scripts/image.sh check

# The end-to-end scenario on a real single-node Kubernetes built from parts
# (scripts/k8s-cluster.sh: etcd, control plane, containerd, kubelet,
# kube-proxy, CoreDNS, Prometheus, an external-metrics adapter): helm install
# sluice with the image above against a real Kafka broker, drain, scale-in,
# upgrade, force delete and an HPA ramp under load, each checked against a
# ledger; then a teardown that must leave the machine as it found it. Needs
# root. Run by .ci/run, not by `make test` (docs/KUBERNETES.md): cold, the
# Kubernetes binaries take 10-20 minutes to build; warm, about 9 minutes.
test-cluster: image
	scripts/k8s-cluster.sh scenario

# readme regenerates the environment table in README.md from the code.
readme:
	@mkdir -p build
	$(GO) run ./cmd/sluice config --env > build/env-table.md
	awk 'BEGIN{t="build/env-table.md"} /<!-- env:begin/{print; while((getline l < t)>0) print l; skip=1; next} /<!-- env:end/{skip=0} !skip' README.md > build/README.md && mv build/README.md README.md

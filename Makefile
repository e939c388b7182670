# Sluice: build, test, demo, bench.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: build test test-unit demo bench vet readme

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/sluice ./cmd/sluice

vet:
	$(GO) vet ./...

# test is the project's test command: everything that runs on this machine.
test: vet test-unit

test-unit:
	$(GO) test -race -count=1 -timeout 20m ./...

demo:
	$(GO) run ./cmd/sluice demo

bench: build
	./bin/sluice bench overhead

# readme regenerates the environment table in README.md from the code.
readme:
	$(GO) run ./cmd/sluice config --env > build/env-table.md
	awk 'BEGIN{t="build/env-table.md"} /<!-- env:begin/{print; while((getline l < t)>0) print l; skip=1; next} /<!-- env:end/{skip=0} !skip' README.md > build/README.md && mv build/README.md README.md

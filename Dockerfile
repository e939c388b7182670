# syntax=docker/dockerfile:1
#
# Sluice's image: a static Go binary, CA roots and a non-root user, nothing else.
# `make image` (scripts/image.sh) builds the same image without a container
# engine, reproducibly, for amd64 and arm64: one layer made by
# internal/imagebuild, whose files this Dockerfile copies from the same
# program (`go run ./scripts/imagebuild -rootfs`), with the same config.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t sluice:dev .
#   docker buildx build --platform linux/amd64,linux/arm64 ...   (cross-compiled, no emulation)
#
# The binary is the same as `make build`: CGO_ENABLED=0, -trimpath, the
# version from -ldflags; `sluice version` prints it. The chart expects the
# binary at /sluice (its preStop hook runs `/sluice drain`: the image has no
# shell and no curl) and the user 65532 ("nonroot", as in distroless).

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
# Modules first: this layer stays cached until go.mod or go.sum changes.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
ARG TARGETOS TARGETARCH BUILDARCH
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/sluice ./cmd/sluice
# Smoke test where the binary can run on the build machine.
RUN if [ "$TARGETARCH" = "$BUILDARCH" ]; then /out/sluice version; fi
# The layer's files: /sluice, /etc/ssl/certs/ca-certificates.crt (the Go
# x509roots fallback bundle pinned by go.sum), /etc/passwd and /etc/group
# (65532 nonroot), /etc/nsswitch.conf, /tmp (1777); all owned by root.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go run ./scripts/imagebuild -epoch 0 -rootfs /rootfs -binary /out/sluice

# No base image: no libc, no shell.
FROM scratch
ARG VERSION=dev
LABEL org.opencontainers.image.title="sluice" \
      org.opencontainers.image.description="A Kafka and NATS consumer that never drowns" \
      org.opencontainers.image.source="https://github.com/sluicehq/sluice" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /rootfs/ /
ENV PATH=/ SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
WORKDIR /
USER 65532:65532
# metrics, /healthz, /readyz, /debug/flow, POST /drain (SLUICE_HTTP_ADDR)
EXPOSE 8080
ENTRYPOINT ["/sluice"]
CMD ["run"]

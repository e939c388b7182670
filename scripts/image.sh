#!/usr/bin/env bash
# scripts/image.sh: Sluice's OCI image, built without a container engine and
# reproducibly (internal/imagebuild does the packaging).
#
#   scripts/image.sh build   cmd/sluice for linux/amd64 and linux/arm64 (CGO_ENABLED=0,
#                            -trimpath, -buildvcs=false), then the multi-arch OCI image:
#                            the layout in bin/image/, the same as one tar in
#                            bin/sluice-image.tar (ctr -n k8s.io images import takes it);
#                            prints the index digest (also in bin/image.digest; the
#                            reference in bin/image.ref)
#   scripts/image.sh check   build twice from the same commit (HEAD, exported by git archive
#                            into two directories: uncommitted changes are not in it), the
#                            second time with an empty Go build cache (about 10 minutes on
#                            2 busy cores), and fail unless the digests and archives are equal
#
# Environment:
#   VERSION            the version stamped into the binary and the tag (default: git describe)
#   SOURCE_DATE_EPOCH  the image's creation time (default: the commit's time)
#   SLUICEDEV_IMAGE    the reference recorded in the layout (default ghcr.io/sluicehq/sluice:$VERSION)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
REF=${SLUICEDEV_IMAGE:-ghcr.io/sluicehq/sluice:$VERSION}
ARCHES=(amd64 arm64)

log() { printf '[image] %s\n' "$*" >&2; }

# build <out dir>: binaries into <out>/linux_<arch>/sluice, layout into <out>/image.
build() {
	local out=$1 arch plats=() start=$SECONDS
	for arch in "${ARCHES[@]}"; do
		CGO_ENABLED=0 GOOS=linux GOARCH=$arch GOFLAGS=-buildvcs=false go build -trimpath \
			-ldflags "-s -w -X main.version=$VERSION" -o "$out/linux_$arch/sluice" ./cmd/sluice
		case $arch in
			arm64) plats+=(-platform "linux/arm64/v8=$out/linux_$arch/sluice") ;;
			*) plats+=(-platform "linux/$arch=$out/linux_$arch/sluice") ;;
		esac
	done
	go run ./scripts/imagebuild -ref "$REF" "${plats[@]}" -expose 8080/tcp \
		-label org.opencontainers.image.title=sluice \
		-label "org.opencontainers.image.description=A Kafka and NATS consumer that never drowns" \
		-label org.opencontainers.image.source=https://github.com/sluicehq/sluice \
		-label "org.opencontainers.image.version=$VERSION" \
		-o "$out/image" -archive "$out/sluice-image.tar" >"$out/image.digest"
	log "$REF $(cat "$out/image.digest") in $((SECONDS - start))s (${ARCHES[*]})"
}

case ${1:-build} in
	build)
		mkdir -p bin/image-build
		build bin/image-build
		rm -rf bin/image && mv bin/image-build/image bin/image
		mv bin/image-build/sluice-image.tar bin/sluice-image.tar
		mv bin/image-build/image.digest bin/image.digest
		echo "$REF" >bin/image.ref
		echo "$REF@$(cat bin/image.digest)"
		;;
	check)
		tmp=$(mktemp -d)
		trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
		VERSION=$(git describe --tags --always 2>/dev/null || echo dev)
		REF=${SLUICEDEV_IMAGE:-ghcr.io/sluicehq/sluice:$VERSION}
		for d in a b; do
			mkdir -p "$tmp/src-$d" && git archive HEAD | tar -x -C "$tmp/src-$d"
		done
		(cd "$tmp/src-a" && build "$tmp/a")
		log "again, in another directory with an empty Go build cache (a cold build on another machine)"
		(cd "$tmp/src-b" && GOCACHE=$tmp/gocache build "$tmp/b")
		a=$(cat "$tmp/a/image.digest") b=$(cat "$tmp/b/image.digest")
		if [[ $a != "$b" ]]; then
			log "FAIL: two builds of the same commit differ: $a vs $b"
			exit 1
		fi
		cmp -s "$tmp/a/sluice-image.tar" "$tmp/b/sluice-image.tar" || { log "FAIL: same digest, different archives"; exit 1; }
		log "ok: two builds of $VERSION give $a"
		;;
	*) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 2 ;;
esac

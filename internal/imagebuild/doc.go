// Package imagebuild packages Sluice's static binary as an OCI image without
// a container engine, reproducibly: the same binaries and the same creation
// time give the same bytes, so the same digest.
//
// What makes it reproducible: one layer written entry by entry in a fixed
// order (sorted paths), every entry owned by root with a fixed mode and the
// creation time as its modification time, no user or group names, gzip from
// the standard library at a fixed level, the image config's creation time and
// history set from the same time (callers pass the commit time, as
// SOURCE_DATE_EPOCH does), and JSON written by go-containerregistry in a fixed
// field order. The binaries themselves must be reproducible too: CGO_ENABLED=0
// and -trimpath, from the same commit and toolchain.
//
// The image holds the binary, a CA bundle generated from Go's
// golang.org/x/crypto/x509roots/fallback roots (pinned by go.sum, so the
// same on every machine), /etc/passwd and /etc/group naming uid and gid 65532
// "nonroot", /etc/nsswitch.conf, and an empty world-writable /tmp; it runs as
// 65532:65532 and writes nothing outside /tmp, so a read-only root
// filesystem works.
//
//	idx, err := imagebuild.Build(imagebuild.Config{
//		Created:   time.Unix(epoch, 0),
//		Platforms: []imagebuild.Platform{{OS: "linux", Arch: "amd64", Binary: "bin/linux_amd64/sluice"}},
//	})
//	...
//	err = imagebuild.WriteLayout("bin/image", idx, "ghcr.io/sluicehq/sluice:dev")
package imagebuild

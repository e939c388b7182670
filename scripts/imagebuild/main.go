// Command imagebuild packages static binaries as a reproducible OCI image,
// without a container engine (internal/imagebuild does the work; scripts/image.sh
// and `make image` run it).
//
//	go run ./scripts/imagebuild -ref ghcr.io/sluicehq/sluice:dev -epoch 1700000000 \
//	    -platform linux/amd64=bin/image-build/linux_amd64/sluice \
//	    -platform linux/arm64/v8=bin/image-build/linux_arm64/sluice \
//	    -o bin/image -archive bin/sluice-image.tar
//
// It prints the digest of the image index. With -rootfs DIR it writes the
// single layer's files into DIR instead (the Dockerfile's build stage uses
// it, so that both describe the same files).
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/internal/imagebuild"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "imagebuild:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		platforms, labels, ports list
		out                      = flag.String("o", "", "write the OCI layout into this directory (replaced)")
		archive                  = flag.String("archive", "", "also write the layout as one tar file (for ctr images import)")
		ref                      = flag.String("ref", "ghcr.io/sluicehq/sluice:dev", "the image reference recorded in index.json")
		epoch                    = flag.String("epoch", os.Getenv("SOURCE_DATE_EPOCH"), "creation time, Unix seconds (default $SOURCE_DATE_EPOCH)")
		path                     = flag.String("path", "/sluice", "where the binary goes in the image (also the entrypoint)")
		cmd                      = flag.String("cmd", "run", "the image's Cmd, space-separated (\"-\" for none)")
		rootfs                   = flag.String("rootfs", "", "write the layer's files into this directory instead of an image (needs -binary)")
		binary                   = flag.String("binary", "", "the binary for -rootfs")
	)
	flag.Var(&platforms, "platform", "os/arch[/variant]=binary, once per image of the index")
	flag.Var(&labels, "label", "key=value, a label of the image config (repeatable)")
	flag.Var(&ports, "expose", "a port the image exposes, like 8080/tcp (repeatable)")
	flag.Parse()

	secs, err := strconv.ParseInt(*epoch, 10, 64)
	if err != nil {
		return fmt.Errorf("-epoch (or SOURCE_DATE_EPOCH) %q: want Unix seconds, like git log -1 --format=%%ct", *epoch)
	}
	cfg := imagebuild.Config{Created: time.Unix(secs, 0), Path: *path, ExposedPorts: ports}
	if *cmd == "-" {
		cfg.Cmd = []string{}
	} else {
		cfg.Cmd = strings.Fields(*cmd)
	}
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			return fmt.Errorf("-label %q: want key=value", l)
		}
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		cfg.Labels[k] = v
	}

	if *rootfs != "" {
		bin, err := os.ReadFile(*binary)
		if err != nil {
			return fmt.Errorf("-binary: %w", err)
		}
		layer, err := imagebuild.RootFS(cfg, bin)
		if err != nil {
			return err
		}
		return unpack(*rootfs, layer)
	}

	for _, p := range platforms {
		spec, bin, ok := strings.Cut(p, "=")
		parts := strings.Split(spec, "/")
		if !ok || len(parts) < 2 || len(parts) > 3 {
			return fmt.Errorf("-platform %q: want os/arch[/variant]=binary", p)
		}
		pl := imagebuild.Platform{OS: parts[0], Arch: parts[1], Binary: bin}
		if len(parts) == 3 {
			pl.Variant = parts[2]
		}
		cfg.Platforms = append(cfg.Platforms, pl)
	}
	if *out == "" {
		return errors.New("-o: the layout directory is required")
	}
	idx, err := imagebuild.Build(cfg)
	if err != nil {
		return err
	}
	if err := imagebuild.WriteLayout(*out, idx, *ref); err != nil {
		return err
	}
	if *archive != "" {
		if err := imagebuild.WriteArchive(*archive, *out, cfg.Created); err != nil {
			return err
		}
	}
	d, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Println(d)
	return nil
}

// unpack writes the files of a tar made by imagebuild.RootFS under dir,
// with their modes (owners stay the caller's: the tar's are all root).
func unpack(dir string, layer []byte) error {
	tr := tar.NewReader(bytes.NewReader(layer))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		mode := os.FileMode(h.Mode & 0o777)
		if h.Mode&0o1000 != 0 {
			mode |= os.ModeSticky
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			data, err := io.ReadAll(tr)
			if err != nil {
				return err
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: unexpected tar entry type %c", h.Name, h.Typeflag)
		}
		if err := os.Chmod(p, mode); err != nil {
			return err
		}
	}
}

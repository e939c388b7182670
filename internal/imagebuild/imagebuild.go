package imagebuild

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// NonRoot is the uid and gid the image runs as (distroless's "nonroot"; the
// chart's securityContext expects it).
const NonRoot = 65532

// Platform is one image of the index: a static binary for one OS and
// architecture.
type Platform struct {
	OS      string // "linux"
	Arch    string // "amd64", "arm64"
	Variant string // "" (amd64), "v8" (arm64)
	Binary  string // path of the binary on this machine
}

func (p Platform) String() string {
	s := p.OS + "/" + p.Arch
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// Config describes the image. The zero value of each field but Platforms and
// Created is the documented default.
type Config struct {
	// Platforms: one image each, in this order in the index. Required.
	Platforms []Platform
	// Created is the creation time of the image and the modification time of
	// every file in it. Required: pass the commit time for reproducible
	// builds (time.Now() would make every build differ).
	Created time.Time
	// Path is where the binary goes in the image (default "/sluice": the
	// chart's preStop hook runs /sluice drain).
	Path string
	// Entrypoint (default [Path]) and Cmd (default ["run"]).
	Entrypoint []string
	Cmd        []string
	// User (default "65532:65532").
	User string
	// ExposedPorts, e.g. "8080/tcp" (default none).
	ExposedPorts []string
	// Labels of the image config (default none).
	Labels map[string]string
	// Annotations of the index (default none).
	Annotations map[string]string
}

func (c *Config) setDefaults() {
	if c.Path == "" {
		c.Path = "/sluice"
	}
	if c.Entrypoint == nil {
		c.Entrypoint = []string{c.Path}
	}
	if c.Cmd == nil {
		c.Cmd = []string{"run"}
	}
	if c.User == "" {
		c.User = fmt.Sprintf("%d:%d", NonRoot, NonRoot)
	}
}

func (c *Config) validate() error {
	var errs []error
	if len(c.Platforms) == 0 {
		errs = append(errs, errors.New("Platforms: at least one is required"))
	}
	seen := map[string]bool{}
	for _, p := range c.Platforms {
		if p.OS == "" || p.Arch == "" || p.Binary == "" {
			errs = append(errs, fmt.Errorf("Platforms: %q needs OS, Arch and Binary", p.String()))
		}
		if seen[p.String()] {
			errs = append(errs, fmt.Errorf("Platforms: %s given twice", p))
		}
		seen[p.String()] = true
	}
	if c.Created.IsZero() {
		errs = append(errs, errors.New("Created: required (the commit time, for a reproducible image)"))
	}
	if !path.IsAbs(c.Path) || path.Clean(c.Path) != c.Path || strings.Count(c.Path, "/") != 1 {
		errs = append(errs, fmt.Errorf("Path: %q must be a file in / (like /sluice)", c.Path))
	}
	return errors.Join(errs...)
}

// Build returns the OCI image index: one image per platform, each of one
// layer (see the package doc for what it holds).
func Build(cfg Config) (v1.ImageIndex, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("imagebuild: %w", err)
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range cfg.Platforms {
		img, err := image(cfg, p)
		if err != nil {
			return nil, fmt.Errorf("imagebuild: %s: %w", p, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add: img,
			Descriptor: v1.Descriptor{
				Platform: &v1.Platform{OS: p.OS, Architecture: p.Arch, Variant: p.Variant},
			},
		})
	}
	if len(cfg.Annotations) > 0 {
		idx = mutate.Annotations(idx, cfg.Annotations).(v1.ImageIndex)
	}
	return idx, nil
}

func image(cfg Config, p Platform) (v1.Image, error) {
	bin, err := os.ReadFile(p.Binary)
	if err != nil {
		return nil, err
	}
	rootfs, err := RootFS(cfg, bin)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(rootfs)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressionLevel(gzip.BestCompression))
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: cfg.Created.UTC()}
	ports := map[string]struct{}{}
	for _, port := range cfg.ExposedPorts {
		ports[port] = struct{}{}
	}
	if len(ports) == 0 {
		ports = nil
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: p.Arch,
		OS:           p.OS,
		Variant:      p.Variant,
		Created:      created,
		Config: v1.Config{
			Entrypoint:   cfg.Entrypoint,
			Cmd:          cfg.Cmd,
			User:         cfg.User,
			WorkingDir:   "/",
			ExposedPorts: ports,
			Labels:       cfg.Labels,
			Env:          []string{"PATH=/", "SSL_CERT_FILE=" + caFile},
		},
	})
	if err != nil {
		return nil, err
	}
	return mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History: v1.History{
			Created:   created,
			CreatedBy: "sluice imagebuild: " + cfg.Path + ", CA roots, passwd, /tmp",
		},
	})
}

const caFile = "/etc/ssl/certs/ca-certificates.crt"

// RootFS returns the image's only layer, uncompressed: the binary at
// cfg.Path (defaults applied) and the files the package doc lists, in sorted
// order with fixed owners, modes and times. The Dockerfile's build stage
// unpacks the same tar (`go run ./scripts/imagebuild -rootfs`).
func RootFS(cfg Config, binary []byte) ([]byte, error) {
	cfg.setDefaults()
	type entry struct {
		mode int64
		data []byte // nil for a directory
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", NonRoot, NonRoot)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", NonRoot)
	files := map[string]entry{
		"etc/":                            {mode: 0o755},
		"etc/group":                       {mode: 0o644, data: []byte(group)},
		"etc/nsswitch.conf":               {mode: 0o644, data: []byte("hosts: files dns\n")},
		"etc/passwd":                      {mode: 0o644, data: []byte(passwd)},
		"etc/ssl/":                        {mode: 0o755},
		"etc/ssl/certs/":                  {mode: 0o755},
		caFile[1:]:                        {mode: 0o644, data: CARoots()},
		"tmp/":                            {mode: 0o1777},
		strings.TrimPrefix(cfg.Path, "/"): {mode: 0o755, data: binary},
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := cfg.Created.UTC().Truncate(time.Second)
	for _, name := range names {
		e := files[name]
		h := &tar.Header{
			Name:    name,
			Mode:    e.mode,
			ModTime: mtime,
			Format:  tar.FormatUSTAR,
		}
		if e.data == nil {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// CARoots returns the PEM bundle of the Mozilla NSS roots that
// golang.org/x/crypto/x509roots/fallback carries, less those with a
// constraint a PEM file cannot express (a distrust-after date): a root the
// bundle would trust only in part is left out rather than trusted in full.
func CARoots() []byte {
	var buf bytes.Buffer
	for root := range bundle.Roots() {
		if root.Constraint != nil {
			continue
		}
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: root.Certificate})
	}
	return buf.Bytes()
}

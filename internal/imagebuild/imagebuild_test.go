package imagebuild_test

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/sluicehq/sluice/internal/imagebuild"
)

var epoch = time.Unix(1767225600, 0) // 2026-01-01T00:00:00Z

// config gives two platforms whose "binaries" are distinct files in dir.
func config(t *testing.T, dir string) imagebuild.Config {
	t.Helper()
	var ps []imagebuild.Platform
	for _, p := range []imagebuild.Platform{{OS: "linux", Arch: "amd64"}, {OS: "linux", Arch: "arm64", Variant: "v8"}} {
		p.Binary = filepath.Join(dir, p.Arch)
		if err := os.WriteFile(p.Binary, []byte("\x7fELF binary for "+p.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	return imagebuild.Config{Platforms: ps, Created: epoch, ExposedPorts: []string{"8080/tcp"},
		Labels: map[string]string{"org.opencontainers.image.version": "v0.0.0-test"}}
}

func digest(t *testing.T, cfg imagebuild.Config) v1.Hash {
	t.Helper()
	idx, err := imagebuild.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestReproducible: the same inputs give the same index digest, the same
// layout files and the same archive bytes; a different time or binary does
// not (so the check can fail).
func TestReproducible(t *testing.T) {
	dir := t.TempDir()
	cfg := config(t, dir)
	first, second := digest(t, cfg), digest(t, cfg)
	if first != second {
		t.Fatalf("two builds of the same inputs: %s then %s", first, second)
	}

	var archives [2][]byte
	for i := range archives {
		idx, err := imagebuild.Build(cfg)
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "layout", string(rune('a'+i)))
		if err := imagebuild.WriteLayout(out, idx, "example.test/sluice:v0"); err != nil {
			t.Fatal(err)
		}
		file := out + ".tar"
		// The layout's files get the build's times: the archive must not care.
		if err := os.Chtimes(filepath.Join(out, "index.json"), time.Now(), time.Now().Add(time.Duration(i)*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := imagebuild.WriteArchive(file, out, epoch); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		archives[i] = b
	}
	if !bytes.Equal(archives[0], archives[1]) {
		t.Fatal("two archives of the same image differ")
	}

	later := cfg
	later.Created = epoch.Add(time.Second)
	if d := digest(t, later); d == first {
		t.Fatalf("a different creation time gave the same digest %s", d)
	}
	other := config(t, t.TempDir())
	if err := os.WriteFile(other.Platforms[1].Binary, []byte("another binary"), 0o600); err != nil {
		t.Fatal(err)
	}
	if d := digest(t, other); d == first {
		t.Fatalf("a different binary gave the same digest %s", d)
	}
}

// TestImage reads the image back from its OCI layout, as a runtime would,
// and checks what the chart relies on.
func TestImage(t *testing.T) {
	dir := t.TempDir()
	cfg := config(t, dir)
	idx, err := imagebuild.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "layout")
	if err := imagebuild.WriteLayout(out, idx, "example.test/sluice:v0"); err != nil {
		t.Fatal(err)
	}
	p, err := layout.FromPath(out)
	if err != nil {
		t.Fatal(err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	topManifest, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(topManifest.Manifests); n != 1 {
		t.Fatalf("index.json holds %d descriptors, want 1", n)
	}
	if got := topManifest.Manifests[0].Annotations["io.containerd.image.name"]; got != "example.test/sluice:v0" {
		t.Errorf("index.json names the image %q", got)
	}
	multi, err := top.ImageIndex(topManifest.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if mt, _ := multi.MediaType(); mt != types.OCIImageIndex {
		t.Errorf("index media type %s", mt)
	}
	im, err := multi.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != len(cfg.Platforms) {
		t.Fatalf("%d images, want %d", len(im.Manifests), len(cfg.Platforms))
	}
	for i, desc := range im.Manifests {
		want := cfg.Platforms[i]
		if desc.Platform == nil || desc.Platform.OS != want.OS || desc.Platform.Architecture != want.Arch || desc.Platform.Variant != want.Variant {
			t.Errorf("image %d: platform %+v, want %s", i, desc.Platform, want)
		}
		img, err := multi.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Config.User != "65532:65532" || !slices.Equal(cf.Config.Entrypoint, []string{"/sluice"}) || !slices.Equal(cf.Config.Cmd, []string{"run"}) {
			t.Errorf("%s: user %q entrypoint %q cmd %q", want, cf.Config.User, cf.Config.Entrypoint, cf.Config.Cmd)
		}
		if !cf.Created.Time.Equal(epoch) || cf.Architecture != want.Arch || cf.OS != want.OS {
			t.Errorf("%s: created %s, %s/%s", want, cf.Created.Time, cf.OS, cf.Architecture)
		}
		if _, ok := cf.Config.ExposedPorts["8080/tcp"]; !ok {
			t.Errorf("%s: exposed ports %v", want, cf.Config.ExposedPorts)
		}
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		if len(layers) != 1 {
			t.Fatalf("%s: %d layers, want 1", want, len(layers))
		}
		rc, err := layers[0].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		files := readTar(t, rc)
		rc.Close()
		bin, _ := os.ReadFile(want.Binary)
		if f := files["sluice"]; !bytes.Equal(f.data, bin) || f.mode != 0o755 {
			t.Errorf("%s: /sluice mode %o, %d bytes (want the %s binary, 0755)", want, f.mode, len(f.data), want.Arch)
		}
		if !strings.Contains(string(files["etc/passwd"].data), "nonroot:x:65532:65532:") {
			t.Errorf("%s: /etc/passwd has no uid 65532:\n%s", want, files["etc/passwd"].data)
		}
		if f := files["tmp/"]; f.mode != 0o1777 {
			t.Errorf("%s: /tmp mode %o, want 1777", want, f.mode)
		}
		if n := countCerts(t, files["etc/ssl/certs/ca-certificates.crt"].data); n < 100 {
			t.Errorf("%s: the CA bundle holds %d certificates", want, n)
		}
	}
}

type file struct {
	mode int64
	data []byte
}

// readTar checks the layer's entries are sorted and owned by root at the
// image's creation time, and returns them.
func readTar(t *testing.T, r io.Reader) map[string]file {
	t.Helper()
	tr := tar.NewReader(r)
	files := map[string]file{}
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" || !h.ModTime.Equal(epoch) {
			t.Errorf("%s: owner %d:%d (%q:%q), time %s", h.Name, h.Uid, h.Gid, h.Uname, h.Gname, h.ModTime)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		files[h.Name] = file{mode: h.Mode, data: data}
	}
	if !slices.IsSorted(names) {
		t.Errorf("layer entries not sorted: %q", names)
	}
	return files
}

func countCerts(t *testing.T, b []byte) int {
	t.Helper()
	n := 0
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return n
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			t.Errorf("certificate %d: %v", n, err)
		}
		n++
	}
}

func TestConfigErrors(t *testing.T) {
	for name, cfg := range map[string]imagebuild.Config{
		"no platform":  {Created: epoch},
		"no time":      {Platforms: []imagebuild.Platform{{OS: "linux", Arch: "amd64", Binary: "x"}}},
		"nested path":  {Created: epoch, Path: "/usr/bin/sluice", Platforms: []imagebuild.Platform{{OS: "linux", Arch: "amd64", Binary: "x"}}},
		"twice":        {Created: epoch, Platforms: []imagebuild.Platform{{OS: "linux", Arch: "amd64", Binary: "x"}, {OS: "linux", Arch: "amd64", Binary: "y"}}},
		"missing arch": {Created: epoch, Platforms: []imagebuild.Platform{{OS: "linux", Binary: "x"}}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := imagebuild.Build(cfg); err == nil {
				t.Fatal("Build accepted it")
			}
		})
	}
}

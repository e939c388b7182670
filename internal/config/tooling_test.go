package config

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestToolingKeepsOutOfTheServicesNamespace: the project's scripts, CI,
// Makefile, end-to-end harness and docs name no SLUICE_ variable the
// service does not read. Their own settings use SLUICEDEV_: one exported
// for scripts/kafka.sh would otherwise make sluice, started from the same
// shell, exit 2 on an unknown variable.
func TestToolingKeepsOutOfTheServicesNamespace(t *testing.T) {
	known := map[string]bool{}
	for _, v := range Vars() {
		known[v.Name] = true
	}
	name := regexp.MustCompile(`SLUICE_[A-Z0-9_]+`)
	var files []string
	for _, root := range []string{"scripts", "e2e", "internal", "docs", ".ci", "Makefile"} {
		err := filepath.WalkDir(filepath.Join("..", "..", root), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && filepath.Base(p) == "config" && filepath.Base(filepath.Dir(p)) == "internal" {
				return filepath.SkipDir // this package: the service's own names and examples of others
			}
			if !d.IsDir() && !strings.Contains(p, string(filepath.Separator)+"testdata"+string(filepath.Separator)) {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(files) < 10 {
		t.Fatalf("found only %d files: not run from cmd/sluice?", len(files))
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range name.FindAllString(string(b), -1) {
			// SLUICE_SINK_... and the like name a group of variables.
			if !known[n] && !strings.HasSuffix(n, "_") {
				t.Errorf("%s: %s is not a variable sluice reads: a tool's own setting takes the SLUICEDEV_ prefix", p, n)
			}
		}
	}
}

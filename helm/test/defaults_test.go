package charttest

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestValuesDocumentTheBinarysDefaults: values.yaml leaves every setting
// unset (null or "") so the binary's default applies, and its comment says
// which default that is, as "SLUICE_X [default]". The default must be the
// one the binary declares (`sluice config --env`, read from the packages
// that own the settings), so that a default changed there cannot leave the
// chart's docs behind. A bracket that describes a derived default (the
// binary lists none) is not compared.
func TestValuesDocumentTheBinarysDefaults(t *testing.T) {
	knownVars(t)
	defaults := map[string]string{}
	row := regexp.MustCompile("^\\| `(SLUICE_[A-Z0-9_]+)` \\| `?([^|`]*)`? \\|")
	for _, line := range strings.Split(string(knownOut), "\n") {
		if m := row.FindStringSubmatch(line); m != nil {
			defaults[m[1]] = strings.TrimSpace(m[2])
		}
	}
	if defaults["SLUICE_WORKERS_MAX"] == "" {
		t.Fatalf("no default for SLUICE_WORKERS_MAX in `sluice config --env`:\n%s", knownOut)
	}
	values, err := os.ReadFile(chartDir + "/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	compared := 0
	for _, m := range regexp.MustCompile(`(SLUICE_[A-Z0-9_]+) \[([^\]]*)\]`).FindAllStringSubmatch(string(values), -1) {
		name, doc := m[1], m[2]
		def, ok := defaults[name]
		if !ok {
			t.Errorf("values.yaml documents %s, which the binary does not read", name)
			continue
		}
		if def == "" {
			continue
		}
		compared++
		rest, found := strings.CutPrefix(doc, def)
		if !found || (rest != "" && !strings.ContainsAny(rest[:1], ":, ")) {
			t.Errorf("values.yaml says %s defaults to [%s]; the binary's default is %s", name, doc, def)
		}
	}
	if compared < 40 {
		t.Errorf("compared only %d defaults: the comments' format changed?", compared)
	}
}

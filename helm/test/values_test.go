package charttest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	yamlv3 "go.yaml.in/yaml/v3"
)

// valueKey is a key of values.yaml: its dotted path, whether a `# --` doc
// comment covers it (on itself or on a parent), and its value.
type valueKey struct {
	path       string
	documented bool
	leaf       bool
	node       *yamlv3.Node
}

func valuesKeys(t *testing.T) []valueKey {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var out []valueKey
	var walk func(n *yamlv3.Node, prefix string, documented bool)
	walk = func(n *yamlv3.Node, prefix string, documented bool) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			path := strings.TrimPrefix(prefix+"."+k.Value, ".")
			doc := documented || strings.Contains(k.HeadComment, "# --")
			isMap := v.Kind == yamlv3.MappingNode && len(v.Content) > 0
			out = append(out, valueKey{path: path, documented: doc, leaf: !isMap, node: v})
			if isMap {
				walk(v, path, doc)
			}
		}
	}
	walk(doc.Content[0], "", false)
	return out
}

type jsonSchema struct {
	Ref                  string                 `json:"$ref"`
	Type                 any                    `json:"type"`
	Properties           map[string]*jsonSchema `json:"properties"`
	AdditionalProperties any                    `json:"additionalProperties"`
	AnyOf                []*jsonSchema          `json:"anyOf"`
	Definitions          map[string]*jsonSchema `json:"definitions"`
	Description          string                 `json:"description"`
}

func loadSchema(t *testing.T) *jsonSchema {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s jsonSchema
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

// schemaAt finds the schema of a dotted path; nil if the schema does not name it.
func schemaAt(root *jsonSchema, path string) *jsonSchema {
	s := root
	for _, k := range strings.Split(path, ".") {
		if s.Ref != "" {
			s = root.Definitions[strings.TrimPrefix(s.Ref, "#/definitions/")]
		}
		if s == nil || s.Properties[k] == nil {
			return nil
		}
		s = s.Properties[k]
	}
	return s
}

// TestValuesDocumentedAndInSchema: every key of values.yaml has a `# --`
// comment (its own or a parent's) and an entry in values.schema.json; every
// property of the schema is in values.yaml; every object of the schema that
// lists its properties refuses others.
func TestValuesDocumentedAndInSchema(t *testing.T) {
	schema := loadSchema(t)
	if schema.AdditionalProperties != false {
		t.Errorf("the schema's root accepts unknown keys")
	}
	inValues := map[string]bool{}
	emptyMap := map[string]bool{}
	for _, k := range valuesKeys(t) {
		inValues[k.path] = true
		if k.node.Kind == yamlv3.MappingNode && len(k.node.Content) == 0 {
			emptyMap[k.path] = true
		}
		if k.leaf && !k.documented {
			t.Errorf("values.yaml: %s has no `# --` doc comment", k.path)
		}
		if freeFormAncestor(schema, k.path) {
			continue // inside a Kubernetes type passed through as is: the strict decoding checks it
		}
		if schemaAt(schema, k.path) == nil {
			t.Errorf("values.yaml: %s is not in values.schema.json", k.path)
		}
	}
	var walk func(s *jsonSchema, prefix string)
	walk = func(s *jsonSchema, prefix string) {
		if s.Properties != nil && s.AdditionalProperties != false && prefix != "global" {
			t.Errorf("values.schema.json: %s lists its properties but accepts unknown ones", prefix)
		}
		for k, p := range s.Properties {
			path := strings.TrimPrefix(prefix+"."+k, ".")
			// A key under an empty map ({} by default) is documented by the schema alone.
			if !inValues[path] && !emptyMap[prefix] && path != "global" && !freeFormAncestor(schema, path) {
				t.Errorf("values.schema.json: %s is not in values.yaml (a default documents it)", path)
			}
			walk(p, path)
		}
	}
	walk(schema, "")
}

// freeFormAncestor: some parent of path is a free-form object in the schema
// (a Kubernetes type such as resources or a probe, passed through as is).
func freeFormAncestor(root *jsonSchema, path string) bool {
	parts := strings.Split(path, ".")
	for i := 1; i < len(parts); i++ {
		s := schemaAt(root, strings.Join(parts[:i], "."))
		if s != nil && s.Ref != "" {
			s = root.Definitions[strings.TrimPrefix(s.Ref, "#/definitions/")]
		}
		if s != nil && s.AdditionalProperties != false {
			return true
		}
	}
	return false
}

var tableLine = regexp.MustCompile(`^([A-Za-z0-9.]+): (SLUICE_[A-Z0-9_]+)$`)

// configTable reads the SLUICE_* tables of templates/_config.tpl.
func configTable(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir, "templates", "_config.tpl"))
	if err != nil {
		t.Fatal(err)
	}
	table := map[string]string{}
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, `{{- define "sluice.configEnv"`), strings.HasPrefix(line, `{{- define "sluice.configFiles"`):
			in = true
		case strings.HasPrefix(line, "{{- end }}"):
			in = false
		case in:
			m := tableLine.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("_config.tpl: table line %q is not `path: SLUICE_NAME`", line)
			}
			if _, dup := table[m[1]]; dup {
				t.Errorf("_config.tpl: %s mapped twice", m[1])
			}
			table[m[1]] = m[2]
		}
	}
	if len(table) < 50 {
		t.Fatalf("_config.tpl: read only %d settings; did the table move?", len(table))
	}
	return table
}

// TestConfigTable: the table, values.yaml's config tree and the schema agree:
// every config leaf maps to exactly one variable, every mapped path exists,
// no variable is set by two paths, and the schema describes each with its
// variable's name.
func TestConfigTable(t *testing.T) {
	table := configTable(t)
	schema := loadSchema(t)
	leaves := map[string]bool{}
	for _, k := range valuesKeys(t) {
		if p, ok := strings.CutPrefix(k.path, "config."); ok && k.leaf {
			leaves[p] = true
		}
	}
	vars := map[string]string{}
	for path, name := range table {
		if !leaves[path] {
			t.Errorf("_config.tpl maps config.%s, which values.yaml does not have", path)
		}
		if other, dup := vars[name]; dup {
			t.Errorf("%s is set by both config.%s and config.%s", name, path, other)
		}
		vars[name] = path
		if s := schemaAt(schema, "config."+path); s == nil || !strings.HasPrefix(s.Description, name) {
			t.Errorf("values.schema.json: config.%s should be described as %s", path, name)
		}
	}
	var unmapped []string
	for p := range leaves {
		if _, ok := table[p]; !ok {
			unmapped = append(unmapped, p)
		}
	}
	sort.Strings(unmapped)
	if len(unmapped) > 0 {
		t.Errorf("config keys with no SLUICE_ variable in _config.tpl: %v", unmapped)
	}
}

// TestConfigTableCoversSluice: the chart's table and the variables the
// service reads (`sluice config --env`) are the same set: every one can be
// set through the chart, and the chart sets none the service would refuse.
func TestConfigTableCoversSluice(t *testing.T) {
	table := configTable(t)
	inChart := map[string]bool{}
	for _, name := range table {
		inChart[name] = true
		inChart[strings.TrimSuffix(name, "_FILE")] = true // X_FILE also covers X
	}
	// What the service reads is what it says it reads: `sluice config
	// --env`, generated from the one declaration of each setting.
	found := knownVars(t)
	var missing []string
	for name := range found {
		if !inChart[name] && !strings.HasSuffix(name, "_") {
			missing = append(missing, name)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("variables the service reads that the chart cannot set (add each to templates/_config.tpl, values.yaml and values.schema.json): %v", missing)
	}
	var ahead []string
	for _, name := range table {
		if !found[name] && !found[strings.TrimSuffix(name, "_FILE")] {
			ahead = append(ahead, name)
		}
	}
	slices.Sort(ahead)
	if len(ahead) > 0 {
		t.Errorf("variables the chart can set that the service does not read (it refuses to start with them): %v", ahead)
	}
	t.Logf("the service reads %d SLUICE_ variables; the chart maps %d", len(found), len(table))
}

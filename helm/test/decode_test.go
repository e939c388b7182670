package charttest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// object is one rendered document, decoded.
type object struct {
	gvk   schema.GroupVersionKind
	name  string
	typed runtime.Object // for built-in kinds: the API type (*appsv1.Deployment, ...)
	raw   map[string]any // always: the document as JSON data
}

func (o object) String() string { return o.gvk.Kind + "/" + o.name }

// strictDecoder decodes built-in kinds into their API types and fails on
// unknown or duplicate fields, as `kubectl apply --validate=strict` does.
var strictDecoder = serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()

// decode decodes one document strictly: built-in kinds into the Kubernetes
// API types, custom resources against their CRD's structural schema.
func decode(t testing.TB, doc string) (object, error) {
	t.Helper()
	raw := map[string]any{}
	if err := yaml.Unmarshal([]byte(doc), &raw); err != nil {
		return object{}, fmt.Errorf("yaml: %w", err)
	}
	apiVersion, _ := raw["apiVersion"].(string)
	kind, _ := raw["kind"].(string)
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil || kind == "" {
		return object{}, fmt.Errorf("document without apiVersion/kind: %q", doc)
	}
	gvk := gv.WithKind(kind)
	meta, _ := raw["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	o := object{gvk: gvk, name: name, raw: raw}
	if scheme.Scheme.Recognizes(gvk) {
		typed, _, err := strictDecoder.Decode([]byte(doc), nil, nil)
		if err != nil {
			return o, fmt.Errorf("%s: %w", o, err)
		}
		o.typed = typed
		return o, nil
	}
	crd, ok := crdSchemas(t)[gvk]
	if !ok {
		return o, fmt.Errorf("%s: neither a built-in kind nor a CRD in testdata/crds.txt", o)
	}
	if errs := crd.validate(raw); len(errs) > 0 {
		return o, fmt.Errorf("%s: %w", o, errs.ToAggregate())
	}
	return o, nil
}

// crdSchema is one version of a CRD, ready to check objects as the API
// server does: prune unknown fields (here: report them), then validate.
type crdSchema struct {
	structural *structuralschema.Structural
	validator  validation.SchemaValidator
}

func (c crdSchema) validate(obj map[string]any) field.ErrorList {
	var errs field.ErrorList
	cp := runtime.DeepCopyJSON(obj)
	unknown := pruning.PruneWithOptions(cp, c.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	for _, p := range unknown {
		errs = append(errs, field.Invalid(field.NewPath(p), "", "unknown field"))
	}
	return append(errs, validation.ValidateCustomResource(nil, obj, c.validator)...)
}

var (
	crdOnce  sync.Once
	crdByGVK map[schema.GroupVersionKind]crdSchema
	crdErr   error
)

// crdSchemas loads every CRD of testdata/crds.txt from its Go module
// (go mod download: the module cache, or the module proxy the first time).
func crdSchemas(t testing.TB) map[schema.GroupVersionKind]crdSchema {
	t.Helper()
	crdOnce.Do(func() { crdByGVK, crdErr = loadCRDs() })
	if crdErr != nil {
		t.Fatalf("CRDs: %v", crdErr)
	}
	return crdByGVK
}

// crdFile is a line of testdata/crds.txt.
type crdFile struct{ module, version, path string }

func readCRDList() ([]crdFile, error) {
	f, err := os.Open("testdata/crds.txt")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []crdFile
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fs := strings.Fields(line)
		if len(fs) != 3 {
			return nil, fmt.Errorf("crds.txt: want `module version file`, got %q", line)
		}
		out = append(out, crdFile{fs[0], fs[1], fs[2]})
	}
	return out, sc.Err()
}

// moduleDir downloads module@version into the module cache and returns its directory.
func moduleDir(module, version string) (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", module+"@"+version)
	cmd.Dir = os.TempDir() // outside this module: no go.mod to consult or change
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	var info struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &info); jerr == nil && info.Error != "" {
		return "", errors.New(info.Error)
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		return "", fmt.Errorf("go mod download %s@%s: %w", module, version, err)
	}
	return info.Dir, nil
}

func loadCRDs() (map[schema.GroupVersionKind]crdSchema, error) {
	list, err := readCRDList()
	if err != nil {
		return nil, err
	}
	out := map[schema.GroupVersionKind]crdSchema{}
	for _, f := range list {
		dir, err := moduleDir(f.module, f.version)
		if err != nil {
			return nil, err
		}
		b, err := os.ReadFile(filepath.Join(dir, f.path))
		if err != nil {
			return nil, err
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(b, &crd); err != nil {
			return nil, fmt.Errorf("%s: %w", f.path, err)
		}
		for _, v := range crd.Spec.Versions {
			if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
				continue
			}
			var internal apiextensions.JSONSchemaProps
			if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, &internal, nil); err != nil {
				return nil, fmt.Errorf("%s %s: %w", f.path, v.Name, err)
			}
			s, err := structuralschema.NewStructural(&internal)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", f.path, v.Name, err)
			}
			val, _, err := validation.NewSchemaValidator(&internal)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", f.path, v.Name, err)
			}
			gvk := schema.GroupVersionKind{Group: crd.Spec.Group, Version: v.Name, Kind: crd.Spec.Names.Kind}
			out[gvk] = crdSchema{structural: s, validator: val}
		}
	}
	return out, nil
}

// TestStrictDecodingCatchesTypos makes sure the decoder is as strict as claimed.
func TestStrictDecodingCatchesTypos(t *testing.T) {
	for _, tc := range []struct{ name, doc string }{
		{"built-in kind", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports: [{port: 80}]\n  selektor: {a: b}\n"},
		{"built-in wrong type", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports: [{port: eighty}]\n"},
		{"custom resource", "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: x}\nspec:\n  selector: {}\n  endpoints: [{port: http, intervall: 15s}]\n"},
		{"custom resource wrong type", "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: x}\nspec:\n  scaleTargetRef: {name: x}\n  maxReplicaCount: many\n  triggers: [{type: cpu, metadata: {}}]\n"},
		{"unknown kind", "apiVersion: example.com/v1\nkind: Gizmo\nmetadata: {name: x}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decode(t, tc.doc); err == nil {
				t.Fatalf("decoded without error:\n%s", tc.doc)
			} else {
				t.Logf("refused as expected: %v", err)
			}
		})
	}
	for _, doc := range []string{
		"apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports: [{port: 80}]\n",
		"apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: x}\nspec:\n  selector: {}\n  endpoints: [{port: http, interval: 15s}]\n",
	} {
		if _, err := decode(t, doc); err != nil {
			t.Errorf("valid document refused: %v\n%s", err, doc)
		}
	}
}

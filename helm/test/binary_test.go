package charttest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestBinaryAcceptsRenderedEnv runs `sluice config` (validate and print the
// configuration, exit 2 on a bad or unknown variable) with the environment
// each rendered Deployment gives the container: secrets referenced by the
// chart become fake values, mounted secret files become real files (PEM
// where a certificate or key is expected), and a path under one of the
// container's other volume mounts (the file sink's /data/out.jsonl) moves to
// a fresh, empty directory standing for that volume: its root exists, as in
// the pod, and nothing under it does (see containerEnv).
//
// The binary is $SLUICEDEV_BIN, or built from ../../cmd/sluice. A case that
// sets variables the binary does not know (its `config --env` does not list
// them) fails, naming them: the binary would refuse to start.
func TestBinaryAcceptsRenderedEnv(t *testing.T) {
	bin := sluiceBinary(t)
	knownVars(t)
	ch := loadChart(t)
	files := fakeSecretFiles(t)
	for _, tc := range matrix(t) {
		t.Run(tc.name, func(t *testing.T) {
			r, err := render(t, ch, merge(readValues(t, tc.file), tc.set), tc.apiVersions)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			var dep *appsv1.Deployment
			for _, d := range r.docs {
				if o, err := decode(t, d); err == nil {
					if v, ok := o.typed.(*appsv1.Deployment); ok {
						dep = v
					}
				}
			}
			if dep == nil {
				t.Fatal("no Deployment")
			}
			env, ahead := containerEnv(t, dep, files)
			if len(ahead) > 0 {
				// The binary refuses a SLUICE_ variable it does not know:
				// this pod would exit 2 at start.
				slices.Sort(ahead)
				t.Fatalf("the chart sets variables the binary does not read: %v", ahead)
			}
			cmd := exec.Command(bin, "config")
			cmd.Env = env
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("sluice config refused the chart's environment: %v\n%s\nenv: %v", err, out, env)
			}
		})
	}
}

// TestBinaryRefusesFileSinkMissingDir keeps containerEnv honest: a volume
// stands in as an empty directory, never as the directories a path needs, so
// a file sink path below a subdirectory nobody creates is refused, as it
// would be in the pod.
func TestBinaryRefusesFileSinkMissingDir(t *testing.T) {
	bin := sluiceBinary(t)
	vals := merge(readValues(t, "jetstream"), parseValues(t, "config: {sink: {file: {path: /data/missing/out.jsonl}}}"))
	r, err := render(t, loadChart(t), vals, nil)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	var dep *appsv1.Deployment
	for _, d := range r.docs {
		if o, err := decode(t, d); err == nil {
			if v, ok := o.typed.(*appsv1.Deployment); ok {
				dep = v
			}
		}
	}
	if dep == nil {
		t.Fatal("no Deployment")
	}
	env, _ := containerEnv(t, dep, fakeSecretFiles(t))
	if !slices.ContainsFunc(env, func(kv string) bool {
		p, ok := strings.CutPrefix(kv, "SLUICE_SINK_FILE_PATH=")
		return ok && strings.HasSuffix(p, "/data/missing/out.jsonl") && p != "/data/missing/out.jsonl"
	}) {
		t.Fatalf("SLUICE_SINK_FILE_PATH was not moved under the stand-in for the data volume: %v", env)
	}
	cmd := exec.Command(bin, "config")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if _, exit := err.(*exec.ExitError); !exit || !strings.Contains(string(out), "SLUICE_SINK_FILE_PATH") {
		t.Fatalf("sluice config accepted a file sink path whose directory the volume does not have: %v\n%s", err, out)
	}
}

// containerEnv is the environment of the Deployment's container, as the
// binary would see it in the pod, and the SLUICE_ variables it sets that
// the binary does not know (ahead of it):
//   - a secretKeyRef becomes a fake value;
//   - a file under /etc/sluice/secrets/ (a mounted Secret) becomes a real file
//     with fake content (fakeFiles);
//   - an absolute path under another volume mount (an emptyDir for the file
//     sink, say) is moved under a temporary directory that stands for the
//     volume: the mount point exists, empty, as in a new pod, and nothing is
//     created below it.
//
// A path under no mount is left as it is: the binary checks it against this
// machine, which the invariants make moot for the file sink (it must be under
// a writable mount).
func containerEnv(t *testing.T, dep *appsv1.Deployment, files *fakeFiles) (env, ahead []string) {
	t.Helper()
	c := dep.Spec.Template.Spec.Containers[0]
	volumes := t.TempDir()
	env = []string{"PATH=" + os.Getenv("PATH")}
	for _, e := range c.Env {
		v := e.Value
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			v = map[string]string{"SLUICE_SINK_HTTP_HEADERS": "Authorization:Bearer x"}[e.Name]
			if v == "" {
				v = "fake-" + e.ValueFrom.SecretKeyRef.Key
			}
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			v = dep.Name + "-5d4f8b7c9-x2x7q" // a pod name as the downward API gives it
		case e.ValueFrom != nil:
			continue // configMapKeyRef etc.: not a SLUICE_ setting in the ci files
		case strings.HasPrefix(v, "/etc/sluice/secrets/"):
			v = files.path(t, e.Name)
		case strings.HasPrefix(v, "/"):
			if m, ok := mountOf(c.VolumeMounts, v); ok {
				dir := filepath.Join(volumes, m.Name)
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				v = dir + strings.TrimPrefix(v, m.MountPath)
			}
		}
		if strings.HasPrefix(e.Name, "SLUICE_") && !knownVars(t)[e.Name] {
			ahead = append(ahead, e.Name)
		}
		env = append(env, e.Name+"="+v)
	}
	return env, ahead
}

// mountOf is the volume mount a container path is on (the deepest one).
func mountOf(mounts []corev1.VolumeMount, path string) (corev1.VolumeMount, bool) {
	var best corev1.VolumeMount
	found := false
	for _, m := range mounts {
		mp := strings.TrimSuffix(m.MountPath, "/")
		if (path == mp || strings.HasPrefix(path, mp+"/")) && (!found || len(mp) > len(strings.TrimSuffix(best.MountPath, "/"))) {
			best, found = m, true
		}
	}
	return best, found
}

var (
	knownOnce sync.Once
	known     map[string]bool
	knownErr  error
	knownOut  []byte
)

// knownVars: the variables `sluice config --env` lists.
func knownVars(t *testing.T) map[string]bool {
	t.Helper()
	bin := sluiceBinary(t)
	knownOnce.Do(func() {
		knownOut, knownErr = exec.Command(bin, "config", "--env").CombinedOutput()
		known = map[string]bool{}
		for _, m := range regexp.MustCompile("`(SLUICE_[A-Z0-9_]+)`").FindAllStringSubmatch(string(knownOut), -1) {
			known[m[1]] = true
		}
	})
	if knownErr != nil {
		t.Fatalf("sluice config --env: %v\n%s", knownErr, knownOut)
	}
	if len(known) == 0 {
		t.Fatalf("sluice config --env listed no variables:\n%s", knownOut)
	}
	return known
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binOut  []byte
)

func sluiceBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SLUICEDEV_BIN"); p != "" {
		return p
	}
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sluice-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "sluice")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/sluice")
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
		binOut, binErr = cmd.CombinedOutput()
	})
	if binErr != nil {
		t.Fatalf("build sluice (set SLUICEDEV_BIN to use a built one): %v\n%s", binErr, binOut)
	}
	return binPath
}

// fakeFiles writes what a mounted Secret would hold, per variable.
type fakeFiles struct {
	dir       string
	cert, key []byte
}

func fakeSecretFiles(t *testing.T) *fakeFiles {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sluice-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeFiles{
		dir:  t.TempDir(),
		cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
}

func (f *fakeFiles) path(t *testing.T, name string) string {
	t.Helper()
	var content []byte
	switch {
	case strings.HasSuffix(name, "_CA_FILE"), strings.HasSuffix(name, "_CERT_FILE"):
		content = f.cert
	case strings.HasSuffix(name, "_KEY_FILE"):
		content = f.key
	case strings.Contains(name, "DSN"):
		content = []byte("postgres://sluice:fake@db:5432/sluice\n")
	default:
		content = []byte("fake-" + strings.ToLower(name) + "\n")
	}
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, content, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPreStopDrainCommand runs the chart's preStop command (with /sluice
// replaced by the binary) the way the kubelet would, inside the container's
// environment, with config.httpAddr and config.adminAddr set, against two
// stand-ins of the service's listeners: it must POST /drain to the admin
// address, once, and never to the public one (which refuses it).
func TestPreStopDrainCommand(t *testing.T) {
	bin := sluiceBinary(t)
	var drained, public atomic.Int32
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/drain" {
			drained.Add(1)
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer admin.Close()
	pub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		public.Add(1)
		w.WriteHeader(http.StatusNotFound)
	}))
	defer pub.Close()
	port := pub.Listener.Addr().(*net.TCPAddr).Port

	vals := merge(readValues(t, "default"), parseValues(t, fmt.Sprintf("config: {httpAddr: \":%d\", adminAddr: %q}", port, admin.Listener.Addr().String())))
	r, err := render(t, loadChart(t), vals, nil)
	if err != nil {
		t.Fatal(err)
	}
	var c corev1.Container
	for _, d := range r.docs {
		if o, err := decode(t, d); err == nil {
			if dep, ok := o.typed.(*appsv1.Deployment); ok {
				c = dep.Spec.Template.Spec.Containers[0]
			}
		}
	}
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Exec == nil {
		t.Fatal("no exec preStop hook")
	}
	argv := slices.Clone(c.Lifecycle.PreStop.Exec.Command)
	if argv[0] != "/sluice" {
		t.Fatalf("preStop runs %q, not the image's /sluice", argv[0])
	}
	argv[0] = bin
	env := []string{"PATH=" + os.Getenv("PATH")}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env = append(env, e.Name+"="+e.Value)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", argv, err, out)
	}
	if drained.Load() != 1 || public.Load() != 0 {
		t.Fatalf("the preStop command made %d POST /drain requests to the admin address (want 1) and %d requests to the public one (want 0)",
			drained.Load(), public.Load())
	}
}

// TestMain removes the sluice binary the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

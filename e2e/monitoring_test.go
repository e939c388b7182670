package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/testutil"
)

// TestMonitoringWithRealPrometheus checks the chart's Grafana dashboard and
// its alert rules against what the real binary exports, with a real
// Prometheus (scripts/prometheus.sh: Debian's package, on 127.0.0.1).
//
// Three `sluice run` processes do real work while Prometheus scrapes them
// every second: one consumes a kfake topic (with a dead-letter topic), one a
// JetStream stream and one core NATS subjects on an in-process nats-server,
// so that the series of every source exist. Prometheus also loads the
// chart's rule file (helm/sluice/rules/sluice.rules.yaml, the one the
// PrometheusRule template ships) and evaluates it every second.
//
// Then, once everything produced has been delivered and Prometheus has
// scraped both processes several more times:
//
//   - every query of every dashboard panel (read from the chart's
//     dashboards/sluice.json, its template variables substituted as Grafana
//     would with "All" selected) must evaluate without error and return at
//     least one series: the scenario runs every kind of source, so a panel
//     with no data queries a name the binary does not export;
//   - every alerting rule must have been evaluated by Prometheus without error
//     and be inactive (a healthy run fires nothing), its expression must
//     return no series, and every metric selector inside the expression must
//     return at least one series (so an alert is not silent only because it
//     names a metric that does not exist).
//
// No metric name is written here: the names come from the dashboard and the
// rules, and the truth from the binary's /metrics as Prometheus scraped it.
// The binary is $SLUICEDEV_BIN, or built from cmd/sluice.
// Each alert's firing and silent cases are `promtool test rules`
// (helm/test/testdata/rules, run by scripts/prometheus.sh rules).
func TestMonitoringWithRealPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts Prometheus and two sluice processes")
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := os.Getenv("SLUICEDEV_BIN")
	if bin == "" {
		if bin, err = Build(ctx, dir); err != nil {
			t.Fatal(err)
		}
	}

	// Kafka: kfake, a 4-partition topic and its dead-letter topic.
	b, err := NewFake(filepath.Join(dir, "kfake"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const topic, records = "mon", 3000
	for _, tp := range []string{topic, topic + "-dlq"} {
		if err := createTopic(ctx, b, tp, 4); err != nil {
			t.Fatal(err)
		}
	}
	// JetStream: an in-process nats-server with a stream and a dead-letter stream.
	js := startJetStream(t, dir)
	defer js.close()

	common := map[string]string{
		"SLUICE_BUFFER_MAX_RECORDS": "500",
		"SLUICE_BUFFER_MAX_BYTES":   "64MiB",
		"SLUICE_COMMIT_INTERVAL":    "200ms",
		"SLUICE_AUTOSCALE_INTERVAL": "250ms",
		"SLUICE_SHUTDOWN_TIMEOUT":   "10s",
	}
	withCommon := func(m map[string]string) map[string]string {
		for k, v := range common {
			m[k] = v
		}
		return m
	}
	procs := map[string]*Process{}
	start := func(pod string, env map[string]string) {
		p, err := StartSluice(bin, pod, filepath.Join(dir, pod+".out"), filepath.Join(dir, pod+".log"), withCommon(env))
		if err != nil {
			t.Fatal(err)
		}
		procs[pod] = p
	}
	start("kafka-0", map[string]string{
		"SLUICE_KAFKA_BROKERS":        b.Addr(),
		"SLUICE_KAFKA_TOPICS":         topic,
		"SLUICE_KAFKA_GROUP":          "mon",
		"SLUICE_KAFKA_FETCH_MAX_WAIT": "100ms",
		"SLUICE_DLQ_TOPIC":            topic + "-dlq",
	})
	start("jetstream-0", map[string]string{
		"SLUICE_SOURCE":             "jetstream",
		"SLUICE_NATS_URL":           js.srv.ClientURL(),
		"SLUICE_NATS_STREAM":        js.stream,
		"SLUICE_NATS_CONSUMER":      "mon",
		"SLUICE_NATS_PULL_MAX_WAIT": "1s",
		"SLUICE_NATS_INFO_INTERVAL": "250ms",
		"SLUICE_DLQ_SUBJECT":        "mondlq",
		"SLUICE_DLQ_NATS_URL":       js.srv.ClientURL(),
	})
	// Core NATS: at most once, so records published before its
	// subscription exists are not for it; the wait below publishes until it
	// has delivered enough.
	start("nats-0", map[string]string{
		"SLUICE_SOURCE":        "nats",
		"SLUICE_NATS_URL":      js.srv.ClientURL(),
		"SLUICE_NATS_SUBJECTS": "core.>",
	})
	defer func() {
		for name, p := range procs {
			if err := p.Stop(20 * time.Second); err != nil {
				t.Errorf("stop %s: %v", name, err)
			}
		}
		if t.Failed() {
			for name, p := range procs {
				if log, err := os.ReadFile(p.LogFile); err == nil {
					t.Logf("%s log (last 3000 bytes):\n%s", name, tail(log, 3000))
				}
			}
		}
	}()

	// Prometheus scrapes both every second, with the labels a Kubernetes
	// scrape gives (namespace, pod), and evaluates the chart's rules.
	const namespace = "monitoring-test"
	rules := filepath.Join(root, "helm", "sluice", "rules", "sluice.rules.yaml")
	prom := startPrometheus(t, root, filepath.Join(dir, "prometheus"), namespace, rules, procs)

	// The workload, a healthy one: everything produced must be delivered.
	pr, err := StartProducer(ctx, b, topic, records, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, failed, err := pr.Wait(); failed > 0 {
		t.Fatalf("producer: %d records failed: %v", failed, err)
	}
	for i := range records {
		if _, err := js.js.Publish(ctx, js.subject+"."+strconv.Itoa(i%64), []byte(Value("js", i))); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}

	// Wait, bounded, until both have delivered everything, as Prometheus
	// sees it, and then until it has scraped each at least 5 more times
	// and evaluated the rules after that.
	deliveredQ := func(pod string) string {
		return fmt.Sprintf(`sum(%s{pod=%q})`, deliveredMetric(t, root), pod)
	}
	published := 0
	for pod := range procs {
		waitFor(ctx, t, fmt.Sprintf("%s delivered %d records (as scraped)", pod, records), func() (bool, string) {
			v, err := prom.scalar(ctx, deliveredQ(pod))
			if pod == "nats-0" && (err != nil || v < records) {
				for range 200 {
					if err := js.nc.Publish("core."+strconv.Itoa(published%64), []byte(Value("core", published))); err != nil {
						return false, "publish: " + err.Error()
					}
					published++
				}
			}
			return err == nil && v >= records, fmt.Sprintf("%v (err %v)", v, err)
		})
	}
	settled := time.Now()
	for pod := range procs {
		waitFor(ctx, t, pod+" scraped 5 times after the workload", func() (bool, string) {
			v, err := prom.scalar(ctx, fmt.Sprintf(`count_over_time(up{pod=%q}[%ds])`, pod, int(time.Since(settled).Seconds())+1))
			return err == nil && v >= 5, fmt.Sprintf("%v (err %v)", v, err)
		})
	}
	waitFor(ctx, t, "rules evaluated after the workload", func() (bool, string) {
		groups, err := prom.rules(ctx)
		if err != nil || len(groups) == 0 {
			return false, fmt.Sprintf("%d groups (err %v)", len(groups), err)
		}
		for _, g := range groups {
			if g.LastEvaluation.Before(settled.Add(time.Second)) {
				return false, g.Name + " last evaluated " + g.LastEvaluation.String()
			}
		}
		return true, ""
	})

	vars := map[string]string{"namespace": namespace, "__rate_interval": "5s", "__interval": "1s", "__range": "1m"}
	t.Run("dashboard", func(t *testing.T) {
		for _, q := range dashboardQueries(t, filepath.Join(root, "helm", "sluice", "dashboards", "sluice.json"), vars) {
			n, err := prom.count(ctx, q.expr)
			switch {
			case err != nil:
				t.Errorf("panel %q: %s\n  query %s\n  error: %v", q.panel, q.what, q.expr, err)
			case n == 0:
				t.Errorf("panel %q: %s returns no series\n  query %s", q.panel, q.what, q.expr)
			}
		}
	})
	defer func() {
		if t.Failed() {
			if names, err := prom.names(ctx); err == nil {
				t.Logf("the metric names Prometheus scraped: %s", strings.Join(names, " "))
			}
		}
	}()
	t.Run("alerts", func(t *testing.T) {
		groups, err := prom.rules(ctx)
		if err != nil {
			t.Fatal(err)
		}
		alerts := 0
		for _, g := range groups {
			for _, r := range g.Rules {
				if r.Type != "alerting" {
					continue
				}
				alerts++
				if r.Health != "ok" {
					t.Errorf("alert %s: health %q: %s", r.Name, r.Health, r.LastError)
				}
				if r.State != "inactive" {
					t.Errorf("alert %s is %s in a healthy run: %s", r.Name, r.State, r.Query)
				}
				if n, err := prom.count(ctx, r.Query); err != nil || n != 0 {
					t.Errorf("alert %s: its expression returns %d series (err %v) in a healthy run: %s", r.Name, n, err, r.Query)
				}
				sels := selectors(r.Query)
				if len(sels) == 0 {
					t.Errorf("alert %s: no metric selector found in %s", r.Name, r.Query)
				}
				for _, s := range sels {
					if n, err := prom.count(ctx, s); err != nil || n == 0 {
						t.Errorf("alert %s: %s returns no series (err %v): the binary does not export it, or not with these labels", r.Name, s, err)
					}
				}
			}
		}
		if alerts == 0 {
			t.Fatalf("Prometheus loaded no alerting rule from %s", rules)
		}
		t.Logf("%d alerts evaluated", alerts)
	})
}

// deliveredMetric is the counter the dashboard's "Delivered / s" stat uses
// (so that the name here is the dashboard's, not a copy).
func deliveredMetric(t *testing.T, root string) string {
	t.Helper()
	for _, q := range dashboardQueries(t, filepath.Join(root, "helm", "sluice", "dashboards", "sluice.json"), nil) {
		if strings.HasPrefix(strings.ToLower(q.panel), "delivered") {
			if s := selectors(q.expr); len(s) == 1 {
				return strings.SplitN(s[0], "{", 2)[0]
			}
		}
	}
	t.Fatal(`the dashboard has no "Delivered" panel with one metric`)
	return ""
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// waitFor polls cond every 200ms until it holds, failing the test when ctx
// ends first (the test's overall deadline bounds every wait).
func waitFor(ctx context.Context, t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting until %s: last %s", what, last)
		case <-tick.C:
		}
	}
}

// ---------------------------------------------------------------------------
// JetStream

type jetStream struct {
	srv     *server.Server
	nc      *nats.Conn
	js      jetstream.JetStream
	stream  string
	subject string
}

func startJetStream(t *testing.T, dir string) *jetStream {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: filepath.Join(dir, "nats"), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		t.Fatal("nats-server not ready within 10s")
	}
	s := &jetStream{srv: srv, stream: "MON", subject: "mon"}
	if s.nc, err = nats.Connect(srv.ClientURL(), nats.Name("monitoring-test")); err != nil {
		s.close()
		t.Fatal(err)
	}
	if s.js, err = jetstream.New(s.nc); err != nil {
		s.close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for name, subj := range map[string]string{s.stream: s.subject + ".>", s.stream + "_DLQ": "mondlq"} {
		if _, err := s.js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subj}, Storage: jetstream.MemoryStorage}); err != nil {
			s.close()
			t.Fatalf("create stream %s: %v", name, err)
		}
	}
	return s
}

func (s *jetStream) close() {
	if s.nc != nil {
		s.nc.Close()
	}
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
}

// ---------------------------------------------------------------------------
// Prometheus

type prometheusServer struct {
	url    string
	client *http.Client // its own transport, whose idle connections the cleanup closes
}

// startPrometheus writes a config that scrapes each process every second
// with the labels a Kubernetes scrape adds (namespace, pod) and loads the
// rule file, then starts Prometheus with scripts/prometheus.sh; it is stopped
// (and its data deleted) when the test ends. When the script says it cannot
// run Prometheus here (exit 3: SKIPPED, not in CI) the test is skipped with
// its reason; in CI the script fails instead, and so does the test.
func startPrometheus(t *testing.T, root, dir, namespace, rules string, procs map[string]*Process) *prometheusServer {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n")
	fmt.Fprintf(&cfg, "rule_files:\n  - %q\n", rules)
	fmt.Fprintf(&cfg, "scrape_configs:\n  - job_name: sluice\n    static_configs:\n")
	names := make([]string, 0, len(procs))
	for name := range procs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fmt.Fprintf(&cfg, "      - targets: [%q]\n        labels: {namespace: %q, pod: %q}\n", procs[name].HTTPAddr, namespace, name)
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	port, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(root, "scripts", "prometheus.sh")
	cmd := exec.Command(script, "start", dir)
	cmd.Env = append(os.Environ(), "SLUICEDEV_PROMETHEUS_PORT="+strconv.Itoa(port))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 3 {
		t.Skipf("scripts/prometheus.sh cannot run Prometheus here:\n%s", stderr.String())
	}
	tr := &http.Transport{}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		if t.Failed() {
			if log, err := os.ReadFile(filepath.Join(dir, "prometheus.log")); err == nil {
				t.Logf("prometheus log:\n%s", tail(log, 3000))
			}
		}
		if out, err := exec.Command(script, "stop", dir).CombinedOutput(); err != nil {
			t.Errorf("scripts/prometheus.sh stop: %v\n%s", err, out)
		}
	})
	if err != nil {
		t.Fatalf("scripts/prometheus.sh start: %v\n%s", err, stderr.String())
	}
	return &prometheusServer{url: strings.TrimSpace(string(out)), client: &http.Client{Transport: tr}}
}

func (p *prometheusServer) get(ctx context.Context, path string, q url.Values, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+path+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("%s: %s: %.200s", path, resp.Status, body)
	}
	if env.Status != "success" {
		return fmt.Errorf("%s", env.Error)
	}
	return json.Unmarshal(env.Data, v)
}

type promSeries struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// query evaluates an instant query and returns the series of a vector
// result (a scalar result counts as one series).
func (p *prometheusServer) query(ctx context.Context, expr string) ([]promSeries, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.get(ctx, "/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, err
	}
	switch data.ResultType {
	case "vector":
		var s []promSeries
		return s, json.Unmarshal(data.Result, &s)
	case "scalar":
		var v [2]any
		return []promSeries{{Value: v}}, json.Unmarshal(data.Result, &v)
	}
	return nil, fmt.Errorf("result type %q", data.ResultType)
}

func (p *prometheusServer) count(ctx context.Context, expr string) (int, error) {
	s, err := p.query(ctx, expr)
	return len(s), err
}

// scalar is the value of a query that returns exactly one series.
func (p *prometheusServer) scalar(ctx context.Context, expr string) (float64, error) {
	s, err := p.query(ctx, expr)
	if err != nil {
		return 0, err
	}
	if len(s) != 1 {
		return 0, fmt.Errorf("%d series", len(s))
	}
	str, _ := s[0].Value[1].(string)
	return strconv.ParseFloat(str, 64)
}

// names lists the metric names Prometheus holds (for the failure messages).
func (p *prometheusServer) names(ctx context.Context) ([]string, error) {
	var names []string
	err := p.get(ctx, "/api/v1/label/__name__/values", url.Values{}, &names)
	return names, err
}

type promRuleGroup struct {
	Name           string    `json:"name"`
	LastEvaluation time.Time `json:"lastEvaluation"`
	Rules          []struct {
		Type      string `json:"type"`
		Name      string `json:"name"`
		Query     string `json:"query"`
		State     string `json:"state"`
		Health    string `json:"health"`
		LastError string `json:"lastError"`
	} `json:"rules"`
}

func (p *prometheusServer) rules(ctx context.Context) ([]promRuleGroup, error) {
	var data struct {
		Groups []promRuleGroup `json:"groups"`
	}
	err := p.get(ctx, "/api/v1/rules", url.Values{}, &data)
	return data.Groups, err
}

// ---------------------------------------------------------------------------
// The dashboard's queries and the selectors in an expression

type panelQuery struct {
	panel, what, expr string
}

// dashboardQueries reads every panel target (rows' nested panels included)
// and substitutes the dashboard's template variables as Grafana does with
// "All" selected: a variable with includeAll takes its allValue, the others
// the value in vars, Grafana's own ($__rate_interval...) those in vars too.
// With vars nil the expressions are returned as they are.
func dashboardQueries(t *testing.T, file string, vars map[string]string) []panelQuery {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr         string `json:"expr"`
			LegendFormat string `json:"legendFormat"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var dash struct {
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Type       string `json:"type"`
				IncludeAll bool   `json:"includeAll"`
				AllValue   string `json:"allValue"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	values := map[string]string{}
	for k, v := range vars {
		values[k] = v
	}
	for _, v := range dash.Templating.List {
		if v.IncludeAll && vars != nil {
			values[v.Name] = v.AllValue
		}
	}
	varRef := regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)`)
	var out []panelQuery
	var walk func([]json.RawMessage)
	walk = func(ps []json.RawMessage) {
		for _, r := range ps {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatalf("%s: panel: %v", file, err)
			}
			for i, tg := range p.Targets {
				expr := tg.Expr
				if vars != nil {
					expr = varRef.ReplaceAllStringFunc(expr, func(m string) string {
						sm := varRef.FindStringSubmatch(m)
						name := sm[1] + sm[2]
						v, ok := values[name]
						if !ok {
							t.Errorf("panel %q: variable $%s is not defined by the dashboard", p.Title, name)
						}
						return v
					})
				}
				what := fmt.Sprintf("target %d (%s)", i+1, tg.LegendFormat)
				if strings.TrimSpace(expr) == "" {
					t.Errorf("panel %q: %s has no query", p.Title, what)
					continue
				}
				out = append(out, panelQuery{p.Title, what, expr})
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	if len(out) == 0 {
		t.Fatalf("%s: no queries", file)
	}
	return out
}

var promqlKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"bool": true, "offset": true, "and": true, "or": true, "unless": true, "atan2": true,
	"inf": true, "nan": true, "start": true, "end": true,
}

// promqlAggregations may be followed by by/without before their parenthesis.
var promqlAggregations = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true,
}

// selectors returns the vector selectors (metric name and its {...} label
// matchers) in a PromQL expression: identifiers that are not functions,
// keywords, label names in by/without/on/ignoring/group_x lists, or inside
// strings, durations or label matchers.
func selectors(expr string) []string {
	var out []string
	isStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isPart := func(c byte) bool { return isStart(c) || c >= '0' && c <= '9' }
	skipSpace := func(i int) int {
		for i < len(expr) && (expr[i] == ' ' || expr[i] == '\t' || expr[i] == '\n') {
			i++
		}
		return i
	}
	closing := func(i int, open, close byte) int { // index after the matching close, quotes skipped
		depth := 0
		for ; i < len(expr); i++ {
			switch c := expr[i]; {
			case c == '"' || c == '\'' || c == '`':
				for i++; i < len(expr) && expr[i] != c; i++ {
					if expr[i] == '\\' {
						i++
					}
				}
			case c == open:
				depth++
			case c == close:
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return len(expr)
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			for i++; i < len(expr) && expr[i] != c; i++ {
				if expr[i] == '\\' {
					i++
				}
			}
			i++
		case c == '[':
			i = closing(i, '[', ']')
		case c == '{':
			i = closing(i, '{', '}')
		case c >= '0' && c <= '9':
			for i < len(expr) && (isPart(expr[i]) || expr[i] == '.') {
				i++
			}
		case isStart(c):
			j := i
			for j < len(expr) && isPart(expr[j]) {
				j++
			}
			word := expr[i:j]
			k := skipSpace(j)
			switch {
			case promqlKeywords[strings.ToLower(word)]:
				if k < len(expr) && expr[k] == '(' && word != "and" && word != "or" && word != "unless" && word != "atan2" {
					j = closing(k, '(', ')') // a label list
				}
			case k < len(expr) && expr[k] == '(' || promqlAggregations[word]:
				// a function or an aggregation
			case k < len(expr) && expr[k] == '{':
				j = closing(k, '{', '}')
				out = append(out, word+expr[k:j])
			default:
				out = append(out, word)
			}
			i = j
		default:
			i++
		}
	}
	return out
}

func TestSelectors(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`sum by (namespace, job) (deriv(a_b{job!=""}[10m])) > 0 and sum by (le) (c)`, []string{`a_b{job!=""}`, "c"}},
		{`max(label_replace(x{a="}", b=~"y|z"} / y, "fill", "records", "", "") or z offset 5m)`, []string{`x{a="}", b=~"y|z"}`, "y", "z"}},
		{`histogram_quantile(0.95, sum without (pod) (rate(h_bucket{p=~".*"}[$__rate_interval])))`, []string{`h_bucket{p=~".*"}`}},
		{`a / on (pod) group_left (sink) b > bool 1e3`, []string{"a", "b"}},
		{`topk by (pod) (3, m:rule)`, []string{"m:rule"}},
	} {
		if got := selectors(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("selectors(%s) = %q, want %q", tc.expr, got, tc.want)
		}
	}
}

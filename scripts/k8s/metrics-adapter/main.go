// Command metrics-adapter serves Sluice's pod scale signal to the HPA as an
// External metric, for the test cluster of scripts/k8s-cluster.sh. It stands
// in for prometheus-adapter, which the Go module proxy does not serve
// (sigs.k8s.io/prometheus-adapter answers 403 there): it is built on the same
// library (sigs.k8s.io/custom-metrics-apiserver), registers the same
// APIService (v1beta1.external.metrics.k8s.io), and applies the rule users
// give prometheus-adapter, read from helm/sluice/examples/prometheus-adapter-values.yaml:
// the metric's name, and its metricsQuery with <<.Series>> and
// <<.LabelMatchers>> filled in from the HPA's selector and namespace, sent to
// Prometheus's query API.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/component-base/logs"
	"k8s.io/klog/v2"
	"k8s.io/metrics/pkg/apis/external_metrics"
	"sigs.k8s.io/yaml"

	basecmd "sigs.k8s.io/custom-metrics-apiserver/pkg/cmd"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/provider"
)

// rule is the part of prometheus-adapter's external rule this adapter applies.
type rule struct {
	SeriesQuery string `json:"seriesQuery"`
	Name        struct {
		As string `json:"as"`
	} `json:"name"`
	MetricsQuery string `json:"metricsQuery"`
}

type external struct {
	prometheus string
	rules      []rule
	client     *http.Client
}

func (e *external) ListAllExternalMetrics() []provider.ExternalMetricInfo {
	var infos []provider.ExternalMetricInfo
	for _, r := range e.rules {
		infos = append(infos, provider.ExternalMetricInfo{Metric: r.Name.As})
	}
	return infos
}

func (e *external) GetExternalMetric(ctx context.Context, namespace string, sel labels.Selector, info provider.ExternalMetricInfo) (*external_metrics.ExternalMetricValueList, error) {
	var r *rule
	for i := range e.rules {
		if e.rules[i].Name.As == info.Metric {
			r = &e.rules[i]
		}
	}
	if r == nil {
		return nil, apierrors.NewNotFound(schema.GroupResource{Group: "external.metrics.k8s.io", Resource: info.Metric}, info.Metric)
	}
	// <<.LabelMatchers>>: the namespace, then the selector's requirements.
	matchers := []string{fmt.Sprintf("namespace=%q", namespace)}
	reqs, _ := sel.Requirements()
	for _, req := range reqs {
		vals := req.Values().List()
		sort.Strings(vals)
		switch req.Operator() {
		case selection.Equals, selection.DoubleEquals:
			matchers = append(matchers, fmt.Sprintf("%s=%q", req.Key(), vals[0]))
		case selection.In:
			matchers = append(matchers, fmt.Sprintf("%s=~%q", req.Key(), strings.Join(vals, "|")))
		case selection.NotEquals:
			matchers = append(matchers, fmt.Sprintf("%s!=%q", req.Key(), vals[0]))
		case selection.NotIn:
			matchers = append(matchers, fmt.Sprintf("%s!~%q", req.Key(), strings.Join(vals, "|")))
		default:
			return nil, apierrors.NewBadRequest(fmt.Sprintf("selector %s: operator %s not supported", sel, req.Operator()))
		}
	}
	series, _, _ := strings.Cut(r.SeriesQuery, "{")
	q := strings.NewReplacer("<<.Series>>", series, "<<.LabelMatchers>>", strings.Join(matchers, ",")).Replace(r.MetricsQuery)
	v, err := e.query(ctx, q)
	if err != nil {
		return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("query %s: %v", q, err))
	}
	return &external_metrics.ExternalMetricValueList{Items: []external_metrics.ExternalMetricValue{{
		MetricName: info.Metric,
		Timestamp:  metav1.Now(),
		Value:      *resource.NewMilliQuantity(int64(v*1000), resource.DecimalSI),
	}}}, nil
}

// query runs an instant query that must return one sample.
func (e *external) query(ctx context.Context, q string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.prometheus+"/api/v1/query?query="+url.QueryEscape(q), nil)
	if err != nil {
		return 0, err
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, err
	}
	if body.Status != "success" {
		return 0, fmt.Errorf("prometheus: %s", body.Error)
	}
	if len(body.Data.Result) != 1 {
		return 0, fmt.Errorf("%d series, want 1 (no pod scraped yet?)", len(body.Data.Result))
	}
	s, _ := body.Data.Result[0].Value[1].(string)
	return strconv.ParseFloat(s, 64)
}

func main() {
	logs.InitLogs()
	defer logs.FlushLogs()
	cmd := &basecmd.AdapterBase{Name: "sluice-metrics-adapter"}
	prom := cmd.Flags().String("prometheus-url", "http://127.0.0.1:9090", "Prometheus's address")
	rulesFile := cmd.Flags().String("config", "", "prometheus-adapter values with rules.external (helm/sluice/examples/prometheus-adapter-values.yaml)")
	logs.AddFlags(cmd.Flags())
	if err := cmd.Flags().Parse(os.Args); err != nil {
		klog.Fatalf("flags: %v", err)
	}
	b, err := os.ReadFile(*rulesFile)
	if err != nil {
		klog.Fatalf("-config: %v", err)
	}
	var values struct {
		Rules struct {
			External []rule `json:"external"`
		} `json:"rules"`
	}
	if err := yaml.Unmarshal(b, &values); err != nil || len(values.Rules.External) == 0 {
		klog.Fatalf("-config %s: no rules.external (%v)", *rulesFile, err)
	}
	cmd.WithExternalMetrics(&external{prometheus: strings.TrimSuffix(*prom, "/"), rules: values.Rules.External, client: &http.Client{}})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.Run(ctx); err != nil {
		klog.Fatalf("adapter: %v", err)
	}
}

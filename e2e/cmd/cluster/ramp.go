package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluicehq/sluice/e2e"
)

// Sample is one point of the ramp's time series.
type Sample struct {
	T          float64 `json:"t"`           // seconds since the ramp began
	Rate       int     `json:"rate"`        // the producer's rate, records/s
	Replicas   int     `json:"replicas"`    // the Deployment's pods
	Ready      int     `json:"ready"`       // of which Ready
	Desired    float64 `json:"desired"`     // sum of sluice_autoscale_desired_replicas, as Prometheus has it
	HPADesired int     `json:"hpa_desired"` // the HPA's desiredReplicas
	Lag        int64   `json:"lag"`         // end offsets - committed offsets of the group
	Throughput float64 `json:"throughput"`  // deliveries/s at the sink
}

// Ramp is what the ramp step measured.
type Ramp struct {
	Samples       []Sample `json:"samples"`
	PodCapacity   float64  `json:"pod_capacity"`    // records/s one pod can deliver (workers.max / sink latency)
	PeakRate      int      `json:"peak_rate"`       // records/s at the top of the ramp
	Need          int      `json:"need"`            // pods the peak needs: ceil(peak / capacity)
	MaxReplicas   int      `json:"max_replicas"`    // most pods seen
	ScaleOutAfter float64  `json:"scale_out_after"` // seconds from the first rate above one pod's capacity to a second Ready pod
	ScaleInAfter  float64  `json:"scale_in_after"`  // seconds from the fall of the load to 1 pod
	ScaledInTo    int      `json:"scaled_in_to"`    // pods at the end
}

type stage struct {
	rate int
	secs int
	// until ends the stage early (after its minimum of secs/3).
	until func(Sample) bool
}

// ramp switches the release to the chart's HPA and drives a load that rises
// past what one pod can deliver, holds, then falls; it samples replicas, the
// summed signal, lag and throughput every 2 s.
func (e *env) ramp(ctx context.Context, broker e2e.Broker, s *sink, topic, prom string, helmArgs []string) (*Ramp, string, error) {
	const (
		workers = 2
		latency = 20 * time.Millisecond
	)
	r := &Ramp{PodCapacity: workers / latency.Seconds()}
	s.delay.Store(int64(latency))
	defer s.delay.Store(0)
	behavior := `{"scaleUp":{"stabilizationWindowSeconds":0,"selectPolicy":"Max","policies":[{"type":"Pods","value":4,"periodSeconds":15}]},` +
		`"scaleDown":{"stabilizationWindowSeconds":20,"selectPolicy":"Min","policies":[{"type":"Pods","value":1,"periodSeconds":10}]}}`
	args := append([]string{"upgrade", "sluice", e.chart, "-n", e.ns}, helmArgs...)
	args = append(args, "--set", "autoscaling.hpa.enabled=true", "--set", "autoscaling.minReplicas=1",
		"--set", "autoscaling.maxReplicas=6", "--set", "autoscaling.partitions=6",
		"--set-json", "autoscaling.hpa.behavior="+behavior,
		"--set", fmt.Sprintf("config.workers.max=%d", workers),
		// A full window (1,000 records) takes one pod 10 s at 100/s: the
		// revoke wait must be longer, or a rebalance abandons in-flight
		// records to their next owner (duplicates).
		"--set", "config.rebalanceTimeout=30s", "--timeout", "3m")
	if _, err := e.run(ctx, e.helm, args...); err != nil {
		return nil, "", err
	}
	// The HPA must read the metric before the load starts.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, _ := e.run(ctx, e.kubectl, "get", "hpa", "sluice", "-n", e.ns, "-o",
			`jsonpath={.status.conditions[?(@.type=="ScalingActive")].status}`)
		if out == "True" {
			break
		}
		if time.Now().After(deadline) {
			e.run(ctx, e.kubectl, "describe", "hpa", "sluice", "-n", e.ns)
			return nil, "", fmt.Errorf("the HPA never read %s (ScalingActive %q)", "sluice_autoscale_desired_replicas", out)
		}
		time.Sleep(time.Second)
	}
	if err := e.waitPods(ctx, 1, 3*time.Minute); err != nil {
		return nil, "", fmt.Errorf("before the ramp: %w", err)
	}

	cl, err := broker.Client()
	if err != nil {
		return nil, "", err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	start := time.Now()
	var lastCount int64
	lastT := start
	sample := func(rate int) Sample {
		sm := Sample{T: time.Since(start).Seconds(), Rate: rate}
		out, _ := e.run(ctx, e.kubectl, "get", "deployment", "sluice", "-n", e.ns, "-o", "jsonpath={.status.replicas} {.status.readyReplicas}")
		if f := strings.Fields(out); len(f) > 0 {
			sm.Replicas, _ = strconv.Atoi(f[0])
			if len(f) > 1 {
				sm.Ready, _ = strconv.Atoi(f[1])
			}
		}
		out, _ = e.run(ctx, e.kubectl, "get", "hpa", "sluice", "-n", e.ns, "-o", "jsonpath={.status.desiredReplicas}")
		sm.HPADesired, _ = strconv.Atoi(strings.TrimSpace(out))
		sm.Desired, _ = promQuery(ctx, prom, fmt.Sprintf(`sum(sluice_autoscale_desired_replicas{namespace=%q,service="sluice-metrics"})`, e.ns))
		sm.Lag = lag(ctx, adm, "sluice-e2e", topic)
		n, now := s.count.Load(), time.Now()
		sm.Throughput = float64(n-lastCount) / now.Sub(lastT).Seconds()
		lastCount, lastT = n, now
		r.Samples = append(r.Samples, sm)
		r.MaxReplicas = max(r.MaxReplicas, sm.Replicas)
		return sm
	}
	lastCount = s.count.Load()

	peak := 300
	r.PeakRate = peak
	r.Need = int((float64(peak) + r.PodCapacity - 1) / r.PodCapacity)
	var overloadAt, fallAt time.Time
	stages := []stage{
		{rate: 40, secs: 20},
		{rate: 100, secs: 20},
		{rate: 200, secs: 30},
		{rate: peak, secs: 150, until: func(sm Sample) bool { return sm.Ready >= r.Need && sm.Lag < int64(peak) }},
		{rate: peak, secs: 30},
		{rate: 30, secs: 180, until: func(sm Sample) bool { return sm.Replicas == 1 && sm.Ready == 1 }},
	}
	acked := map[e2e.PO]string{}
	for i, st := range stages {
		if float64(st.rate) > r.PodCapacity && overloadAt.IsZero() {
			overloadAt = time.Now()
		}
		if i == len(stages)-1 {
			fallAt = time.Now()
		}
		prod, err := e2e.StartProducer(ctx, broker, topic, st.rate*st.secs, st.rate)
		if err != nil {
			return nil, "", err
		}
		stageStart := time.Now()
		tick := time.NewTicker(2 * time.Second)
	loop:
		for {
			select {
			case <-prod.Done():
				break loop
			case <-ctx.Done():
				prod.Abort()
				break loop
			case <-tick.C:
				sm := sample(st.rate)
				if r.ScaleOutAfter == 0 && !overloadAt.IsZero() && sm.Ready >= 2 {
					r.ScaleOutAfter = time.Since(overloadAt).Seconds()
				}
				if !fallAt.IsZero() && r.ScaleInAfter == 0 && sm.Replicas == 1 && sm.Ready == 1 {
					r.ScaleInAfter = time.Since(fallAt).Seconds()
				}
				if st.until != nil && time.Since(stageStart) > time.Duration(st.secs)*time.Second/3 && st.until(sm) {
					prod.Abort()
					break loop
				}
			}
		}
		tick.Stop()
		got, _, err := prod.Wait()
		if err != nil && ctx.Err() == nil && st.until == nil {
			return nil, "", fmt.Errorf("producer at %d/s: %w", st.rate, err)
		}
		for po, v := range got {
			acked[po] = v
		}
	}
	// A few more samples while the last records drain.
	for i := 0; i < 5; i++ {
		time.Sleep(2 * time.Second)
		sample(0)
	}
	r.ScaledInTo = r.Samples[len(r.Samples)-1].Replicas
	e.acked = acked
	note := fmt.Sprintf("HPA on the summed signal: one pod delivers %.0f/s; at %d/s the load needs %d; reached %d pods (%.0fs after the load passed one pod), back to %d pod %.0fs after it fell",
		r.PodCapacity, peak, r.Need, r.MaxReplicas, r.ScaleOutAfter, r.ScaledInTo, r.ScaleInAfter)
	var errs []string
	if r.MaxReplicas < r.Need {
		errs = append(errs, fmt.Sprintf("reached %d pods, the load needs %d", r.MaxReplicas, r.Need))
	}
	if r.ScaledInTo != 1 {
		errs = append(errs, fmt.Sprintf("scaled in to %d pods, want 1", r.ScaledInTo))
	}
	if len(errs) > 0 {
		return r, note, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return r, note, nil
}

// feedTargets keeps Prometheus's file of scrape targets up to date, every
// 2 s until ctx ends: the http port of every endpoint of the Services
// labelled app.kubernetes.io/name=sluice, labelled with namespace, service
// and pod as the adapter's rule expects. (Debian's Prometheus is built
// without Kubernetes service discovery; file_sd is what it has.)
func (e *env) feedTargets(ctx context.Context, file string) {
	type group struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	type addr struct {
		IP        string `json:"ip"`
		TargetRef *struct {
			Name string `json:"name"`
		} `json:"targetRef"`
	}
	for {
		// stdout only: kubectl warns on stderr that v1 Endpoints is deprecated.
		out, err := exec.CommandContext(ctx, e.kubectl, "get", "endpoints", "-A", "-l", "app.kubernetes.io/name=sluice", "-o", "json").Output()
		if err == nil {
			var list struct {
				Items []struct {
					Metadata struct {
						Name      string `json:"name"`
						Namespace string `json:"namespace"`
					} `json:"metadata"`
					Subsets []struct {
						Addresses         []addr `json:"addresses"`
						NotReadyAddresses []addr `json:"notReadyAddresses"`
						Ports             []struct {
							Name string `json:"name"`
							Port int    `json:"port"`
						} `json:"ports"`
					} `json:"subsets"`
				} `json:"items"`
			}
			if json.Unmarshal(out, &list) == nil {
				groups := []group{}
				for _, it := range list.Items {
					for _, ss := range it.Subsets {
						for _, p := range ss.Ports {
							if p.Name != "http" {
								continue
							}
							for _, a := range append(ss.Addresses, ss.NotReadyAddresses...) {
								pod := ""
								if a.TargetRef != nil {
									pod = a.TargetRef.Name
								}
								groups = append(groups, group{
									Targets: []string{net.JoinHostPort(a.IP, strconv.Itoa(p.Port))},
									Labels:  map[string]string{"namespace": it.Metadata.Namespace, "service": it.Metadata.Name, "pod": pod},
								})
							}
						}
					}
				}
				b, _ := json.Marshal(groups)
				if err := os.WriteFile(file+".tmp", b, 0o644); err == nil {
					os.Rename(file+".tmp", file)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
}

func promQuery(ctx context.Context, prom, q string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, prom+"/api/v1/query?query="+url.QueryEscape(q), nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || len(body.Data.Result) == 0 {
		return 0, fmt.Errorf("no result for %s: %v", q, err)
	}
	v, _ := body.Data.Result[0].Value[1].(string)
	return strconv.ParseFloat(v, 64)
}

// lag is the group's lag on topic: end offsets minus committed offsets.
func lag(ctx context.Context, adm *kadm.Client, group, topic string) int64 {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return -1
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return -1
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) {
		c := int64(0)
		if r, ok := committed.Lookup(topic, o.Partition); ok && r.Err == nil && r.At >= 0 {
			c = r.At
		}
		total += max(0, o.Offset-c)
	})
	return total
}

package autoscale

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names, for dashboards and the pod autoscaler's queries.
const (
	MetricDecisions       = "sluice_autoscale_decisions_total"
	MetricTargetWorkers   = "sluice_autoscale_target_workers"
	MetricCurrentWorkers  = "sluice_autoscale_current_workers"
	MetricBusyWorkers     = "sluice_autoscale_busy_workers"
	MetricSinkLatency     = "sluice_autoscale_sink_latency_seconds"
	MetricDepthSlope      = "sluice_autoscale_depth_slope_per_second"
	MetricSinkBottleneck  = "sluice_autoscale_sink_bottleneck"
	MetricDesiredReplicas = "sluice_autoscale_desired_replicas"
	MetricDrainSeconds    = "sluice_autoscale_drain_seconds"
)

// metrics are the Controller's series. Gauges are GaugeFuncs over the latest
// Decision, held in an atomic pointer: nothing is read back from a gauge.
type metrics struct {
	decisions *prometheus.CounterVec
	gauges    []prometheus.Collector
}

func newMetrics(view func() Decision) *metrics {
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricDecisions,
			Help: "Autoscale decisions, by direction (up, down, hold) and reason.",
		}, []string{"direction", "reason"}),
	}
	for _, d := range directions {
		for _, r := range reasons {
			m.decisions.WithLabelValues(d, r)
		}
	}
	gauge := func(name, help string, f func(Decision) float64) {
		m.gauges = append(m.gauges, prometheus.NewGaugeFunc(
			prometheus.GaugeOpts{Name: name, Help: help},
			func() float64 { return f(view()) },
		))
	}
	gauge(MetricTargetWorkers, "Worker count the autoscale policy wants.",
		func(d Decision) float64 { return float64(d.Target) })
	gauge(MetricCurrentWorkers, "Worker count at the latest sample.",
		func(d Decision) float64 { return float64(d.Current) })
	gauge(MetricBusyWorkers, "Workers inside a sink call at the latest sample.",
		func(d Decision) float64 { return float64(d.Busy) })
	gauge(MetricSinkLatency, "Sink time per completed record over the latest interval, retries included.",
		func(d Decision) float64 { return d.MeanLatency.Seconds() })
	gauge(MetricDepthSlope, "Least-squares slope of the queue depth over the slope window, records per second.",
		func(d Decision) float64 { return d.DepthSlope })
	gauge(MetricSinkBottleneck, "1 while the policy holds a learned ceiling because more workers raised sink latency or errors instead of throughput.",
		func(d Decision) float64 {
			if d.SinkBottleneck {
				return 1
			}
			return 0
		})
	gauge(MetricDesiredReplicas, "This member's share of the work in pods (sum over members = pods the group needs); capped at its partitions, and at 1 while the sink is the bottleneck or failing.",
		func(d Decision) float64 { return d.Pod.DesiredReplicas })
	gauge(MetricDrainSeconds, "Broker lag of this member divided by its completion rate, seconds.",
		func(d Decision) float64 { return d.Pod.DrainSeconds })
	return m
}

func (m *metrics) register(r prometheus.Registerer) error {
	var errs []error
	for _, c := range append([]prometheus.Collector{m.decisions}, m.gauges...) {
		if err := r.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

package consumer

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics holds the consumer's own instruments. Everything that is state
// (window fill, pool size, lag) is read from the pipeline by GaugeFuncs at
// scrape time; only events are counted here.
type metrics struct {
	sinkLatency    prometheus.Histogram
	deliveryErrors prometheus.Counter
	fetchedBytes   prometheus.Counter
	pauses         *prometheus.CounterVec
	resumes        prometheus.Counter
	commits        *prometheus.CounterVec
	rebalances     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		sinkLatency: f.NewHistogram(prometheus.HistogramOpts{
			Name: "sluice_sink_latency_seconds",
			Help: "Time the sink took per message (a worker's batch time divided by its size).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05,
				.1, .25, .5, 1, 2.5, 5, 10},
		}),
		deliveryErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "sluice_sink_errors_total",
			Help: "Delivery attempts the sink failed (each retry counts).",
		}),
		fetchedBytes: f.NewCounter(prometheus.CounterOpts{
			Name: "sluice_fetch_bytes_total",
			Help: "Bytes of key, value and headers admitted into the window.",
		}),
		pauses: f.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_fetch_pauses_total",
			Help: "Partitions paused, by reason.",
		}, []string{"reason"}),
		resumes: f.NewCounter(prometheus.CounterOpts{
			Name: "sluice_fetch_resumes_total",
			Help: "Partitions resumed.",
		}),
		commits: f.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_commits_total",
			Help: "Offset commits (or ack batches), by result.",
		}, []string{"result"}),
		rebalances: f.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_rebalances_total",
			Help: "Partitions assigned, revoked and lost in rebalances.",
		}, []string{"event"}),
	}
	for _, r := range pauseReasons {
		m.pauses.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "error"} {
		m.commits.WithLabelValues(r)
	}
	for _, e := range []string{"assigned", "revoked", "lost"} {
		m.rebalances.WithLabelValues(e)
	}
	return m
}

func (m *metrics) observeDelivery(d time.Duration, n int) {
	m.sinkLatency.Observe(d.Seconds() / float64(n))
}

// registerState exports the consumer's state as functions read at scrape time.
func registerState(reg prometheus.Registerer, c *Consumer) {
	f := promauto.With(reg)
	p, w := c.pipe, c.win
	gauge := func(name, help string, fn func() float64) {
		f.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn)
	}
	counter := func(name, help string, fn func() float64) {
		f.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, fn)
	}
	gauge("sluice_window_records", "Records in the in-flight window (fetched, not yet committed).",
		func() float64 { return float64(w.Records()) })
	gauge("sluice_window_bytes", "Bytes in the in-flight window.",
		func() float64 { return float64(w.Bytes()) })
	gauge("sluice_window_max_records", "The window's record budget.",
		func() float64 { return float64(w.MaxRecords()) })
	gauge("sluice_window_max_bytes", "The window's byte budget.",
		func() float64 { return float64(w.MaxBytes()) })
	gauge("sluice_fetch_paused_partitions", "Partitions paused now.",
		func() float64 { return float64(c.pausedPartitions()) })
	gauge("sluice_pool_workers", "Worker goroutines in the pool.",
		func() float64 { return float64(p.size()) })
	gauge("sluice_pool_busy_workers", "Workers inside a sink call now.",
		func() float64 { return float64(p.busy.Load()) })
	gauge("sluice_pipeline_queued_records", "Records admitted and waiting for a worker.",
		func() float64 { return float64(c.Stats().Depth) })
	gauge("sluice_consumer_lag_records", "Records between the committed position and the log end, summed over assigned partitions.",
		func() float64 { return float64(c.Stats().Lag) })
	gauge("sluice_partitions_assigned", "Partitions assigned to this member.",
		func() float64 { return float64(c.Stats().Partitions) })
	counter("sluice_records_fetched_total", "Records admitted into the pipeline.",
		func() float64 { return float64(p.arrived.Load()) })
	counter("sluice_records_delivered_total", "Records the sink delivered.",
		func() float64 { return float64(p.completed.Load()) })
}

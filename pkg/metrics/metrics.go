// Package metrics serves crid's Prometheus metrics: CRI calls (count and
// latency by method and code), containers and pod sandboxes by state, and
// the Go runtime's and process's own.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Counts returns, per kind ("containers", "pod_sandboxes"), how many
// objects are in each state; it is called at each scrape.
type Counts func() (map[string]map[string]int, error)

// Metrics holds crid's metrics.
type Metrics struct {
	reg     *prometheus.Registry
	calls   *prometheus.CounterVec
	latency *prometheus.HistogramVec
}

// New registers crid's metrics; counts feeds the object gauges.
func New(counts Counts) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crid_grpc_requests_total", Help: "CRI calls served, by method and gRPC code.",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "crid_grpc_request_duration_seconds", Help: "Time to serve a CRI call, by method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"method"}),
	}
	m.reg.MustRegister(m.calls, m.latency, &objects{counts: counts},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveRPC records one served call.
func (m *Metrics) ObserveRPC(method, code string, d time.Duration) {
	m.calls.WithLabelValues(method, code).Inc()
	m.latency.WithLabelValues(method).Observe(d.Seconds())
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// objects reports the object counts as gauges crid_<kind>{state}.
type objects struct{ counts Counts }

var descs = map[string]*prometheus.Desc{
	"containers":    prometheus.NewDesc("crid_containers", "Containers by state.", []string{"state"}, nil),
	"pod_sandboxes": prometheus.NewDesc("crid_pod_sandboxes", "Pod sandboxes by state.", []string{"state"}, nil),
}

func (o *objects) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range descs {
		ch <- d
	}
}

func (o *objects) Collect(ch chan<- prometheus.Metric) {
	counts, err := o.counts()
	for kind, d := range descs {
		if err != nil {
			ch <- prometheus.NewInvalidMetric(d, err)
			continue
		}
		for state, n := range counts[kind] {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(n), state)
		}
	}
}

// Package promreg is what both services' Prometheus metrics share: a
// registry of their own with the Go runtime and process collectors, its
// handler, and the latency buckets.
package promreg

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// LatencyBuckets are the histogram buckets of request durations, in
// seconds: fine below 25 ms, around the 10 ms a webhook acknowledgement
// should take, so that a p99 can be told from it.
var LatencyBuckets = []float64{.001, .0025, .005, .0075, .01, .015, .02, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// New returns a registry holding cs and the Go runtime and process
// collectors.
func New(cs ...prometheus.Collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(append(cs, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))...)
	return reg
}

// Handler serves reg in Prometheus's text format, two scrapes at a time at
// most (a scrape may read etcd).
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, MaxRequestsInFlight: 2})
}

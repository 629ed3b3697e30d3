// Package metrics holds the Prometheus series every Ebb service exports, in
// one registry a process serves at /metrics. Names follow Prometheus
// conventions: ebb_<what>_<unit>, counters ending in _total.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Registry is the process's registry: Ebb's series plus Go runtime and
// process metrics.
var Registry = prometheus.NewRegistry()

var (
	// Records counts records leaving each stage, by outcome. Stages:
	// extracted, transformed, delivered. Statuses: ok, failed, filtered,
	// vanished.
	Records = counterVec("ebb_records_total",
		"Records handled per stage and status.", "stage", "sync", "status")
	// Requests counts requests to destinations by outcome: ok, rejected
	// (permanent), retry (transient failure), throttled (429).
	Requests = counterVec("ebb_destination_requests_total",
		"Requests to destinations by outcome.", "destination", "outcome")
	// RequestSeconds is the latency of one destination request.
	RequestSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "ebb_destination_request_seconds",
		Help:    "Latency of one request (one batch) to a destination.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 14), // 5ms .. 41s
	}, []string{"destination"})
	// Retries counts requests retried after a transient failure.
	Retries = counterVec("ebb_destination_retries_total",
		"Requests retried after a transient failure or a 429.", "destination")
	// RateLimitWait is time spent waiting for a destination's rate limiter.
	RateLimitWait = counterVec("ebb_rate_limit_wait_seconds_total",
		"Seconds spent waiting for a destination's rate limit or concurrency slot.", "destination")
	// Runs counts finished runs by final state.
	Runs = counterVec("ebb_runs_total", "Runs that ended, by final state.", "sync", "state")
	// RunSeconds is how long runs take from creation to their end.
	RunSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "ebb_run_seconds",
		Help:    "Duration of runs from creation to commit.",
		Buckets: prometheus.ExponentialBuckets(0.25, 2, 16), // 0.25s .. 2.3h
	}, []string{"sync"})
)

func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

func init() {
	Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		Records, Requests, RequestSeconds, Retries, RateLimitWait, Runs, RunSeconds)
}

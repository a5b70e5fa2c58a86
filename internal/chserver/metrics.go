package chserver

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	insertedRows prometheus.Counter
	cancelled    prometheus.Counter
}

// newMetrics builds the server's metrics on reg; a nil reg keeps them
// unregistered, which is what tests and embedders without /metrics want.
func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "driftwatch_clickhouse_embedded_requests_total",
			Help: "HTTP requests by statement kind and outcome.",
		}, []string{"kind", "outcome"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "driftwatch_clickhouse_embedded_request_duration_seconds",
			Help:    "HTTP request latency by statement kind.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}, []string{"kind"}),
		insertedRows: f.NewCounter(prometheus.CounterOpts{
			Name: "driftwatch_clickhouse_embedded_inserted_rows_total",
			Help: "Rows written by INSERT requests.",
		}),
		cancelled: f.NewCounter(prometheus.CounterOpts{
			Name: "driftwatch_clickhouse_embedded_cancelled_queries_total",
			Help: "Queries stopped because their client went away (cancel_http_readonly_queries_on_client_close).",
		}),
	}
}

package ingest

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type counterVec interface {
	WithLabelValues(lvs ...string) prometheus.Counter
}

// metrics are ingest's series; the package doc lists them. Labels are
// bounded: topic (three event topics) and reason (schemas.DeadLetterReasons()).
type metrics struct {
	consumed      *prometheus.CounterVec
	written       *prometheus.CounterVec
	deadLettered  *prometheus.CounterVec
	duplicates    *prometheus.CounterVec
	unknownFields *prometheus.CounterVec
	insertErrors  *prometheus.CounterVec
	dlqErrors     *prometheus.CounterVec
	commitErrors  *prometheus.CounterVec
	fetchErrors   *prometheus.CounterVec
	batchRows     *prometheus.HistogramVec
	flushSeconds  *prometheus.HistogramVec

	mu     sync.Mutex
	newest map[string]time.Time
}

func newMetrics(reg prometheus.Registerer, now func() time.Time, lag func() map[string]int64) *metrics {
	f := promauto.With(reg)
	m := &metrics{newest: map[string]time.Time{}}
	m.consumed = f.NewCounterVec(prometheus.CounterOpts{Name: "driftwatch_ingest_events_consumed_total", Help: "Kafka messages read, valid or not."}, []string{"topic"})
	m.written = f.NewCounterVec(prometheus.CounterOpts{Name: "driftwatch_ingest_events_written_total", Help: "Events ClickHouse acknowledged."}, []string{"topic"})
	m.deadLettered = f.NewCounterVec(prometheus.CounterOpts{Name: "driftwatch_ingest_events_dead_lettered_total", Help: "Invalid events sent to the dead-letter topic, by reason."}, []string{"topic", "reason"})
	m.duplicates = f.NewCounterVec(prometheus.CounterOpts{Name: "driftwatch_ingest_duplicates_dropped_total", Help: "Events dropped because an event with the same event_id was already in the batch."}, []string{"topic"})
	m.unknownFields = f.NewCounterVec(prometheus.CounterOpts{Name: "driftwatch_ingest_unknown_fields_total", Help: "Top-level fields the v1 contract does not define, tolerated and skipped."}, []string{"topic"})
	m.insertErrors = f.NewCounterVec(prometheus.CounterOpts{Name: "driftwatch_ingest_insert_errors_total", Help: "Failed ClickHouse insert attempts (each is retried)."}, []string{"topic"})
	m.dlqErrors = f.NewCounterVec(prometheus.CounterOpts{Name: "driftwatch_ingest_dead_letter_errors_total", Help: "Failed attempts to write the dead-letter topic (each is retried)."}, []string{"topic"})
	m.commitErrors = f.NewCounterVec(prometheus.CounterOpts{Name: "driftwatch_ingest_commit_errors_total", Help: "Failed offset commits (each is retried)."}, []string{"topic"})
	m.fetchErrors = f.NewCounterVec(prometheus.CounterOpts{Name: "driftwatch_ingest_fetch_errors_total", Help: "Failed fetches from Kafka (each is retried)."}, []string{"topic"})
	m.batchRows = f.NewHistogramVec(prometheus.HistogramOpts{Name: "driftwatch_ingest_batch_rows", Help: "Rows per ClickHouse insert.",
		Buckets: prometheus.ExponentialBuckets(1, 4, 10)}, []string{"topic"})
	m.flushSeconds = f.NewHistogramVec(prometheus.HistogramOpts{Name: "driftwatch_ingest_flush_duration_seconds", Help: "Time to insert a batch, write its dead letters and commit its offsets, retries included.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}, []string{"topic"})
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "driftwatch_ingest_freshness_seconds", Help: "Now minus the newest event timestamp written, over all topics; 0 before the first write."}, func() float64 {
		m.mu.Lock()
		defer m.mu.Unlock()
		var newest time.Time
		for _, t := range m.newest {
			if t.After(newest) {
				newest = t
			}
		}
		if newest.IsZero() {
			return 0
		}
		return now().Sub(newest).Seconds()
	})
	reg.MustRegister(&lagCollector{lag: lag, desc: prometheus.NewDesc("driftwatch_ingest_consumer_lag",
		"Messages in the topic not yet read by this consumer (kafka-go's view of its assigned partitions).", []string{"topic"}, nil)})
	return m
}

func (m *metrics) setNewest(topic string, t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t.After(m.newest[topic]) {
		m.newest[topic] = t
	}
}

type lagCollector struct {
	lag  func() map[string]int64
	desc *prometheus.Desc
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	for topic, lag := range c.lag() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(lag), topic)
	}
}

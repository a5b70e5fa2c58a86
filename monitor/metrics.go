package monitor

import (
	"math"
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/driftwatch/driftwatch/monitor/policy"
	"github.com/driftwatch/driftwatch/monitor/stat"
)

// exporter holds the latest window's series per model and serves them as
// constant metrics, so series of features that left the top list vanish
// instead of going stale. Cardinality is bounded twice: at most
// MaxFeaturesPerModel features per model (the most drifted first, by PSI
// then KS), and at most MaxSeries series in all (models evaluated later are
// dropped and counted).
type exporter struct {
	mu          sync.Mutex
	byModel     map[string][]prometheus.Metric
	extra       map[string][]prometheus.Metric // performance series per model
	maxFeatures int
	maxSeries   int
	dropped     prometheus.Counter

	score, detected, samples, quality *prometheus.Desc
}

func newExporter(reg prometheus.Registerer, maxFeatures, maxSeries int) *exporter {
	e := &exporter{
		byModel: map[string][]prometheus.Metric{}, extra: map[string][]prometheus.Metric{}, maxFeatures: maxFeatures, maxSeries: maxSeries,
		score:    prometheus.NewDesc("driftwatch_drift_score", "Latest drift statistic per model, feature and method (the statistic itself for tests: KS D, chi-square X², …; p-values are in drift_results).", []string{"model", "feature", "method"}, nil),
		detected: prometheus.NewDesc("driftwatch_drift_detected", "1 while a feature is drifted for the configured number of consecutive windows.", []string{"model", "feature"}, nil),
		samples:  prometheus.NewDesc("driftwatch_window_samples", "Rows in the latest current window.", []string{"model"}, nil),
		quality:  prometheus.NewDesc("driftwatch_data_quality", "Latest data-quality measure per model, feature and check (missing_share, out_of_range_share, volume_ratio; dead_letter_share with the reason as feature).", []string{"model", "feature", "check"}, nil),
	}
	e.dropped = promauto.With(reg).NewCounter(prometheus.CounterOpts{Name: "driftwatch_monitor_series_dropped_total", Help: "Series not exported because the per-instance series limit was reached."})
	reg.MustRegister(e)
	return e
}

func (e *exporter) Describe(ch chan<- *prometheus.Desc) {
	ch <- e.score
	ch <- e.detected
	ch <- e.samples
	ch <- e.quality
	p := perfDescs()
	ch <- p.perf
	ch <- p.reference
	ch <- p.coverage
	ch <- p.corr
}

func (e *exporter) Collect(ch chan<- prometheus.Metric) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ms := range e.byModel {
		for _, m := range ms {
			ch <- m
		}
	}
	for _, ms := range e.extra {
		for _, m := range ms {
			ch <- m
		}
	}
}

// setExtra replaces a model's performance series.
func (e *exporter) setExtra(model string, ms []prometheus.Metric) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.extra[model] = ms
}

func (e *exporter) seriesCount(except string) int {
	n := 0
	for m, ms := range e.byModel {
		if m != except {
			n += len(ms)
		}
	}
	return n
}

// update replaces a model's series with those of its latest verdict.
func (e *exporter) update(model string, rows int64, v policy.Verdict) {
	severity := map[string]float64{}
	for _, r := range v.Rows {
		if r.Kind == policy.KindDataQuality || math.IsNaN(r.Value) {
			continue
		}
		switch r.Method {
		case stat.MethodPSI:
			severity[r.Feature] += r.Value
		case stat.MethodKS:
			severity[r.Feature] += r.Value / 1000 // D breaks PSI ties
		}
	}
	sustained := map[string]bool{}
	for _, f := range v.Sustained {
		sustained[f] = true
	}
	features := make([]string, 0, len(severity))
	for f := range severity {
		features = append(features, f)
	}
	sort.Slice(features, func(i, j int) bool {
		if sustained[features[i]] != sustained[features[j]] {
			return sustained[features[i]]
		}
		if severity[features[i]] != severity[features[j]] {
			return severity[features[i]] > severity[features[j]]
		}
		return features[i] < features[j]
	})
	if len(features) > e.maxFeatures {
		features = features[:e.maxFeatures]
	}
	keep := map[string]bool{}
	for _, f := range features {
		keep[f] = true
	}
	ms := []prometheus.Metric{prometheus.MustNewConstMetric(e.samples, prometheus.GaugeValue, float64(rows), model)}
	for _, f := range features {
		d := 0.0
		if sustained[f] {
			d = 1
		}
		ms = append(ms, prometheus.MustNewConstMetric(e.detected, prometheus.GaugeValue, d, model, f))
	}
	for _, r := range v.Rows {
		if math.IsNaN(r.Value) {
			continue
		}
		if r.Kind == policy.KindDataQuality {
			if r.Feature == policy.ModelFeature || r.Method == policy.CheckDeadLetterShare || keep[r.Feature] {
				ms = append(ms, prometheus.MustNewConstMetric(e.quality, prometheus.GaugeValue, r.Value, model, r.Feature, r.Method))
			}
			continue
		}
		if keep[r.Feature] {
			ms = append(ms, prometheus.MustNewConstMetric(e.score, prometheus.GaugeValue, r.Value, model, r.Feature, r.Method))
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if room := e.maxSeries - e.seriesCount(model); len(ms) > room {
		if room < 0 {
			room = 0
		}
		e.dropped.Add(float64(len(ms) - room))
		ms = ms[:room]
	}
	e.byModel[model] = ms
}

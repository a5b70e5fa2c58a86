package monitor

import (
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/driftwatch/driftwatch/monitor/multivariate"
	"github.com/driftwatch/driftwatch/monitor/policy"
	"github.com/driftwatch/driftwatch/monitor/stat"
)

// exporter holds each model's latest series and serves them as constant
// metrics, so series of features that left the top list vanish instead of
// going stale. Cardinality is bounded twice: at most MaxFeaturesPerModel
// features per model (the most drifted first, by PSI then KS), and at most
// maxSeries series in all, shared fairly: every model gets the same share
// (max-min fair: a model that needs less leaves the rest to the others),
// the most drifted models get the series the shares leave over first, and
// within a model its sustained drift comes first: every model's head (its
// sustained drift with the statistics the alerts quote, and its samples)
// is allotted before any model's other series. The series of a model
// not evaluated within lookback are deleted.
type exporter struct {
	mu          sync.Mutex
	models      map[string]*modelSeries
	shown       map[string]int // series exported per model: its share
	maxFeatures int
	maxSeries   int
	lookback    time.Duration
	now         func() time.Time
	dropped     prometheus.Counter

	score, detected, samples, quality *prometheus.Desc
	// segmentDetected and rootCause are the slices' series (see update).
	segmentDetected, rootCause *prometheus.Desc
}

// modelSeries is one model's series, most important first: head (the
// detected series of its sustained features, its window's samples, then
// the sustained features' statistics),
// extra (performance, label coverage, business correlations), tail (the
// rest of its drift and data-quality series).
type modelSeries struct {
	head, extra, tail []prometheus.Metric
	// sustained counts its features drifted for the configured number of
	// windows; severity is its largest PSI (+ KS D/1000): how drifted it is.
	sustained int
	severity  float64
	at        time.Time // when it was last evaluated
}

func (s *modelSeries) len() int { return len(s.head) + len(s.extra) + len(s.tail) }

// each calls f with s's first n series.
func (s *modelSeries) each(n int, f func(prometheus.Metric)) {
	for _, part := range [][]prometheus.Metric{s.head, s.extra, s.tail} {
		for _, m := range part {
			if n <= 0 {
				return
			}
			f(m)
			n--
		}
	}
}

func newExporter(reg prometheus.Registerer, maxFeatures, maxSeries int, lookback time.Duration, now func() time.Time) *exporter {
	e := &exporter{
		models: map[string]*modelSeries{}, shown: map[string]int{}, maxFeatures: maxFeatures, maxSeries: maxSeries, lookback: lookback, now: now,
		score:           prometheus.NewDesc("driftwatch_drift_score", "Latest drift statistic per model, feature and method (the statistic itself for tests: KS D, chi-square X², …; p-values are in drift_results).", []string{"model", "feature", "method"}, nil),
		detected:        prometheus.NewDesc("driftwatch_drift_detected", "1 while a feature is drifted for the configured number of consecutive windows.", []string{"model", "feature"}, nil),
		samples:         prometheus.NewDesc("driftwatch_window_samples", "Rows in the latest current window.", []string{"model"}, nil),
		segmentDetected: prometheus.NewDesc("driftwatch_segment_drift_detected", "1 while a feature is drifted in a slice (segment key=value) for the configured number of consecutive windows; only such slices have the series.", []string{"model", "feature", "segment"}, nil),
		rootCause:       prometheus.NewDesc("driftwatch_drift_root_cause", "The contribution to a sustained feature's PSI of the slice contributing most, per segment key; kind mix (the slice's share of traffic moved) or within (its distribution moved).", []string{"model", "feature", "segment", "kind"}, nil),
		quality:         prometheus.NewDesc("driftwatch_data_quality", "Latest data-quality measure per model, feature and check (missing_share, out_of_range_share, volume_ratio, high_cardinality: distinct values; dead_letter_share with the reason as feature).", []string{"model", "feature", "check"}, nil),
	}
	e.dropped = promauto.With(reg).NewCounter(prometheus.CounterOpts{Name: "driftwatch_monitor_series_dropped_total", Help: "Series of an evaluated model not exported because its share of max_series was smaller."})
	reg.MustRegister(e)
	return e
}

func (e *exporter) Describe(ch chan<- *prometheus.Desc) {
	ch <- e.score
	ch <- e.detected
	ch <- e.samples
	ch <- e.quality
	ch <- e.segmentDetected
	ch <- e.rootCause
	p := perfDescs()
	ch <- p.perf
	ch <- p.reference
	ch <- p.coverage
	ch <- p.corr
	ch <- p.estimated
	ch <- p.fromLabels
	ch <- p.estimationError
	ch <- p.segment
	ch <- p.rootCause
}

func (e *exporter) Collect(ch chan<- prometheus.Metric) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for name, s := range e.models {
		s.each(e.shown[name], func(m prometheus.Metric) { ch <- m })
	}
}

// model returns model's series, created when new, stamped now.
func (e *exporter) model(name string) *modelSeries {
	s := e.models[name]
	if s == nil {
		s = &modelSeries{}
		e.models[name] = s
	}
	s.at = e.now()
	return s
}

// setExtra replaces a model's performance series.
func (e *exporter) setExtra(model string, ms []prometheus.Metric) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.model(model).extra = ms
	e.allocate(model)
}

// allocate deletes the models not evaluated within lookback and shares
// maxSeries among the rest; the series of changed its share leaves out
// are counted as dropped.
// forget stops exporting model's series: another monitor instance
// evaluates it now, and exports them.
func (e *exporter) forget(model string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.models[model]; !ok {
		return
	}
	delete(e.models, model)
	e.allocate("")
}

func (e *exporter) allocate(changed string) {
	cutoff := e.now().Add(-e.lookback)
	for name, s := range e.models {
		if s.at.Before(cutoff) {
			delete(e.models, name)
		}
	}
	names := make([]string, 0, len(e.models))
	for name := range e.models {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := e.models[names[i]], e.models[names[j]]
		if a.sustained != b.sustained {
			return a.sustained > b.sustained
		}
		if a.severity != b.severity {
			return a.severity > b.severity
		}
		return names[i] < names[j]
	})
	// Heads first (sustained drift and its statistics, which the alerts
	// quote, and each model's samples), shared fairly in that order; then
	// the rest of every model's series from what the heads leave.
	heads, rest := make([]int, len(names)), make([]int, len(names))
	for i, name := range names {
		s := e.models[name]
		heads[i], rest[i] = len(s.head), len(s.extra)+len(s.tail)
	}
	h := fairShares(heads, e.maxSeries)
	left := e.maxSeries
	for _, n := range h {
		left -= n
	}
	r := fairShares(rest, left)
	clear(e.shown)
	for i, name := range names {
		n := h[i] + r[i]
		e.shown[name] = n
		if name == changed && n < heads[i]+rest[i] {
			e.dropped.Add(float64(heads[i] + rest[i] - n))
		}
	}
}

// fairShares shares budget among demands (in priority order, most
// important first) max-min fairly: every demand gets min(d, L) for the
// largest level L the budget affords, and what that leaves goes one by one
// to the first demands still short. With fewer series than demands, the
// first demands get one each.
func fairShares(demand []int, budget int) []int {
	afford := func(level int) bool {
		sum := 0
		for _, d := range demand {
			sum += min(d, level)
			if sum > budget {
				return false
			}
		}
		return true
	}
	hi := 0
	for _, d := range demand {
		hi = max(hi, d)
	}
	lo := 0 // afford(0) always holds
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if afford(mid) {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	out := make([]int, len(demand))
	left := budget
	for i, d := range demand {
		out[i] = min(d, lo)
		left -= out[i]
	}
	for i, d := range demand {
		if left == 0 {
			break
		}
		if out[i] < d {
			out[i]++
			left--
		}
	}
	return out
}

// update replaces a model's series with those of its latest verdict, its
// slices' and its root causes. The slices' series share the model's
// budget: the root cause of each sustained feature (its top slice per
// key) is in the head beside the statistics the alerts quote; each slice's
// sustained features come last, after the model's other series.
func (e *exporter) update(model string, rows int64, v policy.Verdict, segs []SegmentResult, rcs []RootCause) {
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
	// The multivariate pseudo-features (at most two per model) are the
	// model's, not one feature's: always exported, beyond maxFeatures.
	for _, r := range v.Rows {
		if multivariate.IsFeature(r.Feature) && !slices.Contains(features, r.Feature) {
			features = append(features, r.Feature)
		}
	}
	keep := map[string]bool{}
	for _, f := range features {
		keep[f] = true
	}
	var head, tail []prometheus.Metric
	samples := prometheus.MustNewConstMetric(e.samples, prometheus.GaugeValue, float64(rows), model)
	nSustained, maxSeverity := 0, 0.0
	for _, f := range features {
		maxSeverity = max(maxSeverity, severity[f])
		if sustained[f] {
			nSustained++
			head = append(head, prometheus.MustNewConstMetric(e.detected, prometheus.GaugeValue, 1, model, f))
		} else {
			tail = append(tail, prometheus.MustNewConstMetric(e.detected, prometheus.GaugeValue, 0, model, f))
		}
	}
	head = append(head, samples)
	for _, r := range v.Rows {
		if math.IsNaN(r.Value) {
			continue
		}
		if r.Kind == policy.KindDataQuality {
			// high_cardinality too for a feature whose methods were skipped
			// (it has no PSI or KS to rank it by).
			if r.Feature == policy.ModelFeature || r.Method == policy.CheckDeadLetterShare || r.Method == policy.CheckHighCardinality || keep[r.Feature] {
				tail = append(tail, prometheus.MustNewConstMetric(e.quality, prometheus.GaugeValue, r.Value, model, r.Feature, r.Method))
			}
			continue
		}
		if !keep[r.Feature] {
			continue
		}
		m := prometheus.MustNewConstMetric(e.score, prometheus.GaugeValue, r.Value, model, r.Feature, r.Method)
		if sustained[r.Feature] && r.Kind != policy.KindDataQuality {
			head = append(head, m) // the statistics the drift alert quotes
		} else {
			tail = append(tail, m)
		}
	}
	for _, rc := range rcs {
		if sustained[rc.Feature] && len(rc.Contributions) > 0 {
			top := rc.Contributions[0]
			head = append(head, prometheus.MustNewConstMetric(e.rootCause, prometheus.GaugeValue, top.Total, model, rc.Feature, top.Segment, top.Kind()))
		}
	}
	for _, sr := range segs {
		for _, f := range sr.Verdict.Sustained {
			tail = append(tail, prometheus.MustNewConstMetric(e.segmentDetected, prometheus.GaugeValue, 1, model, f, sr.Name))
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.model(model)
	s.head, s.tail, s.sustained, s.severity = head, tail, nSustained, maxSeverity
	e.allocate(model)
}

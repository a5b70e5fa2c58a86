package monitor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftwatch/driftwatch/monitor/cbpe"
	"github.com/driftwatch/driftwatch/monitor/correlate"
	"github.com/driftwatch/driftwatch/monitor/dle"
	"github.com/driftwatch/driftwatch/monitor/perf"
	"github.com/driftwatch/driftwatch/monitor/window"
	"github.com/driftwatch/driftwatch/schemas"
)

// PerformanceConfig says how live performance and its correlation with
// business metrics are computed and when they trigger a retrain.
type PerformanceConfig struct {
	Enabled bool `yaml:"enabled"`
	// Window is the length of a performance window (tumbling, by event
	// time of the inferences); Recompute windows back are re-evaluated
	// every round, so late labels correct them.
	Window    time.Duration `yaml:"window"`
	Recompute int           `yaml:"recompute"`
	// Horizon is how long after its inference an outcome still counts.
	Horizon time.Duration `yaml:"horizon"`
	// PositiveLabel makes classifiers binary (this class against the rest);
	// empty means multiclass with macro averages.
	PositiveLabel string `yaml:"positive_label"`
	// Metric is the primary metric the drop policy watches; empty picks
	// roc_auc for binary classifiers, f1 for multiclass, rmse for regressors.
	Metric string `yaml:"metric"`
	// Drop is how much worse than in the reference the primary metric must
	// be (absolute) for a performance trigger, in a window with at least
	// MinLabelled labelled rows.
	Drop        float64 `yaml:"drop"`
	MinLabelled int64   `yaml:"min_labelled"`
	// CoverageAge: driftwatch_label_coverage reports the newest window
	// that ended at least this long ago (younger ones are still waiting
	// for their labels).
	CoverageAge time.Duration `yaml:"coverage_age"`
	// Bucket, Buckets and MaxLag shape the business correlation: Buckets
	// buckets of Bucket, lags 0..MaxLag.
	Bucket  time.Duration `yaml:"bucket"`
	Buckets int           `yaml:"buckets"`
	MaxLag  int           `yaml:"max_lag"`
	// BusinessTrigger turns a performance drop into a "business" trigger
	// when a business metric follows the primary metric with |r| ≥
	// MinCorrelation (p < 0.05) at its best lag: the drop costs money.
	BusinessTrigger bool    `yaml:"business_trigger"`
	MinCorrelation  float64 `yaml:"min_correlation"`
	// MaxBusinessMetrics caps the KPIs correlated per model (its own and
	// the global ones), the most observed in the span first: each costs
	// queries every round and Prometheus series.
	MaxBusinessMetrics int `yaml:"max_business_metrics"`
	// Estimation is performance estimation before the labels (packages
	// cbpe and dle), and its hand-off to the realized metrics.
	Estimation EstimationConfig `yaml:"estimation"`
}

// EstimationConfig says how performance is estimated before the labels
// arrive and when the realized value takes over.
type EstimationConfig struct {
	// Enabled estimates every performance window, labelled or not
	// (estimated_<metric> rows): a classifier's with CBPE (binary, or
	// multiclass one-vs-rest), a regressor's MAE and RMSE with DLE.
	Enabled bool `yaml:"enabled"`
	// ReferenceRows caps the labelled reference rows CBPE or DLE is fitted
	// on (a fixed sample by event-id hash): Go receives them as rows.
	ReferenceRows int `yaml:"reference_rows"`
	// HandoffCoverage: a window whose label coverage reaches it, with at
	// least MinLabelled rows scored by the metric, is judged on its
	// realized metric; below it on the estimate.
	HandoffCoverage float64 `yaml:"handoff_coverage"`
	// Trigger enables the estimated_performance policy: a window still on
	// its estimate whose estimated primary metric is worse than the
	// reference's realized one by more than Drop triggers a retrain.
	Trigger bool `yaml:"trigger"`
	// Drop is the estimated_performance policy's threshold: how much worse
	// (absolute) than the reference's realized primary metric the
	// estimate must be.
	Drop float64 `yaml:"drop"`
}

// DefaultPerformanceConfig returns the defaults.
func DefaultPerformanceConfig() PerformanceConfig {
	return PerformanceConfig{Enabled: true, Window: time.Hour, Recompute: 24, Horizon: 7 * 24 * time.Hour, PositiveLabel: "1",
		Drop: 0.05, MinLabelled: 200, CoverageAge: time.Hour, Bucket: time.Hour, Buckets: 48, MaxLag: 6, BusinessTrigger: true, MinCorrelation: 0.7,
		MaxBusinessMetrics: 20, Estimation: EstimationConfig{Enabled: true, ReferenceRows: 200_000, HandoffCoverage: 0.5, Drop: 0.05}}
}

// Validate names every bad setting.
func (c PerformanceConfig) Validate(prefix string) error {
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf(prefix+"."+f, a...)) }
	if c.Window < time.Second || c.Bucket < time.Second {
		bad("window and bucket: must be at least 1s")
	}
	if c.Recompute < 1 || c.Buckets < 3 || c.MaxLag < 0 || c.MaxLag > c.Buckets-3 {
		bad("recompute ≥ 1, buckets ≥ 3 and 0 ≤ max_lag ≤ buckets−3 are required, got %d, %d, %d", c.Recompute, c.Buckets, c.MaxLag)
	}
	if c.MaxBusinessMetrics < 1 || c.MaxBusinessMetrics > 1000 {
		bad("max_business_metrics: must be from 1 to 1000, got %d", c.MaxBusinessMetrics)
	}
	if c.Horizon < 0 || c.CoverageAge < 0 {
		bad("horizon and coverage_age: must not be negative")
	}
	if !(c.Drop > 0) || c.MinLabelled < 1 || c.MinCorrelation < 0 || c.MinCorrelation > 1 {
		bad("drop > 0, min_labelled ≥ 1 and 0 ≤ min_correlation ≤ 1 are required")
	}
	if e := c.Estimation; e.ReferenceRows < cbpe.MinReference || !(e.HandoffCoverage > 0 && e.HandoffCoverage <= 1) || !(e.Drop > 0) {
		bad("estimation: reference_rows ≥ %d, 0 < handoff_coverage ≤ 1 and drop > 0 are required, got %d, %v, %v", cbpe.MinReference, e.ReferenceRows, e.HandoffCoverage, e.Drop)
	}
	if c.Metric != "" && !slices.Contains([]string{perf.MetricAccuracy, perf.MetricPrecision, perf.MetricRecall, perf.MetricF1, perf.MetricROCAUC,
		perf.MetricLogLoss, perf.MetricBrier, perf.MetricMAE, perf.MetricRMSE, perf.MetricMAPE, perf.MetricR2}, c.Metric) {
		bad("metric: %q is not a performance metric", c.Metric)
	}
	return errors.Join(errs...)
}

// PerformanceResult is one round of performance evaluation for a model.
type PerformanceResult struct {
	Windows   []perf.Result
	Reference perf.Result
	Primary   string
	// WindowSegments are, per window of Windows, its slices' results;
	// ReferenceSegments the reference's (see docs/monitor.md, "Segments").
	WindowSegments    [][]perf.Result
	ReferenceSegments []perf.Result
	// RootCauses rank the slices of the window of a performance drop.
	RootCauses   []PerformanceRootCause
	Correlations []CorrelationResult
	Decisions    []Decision
}

// CorrelationResult is the best lag of one model/business metric pair.
type CorrelationResult struct {
	ModelMetric, BusinessMetric, Method string
	Lags                                []correlate.Lag
	Best                                correlate.Lag
	BestErr                             error
}

type perfMetrics struct {
	perf, reference, coverage, corr, estimated, fromLabels, estimationError *prometheus.Desc
	// segment and rootCause are the slices' series (segperf.go).
	segment, rootCause *prometheus.Desc
}

func (m *Monitor) task(ctx context.Context, model string) (perf.Task, error) {
	scored, valued, err := m.store.PredictionCounts(ctx, model)
	if err != nil {
		return "", fmt.Errorf("detect the task of %s: %w", model, err)
	}
	if valued > scored {
		return perf.Regression, nil
	}
	return perf.Classification, nil
}

func primaryMetric(c PerformanceConfig, task perf.Task) string {
	switch {
	case c.Metric != "":
		return c.Metric
	case task == perf.Regression:
		return perf.MetricRMSE
	case c.PositiveLabel != "":
		return perf.MetricROCAUC
	}
	return perf.MetricF1
}

// EvaluatePerformance scores model's last Recompute performance windows
// ending at end (a Window boundary) and its reference, writes them to
// performance_results, correlates the primary metric and the mean
// prediction with the model's business metrics, exports the series, and
// passes a performance drop through the trigger gate.
func (m *Monitor) EvaluatePerformance(ctx context.Context, model string, end time.Time) (PerformanceResult, error) {
	c := m.opts.Performance
	var res PerformanceResult
	task, err := m.task(ctx, model)
	if err != nil {
		return res, err
	}
	opts := perf.Options{Task: task, Horizon: c.Horizon}
	if task == perf.Classification {
		opts.PositiveLabel = c.PositiveLabel
	}
	res.Primary = primaryMetric(c, task)
	now := m.opts.Now()
	// The drift reference's period, the persisted one when there is one.
	var pin *ReferenceProfile
	if m.pinnable(model) {
		p, ok, err := m.store.ReferenceProfile(ctx, model)
		if err != nil {
			return res, err
		}
		if ok {
			pin = &p
		}
	}
	ref, _, err := m.reference(ctx, model, window.Span{Start: end.Add(-c.Window), End: end}, pin)
	if err != nil {
		return res, err
	}
	plan, err := m.performanceSlices(ctx, model, ref, window.Span{Start: end.Add(-time.Duration(c.Recompute) * c.Window), End: end})
	if err != nil {
		return res, err
	}
	for k := c.Recompute - 1; k >= 0; k-- {
		w := window.Span{Start: end.Add(-time.Duration(k+1) * c.Window), End: end.Add(-time.Duration(k) * c.Window)}
		r, segs, err := perf.ComputeSlices(ctx, m.opts.Conn, model, w, opts, plan)
		if err != nil {
			return res, fmt.Errorf("performance of %s in %s: %w", model, w, err)
		}
		if r.Inferences > 0 {
			res.Windows = append(res.Windows, r)
			res.WindowSegments = append(res.WindowSegments, segs)
		}
	}
	if res.Reference, res.ReferenceSegments, err = perf.ComputeSlices(ctx, m.opts.Conn, model, ref, opts, plan); err != nil {
		return res, fmt.Errorf("reference performance of %s: %w", model, err)
	}
	// A failed estimate must not cost the realized metrics: they are
	// written without it.
	if err := m.estimate(ctx, model, ref, opts, &res); err != nil {
		if ctx.Err() != nil {
			return res, err
		}
		m.log.Warn("performance estimation failed; writing the realized metrics without it", "model", model, "err", err)
		for i := range res.Windows {
			res.Windows[i].Estimated = nil
		}
	}
	written := slices.Clone(res.Windows)
	for _, segs := range res.WindowSegments {
		written = append(written, segs...)
	}
	if err := perf.Write(ctx, m.opts.Conn, now, written...); err != nil {
		return res, err
	}
	if err := m.correlate(ctx, model, end, opts, &res); err != nil {
		return res, err
	}
	m.exportPerformance(model, end, res)

	// The drop policy: the newest window with enough labels against the
	// reference, in the primary metric's direction.
	// "Enough" counts the rows the metric scored (a multiclass log_loss or
	// brier scores only the labelled rows that carry probabilities).
	refM, ok := c.judgeableReference(res.Primary, res.Reference)
	if !ok {
		return res, nil
	}
	for i := len(res.Windows) - 1; i >= 0; i-- {
		w := res.Windows[i]
		drop, ok := c.drop(res.Primary, refM, ref, w)
		if !ok {
			continue
		}
		cur := drop.Current
		if !drop.Dropped {
			break
		}
		reason, policyName := schemas.TriggerPerformance, "performance"
		ev := []schemas.Evidence{{Check: "performance", Method: res.Primary, Value: cur.Value, Threshold: refM.Value, Samples: cur.Samples}}
		for _, cr := range res.Correlations {
			if cr.ModelMetric == res.Primary && cr.BestErr == nil && math.Abs(cr.Best.Value) >= c.MinCorrelation && cr.Best.PValue < 0.05 {
				p := cr.Best.PValue
				ev = append(ev, schemas.Evidence{Check: "business_correlation", Feature: cr.BusinessMetric, Method: fmt.Sprintf("%s_lag_%d", cr.Method, cr.Best.Lag),
					Value: cr.Best.Value, Threshold: c.MinCorrelation, PValue: &p, Samples: int64(cr.Best.N)})
				if c.BusinessTrigger {
					reason, policyName = schemas.TriggerBusiness, "business"
				}
			}
		}
		res.RootCauses = performanceRootCauses(res.Primary, task, res.Reference, w, res.ReferenceSegments, res.WindowSegments[i])
		ev = append(ev, performanceRootCauseEvidence(res.RootCauses, res.WindowSegments[i])...)
		if err := m.store.WritePerformanceRootCauses(ctx, model, w.Window, res.RootCauses, now); err != nil {
			return res, fmt.Errorf("write performance root causes of %s: %w", model, err)
		}
		m.exportPerformance(model, end, res) // again, with the root cause's series
		key := dedupKey("performance", model, w.Window.End)
		t := &schemas.RetrainTrigger{TriggerID: key[:32], ModelID: model, ModelVersion: w.Version, Reason: reason, CreatedAt: now.UTC(),
			Window: schemas.TimeRange{From: w.Window.Start, To: w.Window.End}, Reference: schemas.TimeRange{From: ref.Start, To: ref.End},
			Evidence: ev, Policy: policyName, DedupKey: key}
		d, err := m.gate.decide(ctx, t, false)
		if err != nil {
			return res, err
		}
		m.triggers.WithLabelValues(string(t.Reason), string(d.Outcome)).Inc()
		res.Decisions = append(res.Decisions, d)
		if d.Outcome == OutcomePublished {
			m.log.Info("retrain trigger published", "model", model, "reason", reason, "metric", res.Primary, "value", cur.Value, "reference", refM.Value, "window", w.Window.String())
		}
		break
	}
	return res, m.estimatedPolicy(ctx, model, ref, refM, &res)
}

// judgeableReference returns the reference's primary metric when a drop
// can be judged against it: scored, on at least MinLabelled rows.
func (c PerformanceConfig) judgeableReference(primary string, ref perf.Result) (perf.Metric, bool) {
	refM, ok := ref.Metric(primary)
	if !ok || refM.Status != perf.StatusOK || refM.Samples < c.MinLabelled {
		return perf.Metric{}, false
	}
	return refM, true
}

// Drop is the performance drop policy's verdict on one window.
type Drop struct {
	// Window is the performance window judged.
	Window window.Span
	// Current and Reference are its primary metric and the reference's.
	Current, Reference perf.Metric
	// Worse is how much worse Current is than Reference, in the metric's
	// direction (positive: worse).
	Worse float64
	// Dropped: Worse is more than the policy's drop.
	Dropped bool
}

// drop judges window w against the reference's primary metric refM (from
// judgeableReference): ok is false when w cannot be judged (its metric not
// scored, fewer than MinLabelled rows scored, or w inside the reference
// ref). The one drop policy: the monitor's performance trigger and
// driftwatch backtest's scoring both decide with it.
func (c PerformanceConfig) drop(primary string, refM perf.Metric, ref window.Span, w perf.Result) (Drop, bool) {
	cur, ok := w.Metric(primary)
	if !ok || cur.Status != perf.StatusOK || cur.Samples < c.MinLabelled || w.Window.Start.Before(ref.End) {
		return Drop{}, false
	}
	worse := refM.Value - cur.Value
	if !perf.HigherIsBetter(primary) {
		worse = -worse
	}
	return Drop{Window: w.Window, Current: cur, Reference: refM, Worse: worse, Dropped: worse > c.Drop}, true
}

// estimate fits the model's estimator on the reference's labelled rows
// (CBPE for a classifier, binary or multiclass one-vs-rest; DLE for a
// regressor) and estimates every window of res: the estimated_<metric>
// rows with their band, and, in windows past the hand-off, the estimator's
// error estimated_<metric>_error = estimated − realized. A reference the
// estimator cannot use (too few labels, one class) leaves the windows
// without estimates.
func (m *Monitor) estimate(ctx context.Context, model string, ref window.Span, opts perf.Options, res *PerformanceResult) error {
	c := m.opts.Performance
	if !c.Estimation.Enabled || len(res.Windows) == 0 {
		return nil
	}
	est, err := m.estimators.get(ctx, m, model, ref, opts, res.Reference)
	if errors.Is(err, cbpe.ErrInsufficient) || errors.Is(err, dle.ErrInsufficient) {
		m.log.Debug("no performance estimate", "model", model, "reason", err)
		return nil
	}
	if err != nil {
		return err
	}
	for i := range res.Windows {
		w := &res.Windows[i]
		var (
			es   []cbpe.Estimate
			rows float64
		)
		switch {
		case est.loss != nil:
			sums, err := perf.EstimateRegression(ctx, m.opts.Conn, model, w.Window, opts, *est.loss)
			if err != nil {
				return err
			}
			es, rows = perf.EstimatedLosses(est.loss.Estimate(sums)), sums.N
		case est.multi != nil:
			sums, err := perf.EstimateMulticlass(ctx, m.opts.Conn, model, w.Window, opts, *est.multi)
			if err != nil {
				return err
			}
			es, rows = est.multi.Estimate(sums), sums.N
		default:
			sums, err := perf.Estimate(ctx, m.opts.Conn, model, w.Window, opts, est.binary)
			if err != nil {
				return err
			}
			es, rows = est.binary.Estimate(sums), sums.N
		}
		w.Estimated = perf.EstimatedMetrics(es, int64(rows))
		if !m.handedOff(*w, res.Primary) {
			continue
		}
		for _, e := range es {
			if r, ok := w.Metric(e.Name); ok && r.Status == perf.StatusOK && !math.IsNaN(e.Value) {
				w.Estimated = append(w.Estimated, perf.Metric{Name: perf.EstimatedPrefix + e.Name + perf.ErrorSuffix, Value: e.Value - r.Value, Samples: r.Samples, Status: perf.StatusOK})
			}
		}
	}
	return nil
}

// estimators keeps each model's fitted CBPE reference while its reference
// span and its labelled rows stay the same: the fit reads up to
// reference_rows rows, every round otherwise.
type estimators struct {
	mu      sync.Mutex
	byModel map[string]estimator
}

// estimator is a model's fitted estimator: CBPE, binary or multiclass
// (multi set), or DLE for a regressor (loss set).
type estimator struct {
	span               window.Span
	inferences, labels int64
	binary             cbpe.Reference
	multi              *cbpe.MultiReference
	loss               *dle.Model
	err                error
}

func (e *estimators) get(ctx context.Context, m *Monitor, model string, span window.Span, opts perf.Options, refPerf perf.Result) (estimator, error) {
	e.mu.Lock()
	c, ok := e.byModel[model]
	e.mu.Unlock()
	if ok && c.span == span && c.inferences == refPerf.Inferences && c.labels == refPerf.Labelled {
		return c, c.err
	}
	limit := m.opts.Performance.Estimation.ReferenceRows
	c = estimator{span: span, inferences: refPerf.Inferences, labels: refPerf.Labelled}
	switch {
	case opts.Task == perf.Regression:
		rows, err := perf.RegressionReferenceRows(ctx, m.opts.Conn, model, span, opts, limit)
		if err != nil {
			return c, err
		}
		var loss dle.Model
		loss, c.err = dle.Fit(rows)
		c.loss = &loss
	case opts.PositiveLabel == "":
		rows, err := perf.MulticlassReferenceRows(ctx, m.opts.Conn, model, span, opts, limit)
		if err != nil {
			return c, err
		}
		var multi cbpe.MultiReference
		multi, c.err = cbpe.FitMulticlass(rows)
		c.multi = &multi
	default:
		rows, err := perf.ReferenceRows(ctx, m.opts.Conn, model, span, opts, limit)
		if err != nil {
			return c, err
		}
		c.binary, c.err = cbpe.Fit(rows)
	}
	if c.err != nil && !errors.Is(c.err, cbpe.ErrInsufficient) && !errors.Is(c.err, dle.ErrInsufficient) {
		return c, fmt.Errorf("fit performance estimation of %s: %w", model, c.err)
	}
	e.mu.Lock()
	e.byModel[model] = c
	e.mu.Unlock()
	return c, c.err
}

// handedOff reports whether w's realized metric has taken over from its
// estimate: label coverage at least handoff_coverage and min_labelled rows
// scored by the metric.
func (m *Monitor) handedOff(w perf.Result, metric string) bool {
	c := m.opts.Performance
	r, ok := w.Metric(metric)
	return ok && r.Status == perf.StatusOK && r.Samples >= c.MinLabelled && w.LabelCoverage >= c.Estimation.HandoffCoverage
}

// current returns w's value of metric after the hand-off: the realized one
// once handed off, the estimate before; ok is false without either.
func (m *Monitor) current(w perf.Result, metric string) (value float64, realized, ok bool) {
	if m.handedOff(w, metric) {
		r, _ := w.Metric(metric)
		return r.Value, true, true
	}
	for _, e := range w.Estimated {
		if e.Name == perf.EstimatedPrefix+metric {
			return e.Value, false, true
		}
	}
	return 0, false, false
}

// estimatedPolicy is the estimated_performance trigger policy: the newest
// window still on its estimate (newer than every handed-off window, after
// the reference) whose estimated primary metric is worse than the
// reference's realized one by more than estimation.drop.
func (m *Monitor) estimatedPolicy(ctx context.Context, model string, ref window.Span, refM perf.Metric, res *PerformanceResult) error {
	c := m.opts.Performance
	if !c.Estimation.Enabled || !c.Estimation.Trigger || refM.Status != perf.StatusOK || refM.Samples < c.MinLabelled {
		return nil
	}
	for i := len(res.Windows) - 1; i >= 0; i-- {
		w := res.Windows[i]
		if m.handedOff(w, res.Primary) || w.Window.Start.Before(ref.End) {
			return nil
		}
		v, _, ok := m.current(w, res.Primary)
		if !ok {
			continue
		}
		worse := refM.Value - v
		if !perf.HigherIsBetter(res.Primary) {
			worse = -worse
		}
		if worse <= c.Estimation.Drop {
			return nil
		}
		key := dedupKey("estimated_performance", model, w.Window.End)
		t := &schemas.RetrainTrigger{TriggerID: key[:32], ModelID: model, ModelVersion: w.Version, Reason: schemas.TriggerPerformance, CreatedAt: m.opts.Now().UTC(),
			Window: schemas.TimeRange{From: w.Window.Start, To: w.Window.End}, Reference: schemas.TimeRange{From: ref.Start, To: ref.End},
			Evidence: []schemas.Evidence{{Check: "estimated_performance", Method: perf.EstimatedPrefix + res.Primary, Value: v, Threshold: refM.Value, Samples: w.Inferences}},
			Policy:   "estimated_performance", DedupKey: key}
		d, err := m.gate.decide(ctx, t, false)
		if err != nil {
			return err
		}
		m.triggers.WithLabelValues(string(t.Reason), string(d.Outcome)).Inc()
		res.Decisions = append(res.Decisions, d)
		if d.Outcome == OutcomePublished {
			m.log.Info("retrain trigger published", "model", model, "policy", "estimated_performance", "metric", res.Primary, "estimate", v, "reference", refM.Value, "window", w.Window.String())
		}
		return nil
	}
	return nil
}

// correlate correlates the primary metric and the mean prediction per
// bucket with each business metric of the model (or global), lags
// 0..MaxLag, and writes business_correlations.
func (m *Monitor) correlate(ctx context.Context, model string, end time.Time, opts perf.Options, res *PerformanceResult) error {
	c := m.opts.Performance
	last := end.Truncate(c.Bucket)
	span := window.Span{Start: last.Add(-time.Duration(c.Buckets) * c.Bucket), End: last}
	metrics, err := m.store.BusinessMetrics(ctx, model, span, c.MaxBusinessMetrics+1)
	if err != nil || len(metrics) == 0 {
		return err
	}
	if len(metrics) > c.MaxBusinessMetrics {
		metrics = metrics[:c.MaxBusinessMetrics]
		m.log.Warn("the model has more business metrics than max_business_metrics; correlating the most observed", "model", model, "max_business_metrics", c.MaxBusinessMetrics)
	}
	buckets, err := perf.Buckets(ctx, m.opts.Conn, model, span, c.Bucket, opts)
	if err != nil {
		return fmt.Errorf("bucketed performance of %s: %w", model, err)
	}
	series := map[string][]float64{res.Primary: perf.Values(buckets, res.Primary)}
	if mean, err := m.store.MeanPrediction(ctx, model, span, c.Bucket, c.Buckets); err == nil {
		series["prediction_mean"] = mean
	} else {
		return err
	}
	var rows []CorrelationRow
	for _, bm := range metrics {
		biz, err := m.store.BusinessSeries(ctx, model, bm, span, c.Bucket, c.Buckets)
		if err != nil {
			return err
		}
		for _, mm := range []string{res.Primary, "prediction_mean"} {
			for _, method := range []string{correlate.MethodPearson, correlate.MethodSpearman} {
				lags, err := correlate.Lagged(method, series[mm], biz, c.MaxLag)
				if err != nil {
					return fmt.Errorf("correlate %s with %s: %w", mm, bm, err)
				}
				cr := CorrelationResult{ModelMetric: mm, BusinessMetric: bm, Method: method, Lags: lags}
				cr.Best, cr.BestErr = correlate.BestLag(lags)
				res.Correlations = append(res.Correlations, cr)
				for _, l := range lags {
					if l.Err != nil {
						continue
					}
					rows = append(rows, CorrelationRow{ModelMetric: mm, BusinessMetric: bm, Method: method, Lag: uint16(l.Lag), Value: l.Value, PValue: l.PValue,
						Samples: uint64(l.N), BucketSeconds: uint32(c.Bucket / time.Second), WindowStart: span.Start, WindowEnd: span.End})
				}
			}
		}
	}
	return m.store.WriteCorrelations(ctx, model, m.opts.Now(), rows)
}

// exportPerformance publishes the newest window with labels, the label
// coverage of the newest window older than CoverageAge, and the best-lag
// correlations.
func (m *Monitor) exportPerformance(model string, end time.Time, res PerformanceResult) {
	var ms []prometheus.Metric
	for i := len(res.Windows) - 1; i >= 0; i-- {
		w := res.Windows[i]
		if w.Labelled == 0 {
			continue
		}
		for _, mt := range w.Metrics {
			if mt.Status == perf.StatusOK {
				ms = append(ms, prometheus.MustNewConstMetric(m.perfDesc.perf, prometheus.GaugeValue, mt.Value, model, mt.Name))
			}
		}
		break
	}
	// The hand-off: the newest window with an estimate or labels reports
	// each estimated metric's current value, realized once handed off;
	// the estimator's error comes from the newest window that has one.
	for i := len(res.Windows) - 1; i >= 0; i-- {
		w := res.Windows[i]
		if len(w.Estimated) == 0 {
			continue
		}
		from := 0.0
		for _, e := range w.Estimated {
			name := strings.TrimPrefix(e.Name, perf.EstimatedPrefix)
			if strings.HasSuffix(name, perf.LowerSuffix) || strings.HasSuffix(name, perf.UpperSuffix) || strings.HasSuffix(name, perf.ErrorSuffix) {
				continue
			}
			v, realized, ok := m.current(w, name)
			if !ok {
				continue
			}
			ms = append(ms, prometheus.MustNewConstMetric(m.perfDesc.estimated, prometheus.GaugeValue, v, model, name))
			if realized && name == res.Primary {
				from = 1
			}
		}
		ms = append(ms, prometheus.MustNewConstMetric(m.perfDesc.fromLabels, prometheus.GaugeValue, from, model))
		break
	}
	exportedErr := map[string]bool{}
	for i := len(res.Windows) - 1; i >= 0; i-- {
		for _, e := range res.Windows[i].Estimated {
			name, ok := strings.CutSuffix(strings.TrimPrefix(e.Name, perf.EstimatedPrefix), perf.ErrorSuffix)
			if ok && !exportedErr[name] {
				exportedErr[name] = true
				ms = append(ms, prometheus.MustNewConstMetric(m.perfDesc.estimationError, prometheus.GaugeValue, e.Value, model, name))
			}
		}
	}
	for _, mt := range res.Reference.Metrics {
		if mt.Status == perf.StatusOK && res.Reference.Labelled > 0 {
			ms = append(ms, prometheus.MustNewConstMetric(m.perfDesc.reference, prometheus.GaugeValue, mt.Value, model, mt.Name))
		}
	}
	// A model that never had a label (labels not wired up yet) exports no
	// coverage: the alert is for labels that stopped, not for none ever.
	labelled := res.Reference.Labelled
	for _, w := range res.Windows {
		labelled += w.Labelled
	}
	for i := len(res.Windows) - 1; i >= 0 && labelled > 0; i-- {
		if w := res.Windows[i]; !w.Window.End.After(end.Add(-m.opts.Performance.CoverageAge)) {
			ms = append(ms, prometheus.MustNewConstMetric(m.perfDesc.coverage, prometheus.GaugeValue, w.LabelCoverage, model))
			break
		}
	}
	for _, cr := range res.Correlations {
		if cr.BestErr == nil && cr.Method == correlate.MethodPearson {
			ms = append(ms, prometheus.MustNewConstMetric(m.perfDesc.corr, prometheus.GaugeValue, cr.Best.Value, model, cr.ModelMetric, cr.BusinessMetric))
		}
	}
	m.exp.setExtra(model, append(ms, m.segmentPerformanceSeries(model, res)...))
}

func perfDescs() perfMetrics {
	return perfMetrics{
		perf:            prometheus.NewDesc("driftwatch_performance", "Latest performance metric of the newest window with labels.", []string{"model", "metric"}, nil),
		reference:       prometheus.NewDesc("driftwatch_performance_reference", "The same metric over the model's reference period, for comparison in alert rules.", []string{"model", "metric"}, nil),
		coverage:        prometheus.NewDesc("driftwatch_label_coverage", "Share of inferences with a label, in the newest performance window older than coverage_age.", []string{"model"}, nil),
		corr:            prometheus.NewDesc("driftwatch_business_correlation", "Pearson r at the best lag between a model metric and a business metric.", []string{"model", "model_metric", "business_metric"}, nil),
		estimated:       prometheus.NewDesc("driftwatch_performance_estimated", "Performance of the newest window after the hand-off: the CBPE estimate while its labels are few, the realized metric once label coverage reaches handoff_coverage.", []string{"model", "metric"}, nil),
		fromLabels:      prometheus.NewDesc("driftwatch_performance_estimated_from_labels", "1 when driftwatch_performance_estimated of the primary metric is the realized value, 0 while it is the estimate.", []string{"model"}, nil),
		estimationError: prometheus.NewDesc("driftwatch_performance_estimation_error", "Estimated minus realized metric in the newest window past the hand-off: how far to trust the estimator for this model.", []string{"model", "metric"}, nil),
		segment:         prometheus.NewDesc("driftwatch_segment_performance", "The primary performance metric of a slice (segment key=value) in the newest window with labels; after the model's other series in its series budget.", []string{"model", "segment", "metric"}, nil),
		rootCause:       prometheus.NewDesc("driftwatch_performance_root_cause", "The contribution of the slice contributing most, per segment key, to the change of the decomposed metric (the primary one or its mean-type companion) in the window of the newest performance drop; kind mix or within.", []string{"model", "metric", "segment", "kind"}, nil),
	}
}

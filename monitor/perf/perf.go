// Package perf measures how well a model predicts once its ground truth has
// arrived: classification and regression metrics over an event-time window,
// label coverage and label delay, computed in ClickHouse from inferences
// joined to outcomes. Go receives a handful of sums and counts per window,
// never rows (like package window), so the work scales with the cluster.
//
// # Joining labels
//
// An inference of the window (inferences FINAL, by event time, [Start, End))
// is labelled by the outcomes (outcomes FINAL) with the same (model_id,
// prediction_id) whose timestamp is at most Options.Horizon after the
// inference's; of those the newest (by outcome timestamp, then event_id)
// wins, its label and its value together. Outcomes arriving after the
// horizon are ignored, so a window's metrics stop moving once the horizon
// has passed. An outcome timestamped before its inference (producer clock
// skew) counts, with a negative delay. Label coverage is labelled /
// inferences of the window; an inference counts as labelled when its
// winning outcome carries the task's truth (actual_label for
// classification, actual_value for regression).
//
// # Metrics
//
// Every definition agrees with scikit-learn 1.6.1 on the golden cases of
// testdata/golden.py (1e-9 relative):
//
//   - Binary classification (Options.PositiveLabel set): every class other
//     than the positive one is negative. The predicted class is
//     prediction_label, or, where the producer sent only a score,
//     positive when prediction_score ≥ Threshold. accuracy, precision, recall
//     and f1 of the positive class (sklearn's average="binary"; a 0/0
//     precision or recall is 0, as sklearn's zero_division default), roc_auc
//     from prediction_score (Mann–Whitney U / (P·N), ties counting ½, equal
//     to sklearn's roc_auc_score; undefined with one class), log_loss
//     (prediction_score as P(positive), clipped to [ε, 1−ε] with
//     ε = 2⁻⁵², sklearn's float64 eps) and brier (mean squared
//     difference between prediction_score and the 0/1 truth).
//   - Multiclass (no PositiveLabel): accuracy, and precision, recall and f1
//     macro-averaged over the union of true and predicted classes
//     (sklearn's average="macro", zero_division 0); rows without a
//     prediction_label are not scored by them. From
//     prediction_probabilities (class → probability), over the labelled
//     rows that carry some: log_loss (sklearn's multiclass log_loss: the
//     mean of −log p(true class), p clipped to [ε, 1−ε], a class without a
//     probability counting as 0) and brier, macro-averaged like the others:
//     the mean over classes (those in the probabilities or among the
//     truths) of each class's one-vs-rest Brier score, which is the
//     original multiclass Brier score (Brier 1950, mean of Σ_k (p_k − y_k)²)
//     divided by the number of classes.
//   - Regression: mae, rmse, mape (|y−ŷ| / max(|y|, ε), ε = 2⁻⁵², as
//     sklearn's mean_absolute_percentage_error; a ratio, not ×100) and r2
//     (1 − SS_res/SS_tot; with constant truth 1 when the fit is perfect and
//     0 otherwise, as sklearn's force_finite).
//
// Label-delay quantiles (p50, p90, p99, seconds from inference to its
// winning outcome) are exact, numpy's "linear" definition
// (quantilesExactInclusive).
package perf

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/monitor/window"
)

// Span is a half-open event-time interval [Start, End).
type Span = window.Span

// Task says which metrics apply.
type Task string

// Tasks.
const (
	Classification Task = "classification"
	Regression     Task = "regression"
)

// Metric names: stable strings for the metric column of
// performance_results and the metric label of Prometheus series. Do not
// rename them.
const (
	MetricAccuracy  = "accuracy"
	MetricPrecision = "precision"
	MetricRecall    = "recall"
	MetricF1        = "f1"
	MetricROCAUC    = "roc_auc"
	MetricLogLoss   = "log_loss"
	MetricBrier     = "brier"
	MetricMAE       = "mae"
	MetricRMSE      = "rmse"
	MetricMAPE      = "mape"
	MetricR2        = "r2"

	// Window-level rows Write adds next to the metrics.
	MetricLabelCoverage = "label_coverage"
	MetricLabelDelayP50 = "label_delay_p50_seconds"
	MetricLabelDelayP90 = "label_delay_p90_seconds"
	MetricLabelDelayP99 = "label_delay_p99_seconds"
)

// HigherIsBetter reports whether a larger value of the metric means a
// better model (accuracy, …) rather than a worse one (log_loss, mae, …).
// Performance-drop policies use it for the direction of the drop.
func HigherIsBetter(metric string) bool {
	switch metric {
	case MetricAccuracy, MetricPrecision, MetricRecall, MetricF1, MetricROCAUC, MetricR2:
		return true
	}
	return false
}

// Metric statuses, as in drift_results.
const (
	StatusOK           = "ok"
	StatusInsufficient = "insufficient" // no scored rows (or fewer than 2 for r2)
	StatusUndefined    = "undefined"    // roc_auc with a single class
)

// ErrInvalid reports bad Options.
var ErrInvalid = errors.New("invalid performance options")

// Options say how to score a model.
type Options struct {
	// Task is Classification or Regression.
	Task Task
	// PositiveLabel makes a classifier binary: this class against the rest.
	// Empty means multiclass, with macro averages.
	PositiveLabel string
	// Threshold turns prediction_score into a predicted class for binary
	// rows without a prediction_label: positive when score ≥ Threshold.
	// Zero means 0.5.
	Threshold float64
	// Horizon is how long after an inference its outcome still counts.
	// Zero means no limit.
	Horizon time.Duration
	// Version restricts the window to one model_version; empty pools all.
	Version string
}

// Validate names every bad field.
func (o Options) Validate() error {
	var errs []error
	switch o.Task {
	case Classification:
	case Regression:
		if o.PositiveLabel != "" {
			errs = append(errs, fmt.Errorf("positive_label: only for classification, got %q: %w", o.PositiveLabel, ErrInvalid))
		}
	default:
		errs = append(errs, fmt.Errorf("task: must be %q or %q, got %q: %w", Classification, Regression, o.Task, ErrInvalid))
	}
	if o.Threshold < 0 || o.Threshold > 1 || math.IsNaN(o.Threshold) {
		errs = append(errs, fmt.Errorf("threshold: must be in (0, 1], got %v: %w", o.Threshold, ErrInvalid))
	}
	if o.Horizon < 0 {
		errs = append(errs, fmt.Errorf("horizon: must not be negative, got %v: %w", o.Horizon, ErrInvalid))
	}
	return errors.Join(errs...)
}

// Metric is one metric of a window.
type Metric struct {
	// Name is one of the Metric* constants.
	Name string
	// Value is the metric; NaN unless Status is StatusOK.
	Value float64
	// Samples is the number of labelled rows the metric was computed on
	// (rows with the truth and the prediction it needs).
	Samples int64
	// Status is StatusOK, StatusInsufficient or StatusUndefined.
	Status string
}

// Delay holds label-delay quantiles in seconds; NaN without labels.
type Delay struct {
	P50, P90, P99 float64
}

// Result is a model's performance over one window.
type Result struct {
	Model   string
	Version string // empty when versions are pooled
	// Segment is the slice the result is for: empty for the population,
	// key=value for a slice (ComputeSlices).
	Segment string
	Window  Span
	// Inferences counts the window's inferences; Labelled those with a
	// label within the horizon.
	Inferences, Labelled int64
	// LabelCoverage is Labelled / Inferences (NaN without inferences).
	LabelCoverage float64
	// LabelDelay is the delay from inference to its winning outcome.
	LabelDelay Delay
	// Metrics are the task's metrics, in a fixed order, including those
	// that could not be computed (see Metric.Status).
	Metrics []Metric
	// Estimated are the window's estimated metrics (EstimatedMetrics:
	// estimated_<metric>, its band, and its error once the realized value
	// is known), set by the caller; Write stores them with the others.
	Estimated []Metric
	// Sums are the mean-type metrics as sums over the rows they score
	// (accuracy, log_loss, brier; mae, mse), what a root cause decomposes.
	Sums []Sum
}

// Sum is a mean-type metric of a window as Total over N scored rows: the
// metric is Total/N (for accuracy, the correct rows over the scored).
type Sum struct {
	Metric string
	N      int64
	Total  float64
}

// MetricMSE names the mean squared error in Result.Sums (its root is
// rmse).
const MetricMSE = "mse"

// Sum returns the named sum.
func (r Result) Sum(name string) (Sum, bool) {
	for _, x := range r.Sums {
		if x.Metric == name {
			return x, true
		}
	}
	return Sum{}, false
}

// Metric returns the named metric.
func (r Result) Metric(name string) (Metric, bool) {
	for _, m := range r.Metrics {
		if m.Name == name {
			return m, true
		}
	}
	return Metric{}, false
}

// Compute measures model's performance over w, in ClickHouse: the
// inferences count, a summary query, plus the ROC AUC rank sums (binary)
// or the confusion matrix (multiclass).
func Compute(ctx context.Context, conn driver.Conn, model string, w Span, opts Options) (Result, error) {
	pop, _, err := ComputeSlices(ctx, conn, model, w, opts, Slices{})
	return pop, err
}

// Slices are the slices ComputeSlices scores beside the population.
type Slices struct {
	// Names are the slices' names (key=value), by index−1.
	Names []string
	// Expr is the SQL, on a row of inferences, of the array of the row's
	// slice indexes (1-based in Names; window.SlicePlan.Expr).
	Expr string
	// MinSamples is the fewest inferences a slice must have in the window
	// to be returned.
	MinSamples int64
}

// ComputeSlices measures model's performance over w for the population
// and every slice in the same queries: each row is expanded by its slices
// (ARRAY JOIN of [0] and its slice indexes, 0 the population) and the
// aggregates are grouped by slice. It returns the population's result and
// those of the slices with at least MinSamples inferences, in Names order.
func ComputeSlices(ctx context.Context, conn driver.Conn, model string, w Span, opts Options, sl Slices) (Result, []Result, error) {
	if err := opts.Validate(); err != nil {
		return Result{}, nil, err
	}
	if opts.Threshold == 0 {
		opts.Threshold = 0.5
	}
	q := querier{conn: conn, model: model, w: w, opts: opts, slices: sl.Expr}
	if q.slices == "" {
		q.slices = "CAST([], 'Array(UInt32)')"
	}
	res := make([]Result, len(sl.Names)+1)
	for i := range res {
		res[i] = Result{Model: model, Version: opts.Version, Window: w}
		if i > 0 {
			res[i].Segment = sl.Names[i-1]
		}
	}
	totals, err := q.totals(ctx, len(res))
	if err != nil {
		return Result{}, nil, err
	}
	switch {
	case opts.Task == Regression:
		err = q.regression(ctx, res)
	case opts.PositiveLabel != "":
		err = q.binary(ctx, res)
	default:
		err = q.multiclass(ctx, res)
	}
	if err != nil {
		return Result{}, nil, err
	}
	var out []Result
	for i := range res {
		r := &res[i]
		r.Inferences = int64(totals[i])
		r.LabelCoverage = math.NaN()
		if r.Inferences > 0 {
			r.LabelCoverage = float64(r.Labelled) / float64(r.Inferences)
		}
		if i > 0 && r.Inferences >= max(sl.MinSamples, 1) {
			out = append(out, *r)
		}
	}
	return res[0], out, nil
}

// bySlice is the ARRAY JOIN that expands a row (with column sls) into the
// population (0) and its slices.
const bySlice = " ARRAY JOIN arrayConcat(CAST([0], 'Array(UInt32)'), sls) AS sl"

// totals counts the window's inferences of the population and of every
// slice, indexed by slice (0 the population).
func (q *querier) totals(ctx context.Context, n int) ([]uint64, error) {
	out := make([]uint64, n)
	rows, err := q.conn.Query(ctx, "SELECT sl, count() FROM (SELECT "+q.slices+" AS sls FROM inferences FINAL WHERE "+q.inWindow()+")"+bySlice+" GROUP BY sl")
	if err != nil {
		return nil, fmt.Errorf("inferences of %s in %s: %w", q.model, q.w, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			sl uint32
			c  uint64
		)
		if err := rows.Scan(&sl, &c); err != nil {
			return nil, fmt.Errorf("read inferences of %s: %w", q.model, err)
		}
		if int(sl) < n {
			out[sl] = c
		}
	}
	return out, rows.Err()
}

// eps is numpy's float64 machine epsilon, sklearn's clip for log_loss and
// floor for mape.
const eps = 0x1p-52

type querier struct {
	conn  driver.Conn
	model string
	w     Span
	opts  Options
	// slices is the SQL of a row's slice indexes (empty array: none).
	slices string
}

func lit(x float64) string { return "toFloat64(" + strconv.FormatFloat(x, 'g', -1, 64) + ")" }

// inWindow is the filter on inferences FINAL for the model and window.
func (q *querier) inWindow() string {
	// NOT shadow: shadow predictions are a challenger's answers to the
	// same requests (docs/serve.md, "Shadow scoring"), not the model's.
	s := fmt.Sprintf("model_id = %s AND NOT shadow AND timestamp >= %s AND timestamp < %s", chsql.String(q.model), chsql.Time(q.w.Start), chsql.Time(q.w.End))
	if q.opts.Version != "" {
		s += " AND model_version = " + chsql.String(q.opts.Version)
	}
	return s
}

// labelled is a subquery with one row per labelled inference of the
// window: its prediction columns and, from the newest outcome within the
// horizon, actual_label, actual_value and delay_ms.
func (q *querier) labelled() string { return q.labelledWith(false) }

// labelledWith is labelled, with the inference's features_numeric too
// when features is set (DLE's reference rows).
func (q *querier) labelledWith(features bool) string {
	featCol, featAny := "", ""
	if features {
		featCol, featAny = ", features_numeric", "\n    any(i.features_numeric) AS features_numeric,"
	}
	outcomeFilter, joinFilter := "", ""
	if h := q.opts.Horizon; h > 0 {
		ms := h.Milliseconds()
		outcomeFilter = " AND timestamp <= " + chsql.Time(q.w.End.Add(h))
		joinFilter = fmt.Sprintf(" WHERE dateDiff('millisecond', i.timestamp, o.timestamp) <= %d", ms)
	}
	return fmt.Sprintf(`SELECT%[5]s
    any(i.prediction_label) AS prediction_label,
    any(i.prediction_score) AS prediction_score,
    any(i.prediction_value) AS prediction_value,
    any(i.prediction_probabilities) AS prediction_probabilities,
    argMax(tuple(o.actual_label, o.actual_value, dateDiff('millisecond', i.timestamp, o.timestamp)), tuple(o.timestamp, o.event_id)) AS newest,
    newest.1 AS actual_label,
    newest.2 AS actual_value,
    newest.3 AS delay_ms,
    cityHash64(i.event_id) AS h,
    any(i.sls) AS sls
FROM (SELECT event_id, prediction_id, timestamp, prediction_label, prediction_score, prediction_value, prediction_probabilities%[6]s, %[7]s AS sls FROM inferences FINAL WHERE %[1]s) AS i
INNER JOIN (
    SELECT event_id, prediction_id, timestamp, actual_label, actual_value FROM outcomes FINAL
    WHERE model_id = %[2]s AND prediction_id IN (SELECT prediction_id FROM inferences FINAL WHERE %[1]s)%[3]s
) AS o ON i.prediction_id = o.prediction_id%[4]s
GROUP BY i.event_id`, q.inWindow(), chsql.String(q.model), outcomeFilter, joinFilter, featAny, featCol, q.slicesExpr())
}

// slicesExpr is q.slices, the empty array when unset (the estimation
// queries).
func (q *querier) slicesExpr() string {
	if q.slices == "" {
		return "CAST([], 'Array(UInt32)')"
	}
	return q.slices
}

const delayQuantiles = "quantilesExactInclusiveIf(0.5, 0.9, 0.99)(toFloat64(delay_ms) / 1000, has_y)"

func delay(qs []float64) Delay {
	d := Delay{math.NaN(), math.NaN(), math.NaN()}
	if len(qs) == 3 {
		d = Delay{qs[0], qs[1], qs[2]}
	}
	return d
}

func metric(name string, samples int64, value float64) Metric {
	if samples == 0 {
		return Metric{Name: name, Value: math.NaN(), Samples: 0, Status: StatusInsufficient}
	}
	return Metric{Name: name, Value: value, Samples: samples, Status: StatusOK}
}

func ratio(a, b uint64) float64 {
	if b == 0 {
		return 0 // sklearn's zero_division default
	}
	return float64(a) / float64(b)
}

// scanEach runs sql and scans every row with scan.
func (q *querier) scanEach(ctx context.Context, what, sql string, scan func(driver.Rows) error) error {
	rows, err := q.conn.Query(ctx, sql)
	if err != nil {
		return fmt.Errorf("%s of %s in %s: %w", what, q.model, q.w, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return fmt.Errorf("read %s of %s in %s: %w", what, q.model, q.w, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s of %s in %s: %w", what, q.model, q.w, err)
	}
	return nil
}

// slot returns res[sl], nil beyond it.
func slot(res []Result, sl uint32) *Result {
	if int(sl) >= len(res) {
		return nil
	}
	return &res[sl]
}

func (q *querier) binary(ctx context.Context, res []Result) error {
	rows := q.binaryRows()
	sql := fmt.Sprintf(`SELECT sl, countIf(has_y) AS labelled, %s AS delays,
    countIf(has_y AND has_pred) AS n_cls,
    countIf(has_y AND has_pred AND pred_pos = y_pos) AS correct,
    countIf(has_y AND has_pred AND pred_pos AND y_pos) AS tp,
    countIf(has_y AND has_pred AND pred_pos AND NOT y_pos) AS fp,
    countIf(has_y AND has_pred AND NOT pred_pos AND y_pos) AS fn,
    countIf(has_y AND has_score) AS n_score,
    sumIf(-log(least(greatest(if(y_pos, s, 1 - s), %[2]s), 1 - %[2]s)), has_y AND has_score) AS log_loss_sum,
    sumIf(pow(y_pos - s, 2), has_y AND has_score) AS brier_sum
FROM (%s)%s GROUP BY sl`, delayQuantiles, lit(eps), rows, bySlice)
	// Every slot starts as a window without labels (a slice may have
	// none), then takes its row.
	for i := range res {
		binaryMetrics(&res[i], nil, 0, 0)
		res[i].LabelDelay = delay(nil)
	}
	err := q.scanEach(ctx, "binary performance", sql, func(rs driver.Rows) error {
		var (
			sl                                          uint32
			labelled, nCls, correct, tp, fp, fn, nScore uint64
			delays                                      []float64
			logLossSum, brierSum                        float64
		)
		if err := rs.Scan(&sl, &labelled, &delays, &nCls, &correct, &tp, &fp, &fn, &nScore, &logLossSum, &brierSum); err != nil {
			return err
		}
		if r := slot(res, sl); r != nil {
			r.Labelled, r.LabelDelay = int64(labelled), delay(delays)
			binaryMetrics(r, []uint64{nCls, correct, tp, fp, fn, nScore}, logLossSum, brierSum)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// ROC AUC as the Mann–Whitney U statistic from per-score class counts:
	// U = Σ_s pos_s·(neg below s + ½·neg_s). Integer sums, so 2U is exact.
	aucSQL := fmt.Sprintf(`SELECT sl, sum(pos), sum(neg), 2 * sum(pos * neg_below) + sum(pos * neg) FROM (
    SELECT sl, pos, neg, sum(neg) OVER (PARTITION BY sl ORDER BY s ASC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS neg_below
    FROM (SELECT sl, s, countIf(y_pos = 1) AS pos, countIf(y_pos = 0) AS neg FROM (%s)%s WHERE has_y AND has_score GROUP BY sl, s)
) GROUP BY sl`, rows, bySlice)
	return q.scanEach(ctx, "roc auc", aucSQL, func(rs driver.Rows) error {
		var (
			sl               uint32
			pos, neg, twiceU uint64
		)
		if err := rs.Scan(&sl, &pos, &neg, &twiceU); err != nil {
			return err
		}
		if r := slot(res, sl); r != nil {
			auc := &r.Metrics[4]
			if auc.Status == StatusOK {
				auc.Value = float64(twiceU) / (2 * float64(pos) * float64(neg))
				if pos == 0 || neg == 0 {
					auc.Value, auc.Status = math.NaN(), StatusUndefined
				}
			}
		}
		return nil
	})
}

// binaryMetrics sets r's binary metrics from the counts n_cls, correct,
// tp, fp, fn, n_score (nil: none); roc_auc (index 4) comes later.
func binaryMetrics(r *Result, c []uint64, logLossSum, brierSum float64) {
	if c == nil {
		c = make([]uint64, 6)
	}
	nCls, correct, tp, fp, fn, nScore := c[0], c[1], c[2], c[3], c[4], c[5]
	n := int64(nCls)
	prec, rec := ratio(tp, tp+fp), ratio(tp, tp+fn)
	r.Metrics = []Metric{
		metric(MetricAccuracy, n, ratio(correct, nCls)),
		metric(MetricPrecision, n, prec),
		metric(MetricRecall, n, rec),
		metric(MetricF1, n, ratio(2*tp, 2*tp+fp+fn)),
		metric(MetricROCAUC, int64(nScore), math.NaN()),
		metric(MetricLogLoss, int64(nScore), logLossSum/float64(nScore)),
		metric(MetricBrier, int64(nScore), brierSum/float64(nScore)),
	}
	r.Sums = []Sum{{MetricAccuracy, n, float64(correct)}, {MetricLogLoss, int64(nScore), logLossSum}, {MetricBrier, int64(nScore), brierSum}}
}

func (q *querier) multiclass(ctx context.Context, res []Result) error {
	rows := "SELECT actual_label IS NOT NULL AS has_y, actual_label, prediction_label, prediction_probabilities, delay_ms, sls, " +
		"has_y AND length(prediction_probabilities) > 0 AS has_p, assumeNotNull(actual_label) AS y FROM (" + q.labelled() + ")"
	// log_loss and brier from the class probabilities of the labelled
	// rows that carry them (has_p). Per row, Σ_k (p_k − y_k)² =
	// Σ_k p_k² − 2·p_y + 1 (p_y is 0 when the true class has no
	// probability); the macro brier divides the sum by the rows and by the
	// classes seen (in probabilities or as a truth).
	sql := fmt.Sprintf(`SELECT sl, countIf(has_y) AS labelled, %[1]s AS delays,
    countIf(has_p),
    sumIf(-log(greatest(least(prediction_probabilities[y], 1 - %[2]s), %[2]s)), has_p),
    sumIf(arraySum(arrayMap(v -> v * v, mapValues(prediction_probabilities))) - 2 * prediction_probabilities[y] + 1, has_p),
    length(arrayDistinct(arrayConcat(groupUniqArrayArrayIf(mapKeys(prediction_probabilities), has_p), groupUniqArrayIf(y, has_p))))
FROM (%[3]s)%[4]s GROUP BY sl`, delayQuantiles, lit(eps), rows, bySlice)
	type probs struct {
		n, classes     uint64
		logLoss, brier float64
	}
	ps := make([]probs, len(res))
	for i := range res {
		res[i].LabelDelay = delay(nil)
	}
	err := q.scanEach(ctx, "multiclass performance", sql, func(rs driver.Rows) error {
		var (
			sl       uint32
			labelled uint64
			delays   []float64
			p        probs
		)
		if err := rs.Scan(&sl, &labelled, &delays, &p.n, &p.logLoss, &p.brier, &p.classes); err != nil {
			return err
		}
		if r := slot(res, sl); r != nil {
			r.Labelled, r.LabelDelay = int64(labelled), delay(delays)
			ps[sl] = p
		}
		return nil
	})
	if err != nil {
		return err
	}
	confSQL := fmt.Sprintf(`SELECT sl, y, assumeNotNull(prediction_label) AS p, count()
FROM (%s)%s WHERE has_y AND prediction_label IS NOT NULL GROUP BY sl, y, p`, rows, bySlice)
	cells := make([][]Cell, len(res))
	err = q.scanEach(ctx, "confusion matrix", confSQL, func(rs driver.Rows) error {
		var (
			sl uint32
			c  Cell
		)
		if err := rs.Scan(&sl, &c.Actual, &c.Predicted, &c.Count); err != nil {
			return err
		}
		if int(sl) < len(cells) {
			cells[sl] = append(cells[sl], c)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := range res {
		r, p := &res[i], ps[i]
		r.Metrics = append(Macro(cells[i]),
			metric(MetricLogLoss, int64(p.n), p.logLoss/float64(p.n)),
			metric(MetricBrier, int64(p.n), p.brier/float64(p.n)/float64(max(p.classes, 1))))
		var n, correct uint64
		for _, c := range cells[i] {
			n += c.Count
			if c.Actual == c.Predicted {
				correct += c.Count
			}
		}
		r.Sums = []Sum{{MetricAccuracy, int64(n), float64(correct)}, {MetricLogLoss, int64(p.n), p.logLoss}}
	}
	return nil
}

// Cell is one entry of a confusion matrix: rows with true class Actual
// predicted as Predicted.
type Cell struct {
	Actual, Predicted string
	Count             uint64
}

// Macro returns accuracy and the macro-averaged precision, recall and F1
// of a confusion matrix, over the union of true and predicted classes
// (sklearn's average="macro" with zero_division 0). Per class,
// F1 = 2·tp / (2·tp + fp + fn).
func Macro(cells []Cell) []Metric {
	type counts struct{ tp, fp, fn uint64 }
	per := map[string]*counts{}
	get := func(c string) *counts {
		if per[c] == nil {
			per[c] = &counts{}
		}
		return per[c]
	}
	var n, correct uint64
	for _, c := range cells {
		n += c.Count
		if c.Actual == c.Predicted {
			correct += c.Count
			get(c.Actual).tp += c.Count
			continue
		}
		get(c.Predicted).fp += c.Count
		get(c.Actual).fn += c.Count
	}
	classes := make([]string, 0, len(per))
	for c, k := range per {
		if k.tp+k.fp+k.fn > 0 {
			classes = append(classes, c)
		}
	}
	sort.Strings(classes) // a fixed summation order
	var p, r, f float64
	for _, c := range classes {
		k := per[c]
		p += ratio(k.tp, k.tp+k.fp)
		r += ratio(k.tp, k.tp+k.fn)
		f += ratio(2*k.tp, 2*k.tp+k.fp+k.fn)
	}
	if k := float64(len(classes)); k > 0 {
		p, r, f = p/k, r/k, f/k
	}
	return []Metric{
		metric(MetricAccuracy, int64(n), ratio(correct, n)),
		metric(MetricPrecision, int64(n), p),
		metric(MetricRecall, int64(n), r),
		metric(MetricF1, int64(n), f),
	}
}

func (q *querier) regression(ctx context.Context, res []Result) error {
	sql := fmt.Sprintf(`SELECT sl, countIf(has_y) AS labelled, %s AS delays,
    countIf(ok) AS n,
    sumIf(abs(y - p), ok) AS abs_sum,
    sumIf(pow(y - p, 2), ok) AS sq_sum,
    sumIf(abs(y - p) / greatest(abs(y), %s), ok) AS ape_sum,
    varPopStableIf(y, ok) AS var_y
FROM (
    SELECT actual_value IS NOT NULL AS has_y, has_y AND prediction_value IS NOT NULL AS ok,
        ifNull(actual_value, 0) AS y, ifNull(prediction_value, 0) AS p, delay_ms, sls
    FROM (%s)
)%s GROUP BY sl`, delayQuantiles, lit(eps), q.labelled(), bySlice)
	for i := range res {
		regressionMetrics(&res[i], 0, 0, 0, 0, 0)
		res[i].LabelDelay = delay(nil)
	}
	return q.scanEach(ctx, "regression performance", sql, func(rs driver.Rows) error {
		var (
			sl                             uint32
			labelled, n                    uint64
			delays                         []float64
			absSum, sqSum, apeSum, varPopY float64
		)
		if err := rs.Scan(&sl, &labelled, &delays, &n, &absSum, &sqSum, &apeSum, &varPopY); err != nil {
			return err
		}
		if r := slot(res, sl); r != nil {
			r.Labelled, r.LabelDelay = int64(labelled), delay(delays)
			regressionMetrics(r, n, absSum, sqSum, apeSum, varPopY)
		}
		return nil
	})
}

func regressionMetrics(r *Result, n uint64, absSum, sqSum, apeSum, varPopY float64) {
	fn := float64(n)
	r2 := metric(MetricR2, int64(n), r2Score(sqSum, varPopY*fn))
	if n < 2 {
		r2 = Metric{Name: MetricR2, Value: math.NaN(), Samples: int64(n), Status: StatusInsufficient}
	}
	r.Metrics = []Metric{
		metric(MetricMAE, int64(n), absSum/fn),
		metric(MetricRMSE, int64(n), math.Sqrt(sqSum/fn)),
		metric(MetricMAPE, int64(n), apeSum/fn),
		r2,
	}
	r.Sums = []Sum{{MetricMAE, int64(n), absSum}, {MetricMSE, int64(n), sqSum}}
}

// r2Score is 1 − ssRes/ssTot with sklearn's force_finite rule for a
// constant truth.
func r2Score(ssRes, ssTot float64) float64 {
	if ssTot == 0 {
		if ssRes == 0 {
			return 1
		}
		return 0
	}
	return 1 - ssRes/ssTot
}

// Write inserts res into performance_results, one row per computed metric
// plus label_coverage and the label-delay quantiles, all with computedAt.
// Rows are only ever added: the newest computed_at of a (model, version,
// window, metric) is the current value (view performance_latest), older
// ones are the history of a window re-evaluated as labels arrived.
func Write(ctx context.Context, conn driver.Conn, computedAt time.Time, results ...Result) error {
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO performance_results (model_id, model_version, segment, window_start, window_end, metric, value, samples, label_coverage, computed_at)")
	if err != nil {
		return fmt.Errorf("prepare performance_results insert: %w", err)
	}
	defer batch.Abort() //nolint:errcheck // a no-op after Send
	rows := 0
	for _, r := range results {
		if r.Inferences == 0 {
			continue
		}
		add := func(name string, value float64, samples int64) error {
			rows++
			return batch.Append(r.Model, r.Version, r.Segment, r.Window.Start.UTC(), r.Window.End.UTC(), name, value, uint64(samples), r.LabelCoverage, computedAt.UTC())
		}
		if err := add(MetricLabelCoverage, r.LabelCoverage, r.Inferences); err != nil {
			return fmt.Errorf("append performance row: %w", err)
		}
		if r.Labelled > 0 {
			for _, d := range []struct {
				name string
				v    float64
			}{{MetricLabelDelayP50, r.LabelDelay.P50}, {MetricLabelDelayP90, r.LabelDelay.P90}, {MetricLabelDelayP99, r.LabelDelay.P99}} {
				if err := add(d.name, d.v, r.Labelled); err != nil {
					return fmt.Errorf("append performance row: %w", err)
				}
			}
		}
		for _, m := range append(r.Metrics[:len(r.Metrics):len(r.Metrics)], r.Estimated...) {
			if m.Status != StatusOK {
				continue
			}
			if err := add(m.Name, m.Value, m.Samples); err != nil {
				return fmt.Errorf("append performance row: %w", err)
			}
		}
	}
	if rows == 0 {
		return nil
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d rows into performance_results: %w", rows, err)
	}
	return nil
}

// Names lists the metrics Compute reports for opts, in order.
func Names(opts Options) []string {
	switch {
	case opts.Task == Regression:
		return []string{MetricMAE, MetricRMSE, MetricMAPE, MetricR2}
	case opts.PositiveLabel != "":
		return []string{MetricAccuracy, MetricPrecision, MetricRecall, MetricF1, MetricROCAUC, MetricLogLoss, MetricBrier}
	}
	return []string{MetricAccuracy, MetricPrecision, MetricRecall, MetricF1, MetricLogLoss, MetricBrier}
}

// Buckets computes the performance of each bucket [Start+k·bucket,
// Start+(k+1)·bucket) of span, in order: the model-metric series that
// package correlate sets against business metrics. A bucket without labels
// has its metrics insufficient (use NaN for it in the series). It runs
// Compute once per bucket (two queries each), so keep span/bucket in the
// hundreds.
func Buckets(ctx context.Context, conn driver.Conn, model string, span Span, bucket time.Duration, opts Options) ([]Result, error) {
	if bucket <= 0 || !span.End.After(span.Start) {
		return nil, fmt.Errorf("buckets of %v over %s: %w", bucket, span, ErrInvalid)
	}
	var out []Result
	for s := span.Start; s.Before(span.End); s = s.Add(bucket) {
		e := s.Add(bucket)
		if e.After(span.End) {
			e = span.End
		}
		r, err := Compute(ctx, conn, model, Span{Start: s, End: e}, opts)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Values returns one metric of each result, NaN where it was not computed:
// the series correlate.Lagged takes.
func Values(results []Result, metric string) []float64 {
	out := make([]float64, len(results))
	for i, r := range results {
		out[i] = math.NaN()
		if m, ok := r.Metric(metric); ok && m.Status == StatusOK {
			out[i] = m.Value
		}
	}
	return out
}

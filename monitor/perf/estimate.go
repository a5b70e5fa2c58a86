package perf

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/monitor/cbpe"
	"github.com/driftwatch/driftwatch/monitor/dle"
)

// EstimatedPrefix names the estimated metrics in performance_results and
// the metric label of driftwatch_performance_estimated: "estimated_" and
// the realized metric's name (estimated_roc_auc). The band of an estimate
// is stored next to it as estimated_<metric>_lower and _upper.
const EstimatedPrefix = "estimated_"

// Band suffixes of an estimated metric's confidence band rows.
const (
	LowerSuffix = "_lower"
	UpperSuffix = "_upper"
	// ErrorSuffix names the estimator's error once the realized value is
	// known: estimated_<metric>_error = estimated − realized.
	ErrorSuffix = "_error"
)

// ReferenceRows returns the labelled rows of a binary classifier in w that
// carry a score, as CBPE fits on them: score, truth (actual_label ==
// PositiveLabel) and the predicted class (as in Compute). One row per
// labelled inference, so the reference's size is what Go receives; the
// monitor caps it with limit (0: no cap), taking the rows with the lowest
// hash of their inference's event_id, a fixed sample.
func ReferenceRows(ctx context.Context, conn driver.Conn, model string, w Span, opts Options, limit int) ([]cbpe.Row, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Task != Classification || opts.PositiveLabel == "" {
		return nil, fmt.Errorf("reference rows of %s: estimation needs a binary classifier: %w", model, ErrInvalid)
	}
	if opts.Threshold == 0 {
		opts.Threshold = 0.5
	}
	q := querier{conn: conn, model: model, w: w, opts: opts}
	sql := fmt.Sprintf(`SELECT s, y_pos = 1, pred_pos = 1 FROM (%s) WHERE has_y AND has_score`, q.binaryRows())
	if limit > 0 {
		sql += " ORDER BY h LIMIT " + strconv.Itoa(limit)
	}
	rs, err := conn.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("reference rows of %s in %s: %w", model, w, err)
	}
	defer rs.Close()
	var out []cbpe.Row
	for rs.Next() {
		var r cbpe.Row
		if err := rs.Scan(&r.Score, &r.Positive, &r.Predicted); err != nil {
			return nil, fmt.Errorf("read reference rows of %s: %w", model, err)
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("read reference rows of %s: %w", model, err)
	}
	return out, nil
}

// binaryRows is the per-labelled-inference subquery of binary metrics.
func (q *querier) binaryRows() string {
	return fmt.Sprintf(`SELECT
    actual_label IS NOT NULL AS has_y,
    ifNull(actual_label = %[1]s, 0) AS y_pos,
    prediction_label IS NOT NULL OR prediction_score IS NOT NULL AS has_pred,
    if(prediction_label IS NOT NULL, ifNull(prediction_label = %[1]s, 0), ifNull(prediction_score >= %[2]s, 0)) AS pred_pos,
    prediction_score IS NOT NULL AS has_score,
    ifNull(prediction_score, 0) AS s,
    delay_ms,
    h,
    sls
FROM (%[3]s)`, chsql.String(q.opts.PositiveLabel), lit(q.opts.Threshold), q.labelled())
}

func floats(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatFloat(x, 'g', -1, 64)
	}
	return "CAST([" + strings.Join(parts, ", ") + "] AS Array(Float64))"
}

// Estimate computes CBPE's sums over the window's inferences with a score
// (all of them, labelled or not), in ClickHouse: each distinct score's
// calibrated probability from ref's isotonic knots (linear between knots,
// clipped outside, as cbpe.Isotonic.Predict), the expected confusion
// matrix, and the estimated ROC AUC's numerator from the running sum of
// the calibrated probabilities over the scores above. Go receives one row.
// The calibration costs O(knots) per distinct score (arrayCount); the
// knots are typically a few hundred.
func Estimate(ctx context.Context, conn driver.Conn, model string, w Span, opts Options, ref cbpe.Reference) (cbpe.Sums, error) {
	if err := opts.Validate(); err != nil {
		return cbpe.Sums{}, err
	}
	if opts.Task != Classification || opts.PositiveLabel == "" {
		return cbpe.Sums{}, fmt.Errorf("estimate %s: estimation needs a binary classifier: %w", model, ErrInvalid)
	}
	if opts.Threshold == 0 {
		opts.Threshold = 0.5
	}
	q := querier{conn: conn, model: model, w: w, opts: opts}
	p := "s"
	with := ""
	if ref.Calibrated {
		with = fmt.Sprintf("WITH %s AS xs, %s AS ys ", floats(ref.Calibrator.X), floats(ref.Calibrator.Y))
		p = `if(length(xs) = 1, ys[1], if(arrayCount(x -> x <= least(greatest(s, xs[1]), xs[-1]), xs) AS i >= length(xs), ys[-1],
        ys[i] + (ys[i + 1] - ys[i]) * (least(greatest(s, xs[1]), xs[-1]) - xs[i]) / (xs[i + 1] - xs[i])))`
	}
	sql := fmt.Sprintf(`SELECT toFloat64(sum(n)), sum(tp), sum(fp), sum(fn), sum(tn), sum(sn * (above + sp / 2)) FROM (
    SELECT n, tp, fp, fn, tn, sp, sn, sum(sp) OVER (ORDER BY s DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS above
    FROM (
        SELECT s, sum(c) AS n, sum(c * p) AS sp, sum(c * (1 - p)) AS sn,
            sum(if(pp, c * p, 0)) AS tp, sum(if(pp, c * (1 - p), 0)) AS fp, sum(if(pp, 0, c * p)) AS fn, sum(if(pp, 0, c * (1 - p))) AS tn
        FROM (
            %[1]sSELECT s, pp, c, %[2]s AS p FROM (
                SELECT assumeNotNull(prediction_score) AS s,
                    if(prediction_label IS NOT NULL, ifNull(prediction_label = %[3]s, 0), s >= %[4]s) AS pp, count() AS c
                FROM inferences FINAL WHERE %[5]s AND prediction_score IS NOT NULL GROUP BY s, pp
            )
        ) GROUP BY s
    )
)`, with, p, chsql.String(opts.PositiveLabel), lit(opts.Threshold), q.inWindow())
	var s cbpe.Sums
	if err := conn.QueryRow(ctx, sql).Scan(&s.N, &s.TP, &s.FP, &s.FN, &s.TN, &s.AUCNum); err != nil {
		return cbpe.Sums{}, fmt.Errorf("estimate performance of %s in %s: %w", model, w, err)
	}
	return s, nil
}

// EstimatedMetrics turns a window's estimates into performance_results
// rows: estimated_<metric> (samples: the rows estimated on) and its band,
// estimated_<metric>_lower and _upper; undefined estimates are left out.
func EstimatedMetrics(est []cbpe.Estimate, rows int64) []Metric {
	var out []Metric
	for _, e := range est {
		if math.IsNaN(e.Value) {
			continue
		}
		out = append(out, Metric{Name: EstimatedPrefix + e.Name, Value: e.Value, Samples: rows, Status: StatusOK})
		if !math.IsNaN(e.Lower) && !math.IsNaN(e.Upper) {
			out = append(out,
				Metric{Name: EstimatedPrefix + e.Name + LowerSuffix, Value: e.Lower, Samples: rows, Status: StatusOK},
				Metric{Name: EstimatedPrefix + e.Name + UpperSuffix, Value: e.Upper, Samples: rows, Status: StatusOK})
		}
	}
	return out
}

// MulticlassReferenceRows returns the labelled rows of a multiclass model
// in w that carry class probabilities, as cbpe.FitMulticlass fits on them.
// The predicted class is prediction_label, or, where the producer sent
// none, the class with the highest probability. limit caps the rows as in
// ReferenceRows.
func MulticlassReferenceRows(ctx context.Context, conn driver.Conn, model string, w Span, opts Options, limit int) ([]cbpe.MultiRow, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Task != Classification || opts.PositiveLabel != "" {
		return nil, fmt.Errorf("multiclass reference rows of %s: estimation needs a multiclass classifier: %w", model, ErrInvalid)
	}
	q := querier{conn: conn, model: model, w: w, opts: opts}
	sql := fmt.Sprintf(`SELECT prediction_probabilities, assumeNotNull(actual_label), %s
FROM (%s) WHERE actual_label IS NOT NULL AND length(prediction_probabilities) > 0`, predictedClass, q.labelled())
	if limit > 0 {
		sql += " ORDER BY h LIMIT " + strconv.Itoa(limit)
	}
	rs, err := conn.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("multiclass reference rows of %s in %s: %w", model, w, err)
	}
	defer rs.Close()
	var out []cbpe.MultiRow
	for rs.Next() {
		var r cbpe.MultiRow
		if err := rs.Scan(&r.Probs, &r.Truth, &r.Predicted); err != nil {
			return nil, fmt.Errorf("read multiclass reference rows of %s: %w", model, err)
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("read multiclass reference rows of %s: %w", model, err)
	}
	return out, nil
}

// predictedClass is a multiclass row's predicted class: prediction_label,
// else the class with the highest probability (the first key on ties).
const predictedClass = "ifNull(prediction_label, mapKeys(prediction_probabilities)[arrayFirstIndex(v -> v = arrayMax(mapValues(prediction_probabilities)), mapValues(prediction_probabilities))])"

// interpSQL is cbpe.Isotonic.Predict in SQL for the value v and knots xs,
// ys (SQL expressions); an empty xs gives 0 (never used: the caller passes
// the raw value for uncalibrated classes).
func interpSQL(v, xs, ys string) string {
	c := fmt.Sprintf("least(greatest(%s, %s[1]), %s[-1])", v, xs, xs)
	j := fmt.Sprintf("arrayCount(x -> x <= %s, %s)", c, xs)
	return fmt.Sprintf("if(length(%[1]s) <= 1, %[2]s[1], if(%[3]s >= length(%[1]s), %[2]s[-1], %[2]s[%[3]s] + (%[2]s[%[3]s + 1] - %[2]s[%[3]s]) * (%[4]s - %[1]s[%[3]s]) / (%[1]s[%[3]s + 1] - %[1]s[%[3]s])))",
		xs, ys, j, c)
}

// EstimateMulticlass computes multiclass CBPE's one-vs-rest sums over the
// window's inferences with class probabilities, in ClickHouse: each row's
// probabilities calibrated per class and renormalised (uniform when they
// sum to 0), then per class the expected TP, FP, FN and the ROC AUC
// numerator over the class's uncalibrated probability. Go receives one row
// per class.
func EstimateMulticlass(ctx context.Context, conn driver.Conn, model string, w Span, opts Options, ref cbpe.MultiReference) (cbpe.MultiSums, error) {
	if err := opts.Validate(); err != nil {
		return cbpe.MultiSums{}, err
	}
	if opts.Task != Classification || opts.PositiveLabel != "" {
		return cbpe.MultiSums{}, fmt.Errorf("estimate %s: multiclass estimation needs a multiclass classifier: %w", model, ErrInvalid)
	}
	q := querier{conn: conn, model: model, w: w, opts: opts}
	classes := make([]string, len(ref.Classes))
	xss, yss, flags := make([]string, len(ref.Classes)), make([]string, len(ref.Classes)), make([]string, len(ref.Classes))
	for i, c := range ref.Classes {
		classes[i] = chsql.String(c)
		xss[i], yss[i], flags[i] = floats(nil), floats(nil), "0"
		if ref.Calibrated[i] {
			xss[i], yss[i], flags[i] = floats(ref.Calibrators[i].X), floats(ref.Calibrators[i].Y), "1"
		}
	}
	sql := fmt.Sprintf(`WITH [%[1]s] AS cls, [%[2]s] AS xss, [%[3]s] AS yss, [%[4]s] AS cal
SELECT k, toFloat64(sum(n)), sum(tp), sum(fp), sum(fn), sum(sp), sum(sn * (above + sp / 2)) FROM (
    SELECT k, n, tp, fp, fn, sp, sn, sum(sp) OVER (PARTITION BY k ORDER BY rk DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS above
    FROM (
        SELECT k, rk, count() AS n, sum(pk) AS sp, sum(1 - pk) AS sn,
            sum(if(pred = cls[k], pk, 0)) AS tp, sum(if(pred = cls[k], 1 - pk, 0)) AS fp, sum(if(pred = cls[k], 0, pk)) AS fn
        FROM (
            SELECT pred, raw, p FROM (
                SELECT %[5]s AS pred, arrayMap(c -> prediction_probabilities[c], cls) AS raw,
                    arrayMap(i -> if(cal[i] = 1, %[6]s, raw[i]), arrayEnumerate(cls)) AS calibrated,
                    arraySum(calibrated) AS total,
                    if(total = 0, arrayMap(x -> 1 / length(cls), calibrated), arrayMap(x -> x / total, calibrated)) AS p
                FROM inferences FINAL WHERE %[7]s AND length(prediction_probabilities) > 0
            )
        ) ARRAY JOIN arrayEnumerate(cls) AS k, raw AS rk, p AS pk
        GROUP BY k, rk
    )
) GROUP BY k ORDER BY k`, strings.Join(classes, ", "), strings.Join(xss, ", "), strings.Join(yss, ", "), strings.Join(flags, ", "),
		predictedClass, interpSQL("raw[i]", "xss[i]", "yss[i]"), q.inWindow())
	nc := len(ref.Classes)
	s := cbpe.MultiSums{TP: make([]float64, nc), FP: make([]float64, nc), FN: make([]float64, nc), PN: make([]float64, nc), AUCNum: make([]float64, nc)}
	rs, err := conn.Query(ctx, sql)
	if err != nil {
		return s, fmt.Errorf("estimate multiclass performance of %s in %s: %w", model, w, err)
	}
	defer rs.Close()
	for rs.Next() {
		var (
			k                         uint32
			n, tp, fp, fn, pn, aucNum float64
		)
		if err := rs.Scan(&k, &n, &tp, &fp, &fn, &pn, &aucNum); err != nil {
			return s, fmt.Errorf("read multiclass estimate of %s: %w", model, err)
		}
		i := int(k) - 1
		if i < 0 || i >= nc {
			return s, fmt.Errorf("BUG: multiclass estimate of %s: class index %d of %d", model, k, nc)
		}
		s.N, s.TP[i], s.FP[i], s.FN[i], s.PN[i], s.AUCNum[i] = n, tp, fp, fn, pn, aucNum
		s.Correct += tp
	}
	if err := rs.Err(); err != nil {
		return s, fmt.Errorf("read multiclass estimate of %s: %w", model, err)
	}
	return s, nil
}

// RegressionReferenceRows returns the labelled rows of a regressor in w
// with a prediction, as dle.Fit fits on them: numeric features,
// prediction_value and actual_value. limit caps the rows as in
// ReferenceRows.
func RegressionReferenceRows(ctx context.Context, conn driver.Conn, model string, w Span, opts Options, limit int) ([]dle.Row, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Task != Regression {
		return nil, fmt.Errorf("regression reference rows of %s: loss estimation needs a regressor: %w", model, ErrInvalid)
	}
	q := querier{conn: conn, model: model, w: w, opts: opts}
	sql := fmt.Sprintf(`SELECT features_numeric, assumeNotNull(prediction_value), assumeNotNull(actual_value)
FROM (%s) WHERE actual_value IS NOT NULL AND prediction_value IS NOT NULL`, q.labelledWith(true))
	if limit > 0 {
		sql += " ORDER BY h LIMIT " + strconv.Itoa(limit)
	}
	rs, err := conn.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("regression reference rows of %s in %s: %w", model, w, err)
	}
	defer rs.Close()
	var out []dle.Row
	for rs.Next() {
		var r dle.Row
		if err := rs.Scan(&r.Features, &r.Prediction, &r.Truth); err != nil {
			return nil, fmt.Errorf("read regression reference rows of %s: %w", model, err)
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("read regression reference rows of %s: %w", model, err)
	}
	return out, nil
}

// linearSQL is dle.Model.Predict of f in SQL over an inference row.
func linearSQL(m dle.Model, f dle.Linear) string {
	var b strings.Builder
	b.WriteString(lit(f.Intercept))
	for j, t := range m.Terms {
		x := "prediction_value"
		if t.Power == 2 {
			x = "pow(prediction_value, 2)"
		}
		z := fmt.Sprintf("(%s - %s) / %s", x, lit(t.Mean), lit(t.Scale))
		if t.Feature != "" {
			k := chsql.String(t.Feature)
			z = fmt.Sprintf("if(mapContains(features_numeric, %[1]s), (features_numeric[%[1]s] - %[2]s) / %[3]s, 0)", k, lit(t.Mean), lit(t.Scale))
		}
		fmt.Fprintf(&b, " + %s * %s", lit(f.Coef[j]), z)
	}
	return b.String()
}

// EstimateRegression computes DLE's sums over the window's inferences with
// a prediction_value, in ClickHouse: the two linear models evaluated per
// row, clipped at 0, summed. Go receives one row.
func EstimateRegression(ctx context.Context, conn driver.Conn, model string, w Span, opts Options, m dle.Model) (dle.Sums, error) {
	if err := opts.Validate(); err != nil {
		return dle.Sums{}, err
	}
	if opts.Task != Regression {
		return dle.Sums{}, fmt.Errorf("estimate %s: loss estimation needs a regressor: %w", model, ErrInvalid)
	}
	q := querier{conn: conn, model: model, w: w, opts: opts}
	sql := fmt.Sprintf(`SELECT toFloat64(count()), sum(greatest(0, %s)), sum(greatest(0, %s))
FROM (SELECT features_numeric, assumeNotNull(prediction_value) AS prediction_value FROM inferences FINAL WHERE %s AND prediction_value IS NOT NULL)`,
		linearSQL(m, m.Abs), linearSQL(m, m.Sq), q.inWindow())
	var s dle.Sums
	if err := conn.QueryRow(ctx, sql).Scan(&s.N, &s.Abs, &s.Sq); err != nil {
		return dle.Sums{}, fmt.Errorf("estimate regression loss of %s in %s: %w", model, w, err)
	}
	return s, nil
}

// EstimatedLosses converts DLE's estimates to cbpe.Estimate, the form
// EstimatedMetrics stores.
func EstimatedLosses(es []dle.Estimate) []cbpe.Estimate {
	out := make([]cbpe.Estimate, len(es))
	for i, e := range es {
		out[i] = cbpe.Estimate{Name: e.Name, Value: e.Value, SamplingError: e.SamplingError, Lower: e.Lower, Upper: e.Upper}
	}
	return out
}

package monitor

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/driftwatch/driftwatch/internal/chsql"
)

// The queries behind the console's views (the distribution, the drift
// matrix, data quality, dead letters, training runs, versions and the
// overview). Each returns the SQL it ran, values inlined with chsql, so an
// API answer can show an analyst the query that gives the same numbers.

// Distribution returns a feature's bin or category counts of the newest
// window ending at or before end (the newest window when end is zero);
// ok is false when there is none. At most limit bins or categories are
// kept; truncated says more were stored.
func (s *Store) Distribution(ctx context.Context, model, feature string, end time.Time, limit int) (d Distribution, ok, truncated bool, sql string, err error) {
	cond := ""
	if !end.IsZero() {
		cond = " AND window_end <= " + chsql.Time(end)
	}
	sql = fmt.Sprintf(`SELECT window_start, window_end, reference_start, reference_end, reference_kind, kind, reference_rows, current_rows, reference_missing, current_missing,
       bin_lower, bin_upper, categories, is_new, reference_counts, current_counts, reference_min, reference_max, current_out_of_range, distinct_values, folded, computed_at
FROM drift_distributions FINAL
WHERE model_id = %s AND feature = %s%s
ORDER BY window_end DESC LIMIT 1`, chsql.String(model), chsql.String(feature), cond)
	rows, err := s.conn.Query(ctx, sql)
	if err != nil {
		return d, false, false, sql, fmt.Errorf("query drift_distributions: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return d, false, false, sql, fmt.Errorf("read drift_distributions: %w", err)
		}
		return d, false, false, sql, nil
	}
	var (
		lower, upper     []float64
		cats             []string
		isNew            []bool
		refC, curC       []uint64
		refMin, refMax   float64
		outOfRange, dist uint64
		folded           bool
	)
	if err := rows.Scan(&d.WindowStart, &d.WindowEnd, &d.ReferenceStart, &d.ReferenceEnd, &d.Reference, &d.Kind, &d.ReferenceRows, &d.CurrentRows,
		&d.ReferenceMissing, &d.CurrentMissing, &lower, &upper, &cats, &isNew, &refC, &curC, &refMin, &refMax, &outOfRange, &dist, &folded, &d.ComputedAt); err != nil {
		return d, false, false, sql, fmt.Errorf("read drift_distributions: %w", err)
	}
	if err := rows.Err(); err != nil {
		return d, false, false, sql, fmt.Errorf("read drift_distributions: %w", err)
	}
	d.ModelID, d.Feature = model, feature
	d.Bins, d.Categories = []Bin{}, []CategoryBar{}
	n := min(len(refC), len(curC))
	if n > limit {
		n, truncated = limit, true
	}
	switch d.Kind {
	case DistributionNumeric:
		d.ReferenceMin, d.ReferenceMax = nullable(refMin), nullable(refMax)
		d.CurrentOutOfRange = &outOfRange
		for i := 0; i < n && i < len(lower) && i < len(upper); i++ {
			d.Bins = append(d.Bins, Bin{Bin: i, Lower: nullable(lower[i]), Upper: nullable(upper[i]), Reference: refC[i], Current: curC[i]})
		}
	case DistributionCategorical:
		d.DistinctValues, d.Folded = &dist, &folded
		for i := 0; i < n && i < len(cats) && i < len(isNew); i++ {
			d.Categories = append(d.Categories, CategoryBar{Value: cats[i], Reference: refC[i], Current: curC[i], New: isNew[i]})
		}
	}
	return d, true, truncated, sql, nil
}

// DriftMatrix returns the rows of a model's last windows newest windows
// for the heatmap: each drift and prediction-drift feature's row of method
// and its verdict row, at most limit rows, by feature and window.
func (s *Store) DriftMatrix(ctx context.Context, model, method string, windows, limit int) ([]matrixRow, string, error) {
	sql := fmt.Sprintf(`SELECT feature, kind, window_start, window_end, method, value, p_value, threshold, drifted, sustained, status
FROM drift_results FINAL
WHERE model_id = %[1]s AND segment = '' AND method IN (%[2]s, 'verdict') AND kind != 'data_quality'
  AND window_end IN (SELECT DISTINCT window_end FROM drift_results WHERE model_id = %[1]s AND segment = '' AND method = 'verdict' ORDER BY window_end DESC LIMIT %[3]d)
ORDER BY feature, window_end, method
LIMIT %[4]d`, chsql.String(model), chsql.String(method), windows, limit)
	out, err := scanAll(ctx, s.conn, "drift_results", sql, func(rows driver.Rows, r *matrixRow) error {
		return rows.Scan(&r.feature, &r.kind, &r.start, &r.end, &r.method, &r.value, &r.pValue, &r.threshold, &r.drifted, &r.sustained, &r.status)
	})
	return out, sql, err
}

// matrixRow is one drift_results row of the drift matrix.
type matrixRow struct {
	feature, kind, method, status string
	start, end                    time.Time
	value, threshold              float64
	pValue                        *float64
	drifted, sustained            bool
}

// DataQuality returns the newest result of each of a model's
// data-quality checks (drift_results rows of kind data_quality), by
// feature and check.
func (s *Store) DataQuality(ctx context.Context, model string, limit int) ([]ResultRow, string, error) {
	sql := fmt.Sprintf(`SELECT %s
FROM drift_results FINAL
WHERE model_id = %s AND segment = '' AND kind = 'data_quality' AND method != 'verdict'
ORDER BY window_end DESC, feature, method
LIMIT 1 BY feature, method
LIMIT %d`, resultCols, chsql.String(model), limit)
	out, err := scanAll(ctx, s.conn, "drift_results", sql, scanResult)
	if err == nil {
		sort.SliceStable(out, func(i, j int) bool {
			if out[i].Feature != out[j].Feature {
				return out[i].Feature < out[j].Feature
			}
			return out[i].Method < out[j].Method
		})
	}
	return out, sql, err
}

// DeadLetters counts a model's dead letters per reason and source kind
// whose event time is in [from, to), the most first.
func (s *Store) DeadLetters(ctx context.Context, model string, from, to time.Time, limit int) ([]DeadLetterRow, string, error) {
	sql := fmt.Sprintf(`SELECT reason, kind, count() AS n, max(timestamp), max(received_at), argMax(error, received_at)
FROM dead_letters FINAL
WHERE model_id = %s AND timestamp >= %s AND timestamp < %s
GROUP BY reason, kind
ORDER BY n DESC, reason, kind
LIMIT %d`, chsql.String(model), chsql.Time(from), chsql.Time(to), limit)
	out, err := scanAll(ctx, s.conn, "dead_letters", sql, func(rows driver.Rows, d *DeadLetterRow) error {
		return rows.Scan(&d.Reason, &d.Kind, &d.Count, &d.NewestEvent, &d.NewestReceived, &d.LastError)
	})
	return out, sql, err
}

// TrainingRuns returns a model's training runs, newest first.
func (s *Store) TrainingRuns(ctx context.Context, model string, limit int) ([]TrainingRunRow, string, error) {
	sql := fmt.Sprintf(`SELECT run_id, version, parent_version, trigger_id, attempt, reason, trainer, status, decision, decision_reason, interrupted,
       metrics, champion_metrics, diff_lo, diff_hi, rows_train, rows_validation, rows_test, rows_eval,
       training_from, eval_from, eval_to, cpu_seconds, artifact_uri, started_at, finished_at, updated_at
FROM training_runs FINAL
WHERE model_id = %s
ORDER BY started_at DESC, run_id
LIMIT %d`, chsql.String(model), limit)
	out, err := scanAll(ctx, s.conn, "training_runs", sql, func(rows driver.Rows, r *TrainingRunRow) error {
		var m, cm map[string]float64
		var lo, hi float64
		if err := rows.Scan(&r.RunID, &r.Version, &r.ParentVersion, &r.TriggerID, &r.Attempt, &r.Reason, &r.Trainer, &r.Status, &r.Decision, &r.DecisionReason, &r.Interrupted,
			&m, &cm, &lo, &hi, &r.RowsTrain, &r.RowsValidation, &r.RowsTest, &r.RowsEval,
			&r.TrainingFrom, &r.EvalFrom, &r.EvalTo, &r.CPUSeconds, &r.ArtifactURI, &r.StartedAt, &r.FinishedAt, &r.UpdatedAt); err != nil {
			return err
		}
		r.Metrics, r.ChampionMetrics = finiteMap(m), finiteMap(cm)
		r.DiffLo, r.DiffHi = nullable(lo), nullable(hi)
		if math.IsNaN(r.CPUSeconds) || math.IsInf(r.CPUSeconds, 0) {
			r.CPUSeconds = 0
		}
		return nil
	})
	return out, sql, err
}

// Versions returns a model's registered versions, newest first.
func (s *Store) Versions(ctx context.Context, model string, limit int) ([]VersionRow, string, error) {
	sql := fmt.Sprintf(`SELECT version, status, metrics, champion_metrics, feature_importance, coefficient_importance, trainer, artifact_uri, trigger_id, run_id, parent_version, reason, created_at, updated_at
FROM models FINAL
WHERE model_id = %s
ORDER BY created_at DESC, version
LIMIT %d`, chsql.String(model), limit)
	out, err := scanAll(ctx, s.conn, "models", sql, func(rows driver.Rows, v *VersionRow) error {
		var m, cm, fi, ci map[string]float64
		if err := rows.Scan(&v.Version, &v.Status, &m, &cm, &fi, &ci, &v.Trainer, &v.ArtifactURI, &v.TriggerID, &v.RunID, &v.ParentVersion, &v.Reason, &v.CreatedAt, &v.UpdatedAt); err != nil {
			return err
		}
		v.Metrics, v.ChampionMetrics = finiteMap(m), finiteMap(cm)
		v.FeatureImportance, v.CoefficientImportance = finiteMap(fi), finiteMap(ci)
		return nil
	})
	return out, sql, err
}

// finiteMap is m with NaN and ±Inf as null (JSON has neither).
func finiteMap(m map[string]float64) map[string]*float64 {
	out := make(map[string]*float64, len(m))
	for k, v := range m {
		out[k] = nullable(v)
	}
	return out
}

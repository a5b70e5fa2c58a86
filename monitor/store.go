package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"math"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/driftwatch/driftwatch/internal/chsql"
)

// Store holds the queries the monitor's API reads its answers with; the
// HTTP handlers parse and validate requests, call a method and write the
// answer, and never build SQL.
type Store struct {
	conn driver.Conn
}

// Performance returns a model's newest performance computations, newest
// windows first; metric, when not empty, keeps only that metric.
func (s *Store) Performance(ctx context.Context, model, metric string, limit int) ([]PerformanceRow, error) {
	cond := ""
	if metric != "" {
		cond = " AND metric = " + chsql.String(metric)
	}
	return scanAll(ctx, s.conn, "performance_latest", fmt.Sprintf("SELECT window_start, window_end, metric, value, samples, label_coverage, computed_at, computations FROM performance_latest WHERE model_id = %s%s ORDER BY window_start DESC, metric LIMIT %d",
		chsql.String(model), cond, limit), func(rows driver.Rows, p *PerformanceRow) error {
		return rows.Scan(&p.WindowStart, &p.WindowEnd, &p.Metric, &p.Value, &p.Samples, &p.LabelCoverage, &p.ComputedAt, &p.Computations)
	})
}

// Correlations returns a model's business correlations of its newest
// window, every lag.
func (s *Store) Correlations(ctx context.Context, model string) ([]CorrelationRow, error) {
	return scanAll(ctx, s.conn, "business_correlations", fmt.Sprintf(`SELECT model_metric, business_metric, method, lag, value, p_value, samples, bucket_seconds, window_start, window_end
		FROM business_correlations FINAL WHERE model_id = %s AND window_end = (SELECT max(window_end) FROM business_correlations WHERE model_id = %s)
		ORDER BY business_metric, model_metric, method, lag`, chsql.String(model), chsql.String(model)), func(rows driver.Rows, c *CorrelationRow) error {
		return rows.Scan(&c.ModelMetric, &c.BusinessMetric, &c.Method, &c.Lag, &c.Value, &c.PValue, &c.Samples, &c.BucketSeconds, &c.WindowStart, &c.WindowEnd)
	})
}

// Models returns every model's newest verdict: its window and the drifted
// and sustained features.
func (s *Store) Models(ctx context.Context) ([]ModelSummary, error) {
	return scanAll(ctx, s.conn, "drift_results", `
		SELECT model_id, window_start, window_end,
		       groupArrayIf(feature, drifted), groupArrayIf(feature, sustained), max(samples)
		FROM drift_results FINAL
		WHERE method = 'verdict' AND (model_id, window_end) IN (SELECT model_id, max(window_end) FROM drift_results WHERE method = 'verdict' GROUP BY model_id)
		GROUP BY model_id, window_start, window_end ORDER BY model_id`, func(rows driver.Rows, s *ModelSummary) error {
		return rows.Scan(&s.ModelID, &s.LastWindowStart, &s.LastWindowEnd, &s.DriftedFeatures, &s.SustainedDrift, &s.Samples)
	})
}

// LatestResults returns a model's drift results of its newest window.
func (s *Store) LatestResults(ctx context.Context, model string) ([]ResultRow, error) {
	q := fmt.Sprintf("SELECT %s FROM drift_results FINAL WHERE model_id = %s AND window_end = (SELECT max(window_end) FROM drift_results WHERE model_id = %s) ORDER BY kind, feature, method",
		resultCols, chsql.String(model), chsql.String(model))
	return scanAll(ctx, s.conn, "drift_results", q, scanResult)
}

// History returns one feature's drift results, newest first; method, when
// not empty, keeps only that method.
func (s *Store) History(ctx context.Context, model, feature, method string, limit int) ([]ResultRow, error) {
	cond := ""
	if method != "" {
		cond = " AND method = " + chsql.String(method)
	}
	q := fmt.Sprintf("SELECT %s FROM drift_results FINAL WHERE model_id = %s AND feature = %s%s ORDER BY window_end DESC, method LIMIT %d",
		resultCols, chsql.String(model), chsql.String(feature), cond, limit)
	return scanAll(ctx, s.conn, "drift_results", q, scanResult)
}

// Triggers returns the newest retrain triggers, of one model when model is
// not empty.
func (s *Store) Triggers(ctx context.Context, model string, limit int) ([]TriggerRow, error) {
	cond := ""
	if model != "" {
		cond = " WHERE model_id = " + chsql.String(model)
	}
	return scanAll(ctx, s.conn, "retrain_triggers", fmt.Sprintf("SELECT trigger_id, model_id, model_version, reason, policy, window_start, window_end, evidence, created_at, dedup_key FROM retrain_triggers FINAL%s ORDER BY created_at DESC LIMIT %d", cond, limit),
		func(rows driver.Rows, t *TriggerRow) error {
			var ev string
			if err := rows.Scan(&t.TriggerID, &t.ModelID, &t.Version, &t.Reason, &t.Policy, &t.WindowStart, &t.WindowEnd, &ev, &t.CreatedAt, &t.DedupKey); err != nil {
				return err
			}
			t.Evidence = json.RawMessage(ev)
			if !json.Valid(t.Evidence) {
				t.Evidence = json.RawMessage("[]")
			}
			return nil
		})
}

const resultCols = "feature, kind, method, value, p_value, p_value_adjusted, threshold, drifted, sustained, status, samples, window_start, window_end"

// scanAll runs sql and scans every row with scan. Its errors name table:
// "query <table>: …" when the query fails, "read <table>: …" when a row
// or the rest of the stream does, so a cut-off result is an error, never a
// short 200.
func scanAll[T any](ctx context.Context, conn driver.Conn, table, sql string, scan func(driver.Rows, *T) error) ([]T, error) {
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", table, err)
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		var v T
		if err := scan(rows, &v); err != nil {
			return nil, fmt.Errorf("read %s: %w", table, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", table, err)
	}
	return out, nil
}

func scanResult(rows driver.Rows, r *ResultRow) error {
	var v float64
	if err := rows.Scan(&r.Feature, &r.Kind, &r.Method, &v, &r.PValue, &r.PValueAdjusted, &r.Threshold, &r.Drifted, &r.Sustained, &r.Status, &r.Samples, &r.WindowStart, &r.WindowEnd); err != nil {
		return err
	}
	if !math.IsNaN(v) && !math.IsInf(v, 0) {
		r.Value = &v
	}
	return nil
}

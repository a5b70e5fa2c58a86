package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/monitor/correlate"
	"github.com/driftwatch/driftwatch/monitor/policy"
	"github.com/driftwatch/driftwatch/monitor/window"
	"github.com/driftwatch/driftwatch/schemas"
)

// Store holds the monitor's queries: those the API reads its answers with
// and those of the evaluation loops (model discovery, the window's model
// version, drift results and their history, business metrics and
// correlations, the trigger gate's bookkeeping). The HTTP handlers and the
// loops call its methods and never build SQL; the aggregations of a window
// and of a performance window are the query packages window and perf.
type Store struct {
	conn driver.Conn
	// instance is the monitor instance the results it writes are
	// recorded as computed by (drift_results.instance_id).
	instance string
}

// Performance returns a model's newest performance computations, newest
// windows first; metric, when not empty, keeps only that metric; segment
// is the slice (key=value), empty for the population.
func (s *Store) Performance(ctx context.Context, model, metric, segment string, limit int) ([]PerformanceRow, string, error) {
	cond := " AND segment = " + chsql.String(segment)
	if metric != "" {
		cond += " AND metric = " + chsql.String(metric)
	}
	return scanSQL(ctx, s.conn, "performance_latest", fmt.Sprintf("SELECT window_start, window_end, metric, value, samples, label_coverage, computed_at, computations FROM performance_latest WHERE model_id = %s%s ORDER BY window_start DESC, metric LIMIT %d",
		chsql.String(model), cond, limit), func(rows driver.Rows, p *PerformanceRow) error {
		return rows.Scan(&p.WindowStart, &p.WindowEnd, &p.Metric, &p.Value, &p.Samples, &p.LabelCoverage, &p.ComputedAt, &p.Computations)
	})
}

// Correlations returns a model's business correlations of its newest
// window, every lag, at most limit rows.
func (s *Store) Correlations(ctx context.Context, model string, limit int) ([]CorrelationRow, string, error) {
	return scanSQL(ctx, s.conn, "business_correlations", fmt.Sprintf(`SELECT model_metric, business_metric, method, lag, value, p_value, samples, bucket_seconds, window_start, window_end
		FROM business_correlations FINAL WHERE model_id = %s AND window_end = (SELECT max(window_end) FROM business_correlations WHERE model_id = %s)
		ORDER BY business_metric, model_metric, method, lag LIMIT %d`, chsql.String(model), chsql.String(model), limit), func(rows driver.Rows, c *CorrelationRow) error {
		return rows.Scan(&c.ModelMetric, &c.BusinessMetric, &c.Method, &c.Lag, &c.Value, &c.PValue, &c.Samples, &c.BucketSeconds, &c.WindowStart, &c.WindowEnd)
	})
}

// LatestResults returns a model's drift results of its newest window, at
// most limit rows.
func (s *Store) LatestResults(ctx context.Context, model string, limit int) ([]ResultRow, string, error) {
	q := fmt.Sprintf("SELECT %s FROM drift_results FINAL WHERE model_id = %s AND segment = '' AND window_end = (SELECT max(window_end) FROM drift_results WHERE model_id = %s) ORDER BY kind, feature, method LIMIT %d",
		resultCols, chsql.String(model), chsql.String(model), limit)
	return scanSQL(ctx, s.conn, "drift_results", q, scanResult)
}

// History returns one feature's drift results, newest first; method, when
// not empty, keeps only that method.
func (s *Store) History(ctx context.Context, model, feature, method string, limit int) ([]ResultRow, string, error) {
	cond := ""
	if method != "" {
		cond = " AND method = " + chsql.String(method)
	}
	q := fmt.Sprintf("SELECT %s FROM drift_results FINAL WHERE model_id = %s AND segment = '' AND feature = %s%s ORDER BY window_end DESC, method LIMIT %d",
		resultCols, chsql.String(model), chsql.String(feature), cond, limit)
	return scanSQL(ctx, s.conn, "drift_results", q, scanResult)
}

// Triggers returns the newest retrain triggers, of one model when model is
// not empty.
func (s *Store) Triggers(ctx context.Context, model string, limit int) ([]TriggerRow, string, error) {
	cond := ""
	if model != "" {
		cond = " WHERE model_id = " + chsql.String(model)
	}
	return scanSQL(ctx, s.conn, "retrain_triggers", fmt.Sprintf("SELECT trigger_id, model_id, model_version, reason, policy, window_start, window_end, evidence, created_at, dedup_key FROM retrain_triggers FINAL%s ORDER BY created_at DESC LIMIT %d", cond, limit),
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

// ModelsSince returns the models with inferences at or after since, by
// model_id.
func (s *Store) ModelsSince(ctx context.Context, since time.Time) ([]string, error) {
	rows, err := s.conn.Query(ctx, "SELECT DISTINCT model_id FROM inferences WHERE timestamp >= "+chsql.Time(since)+" ORDER BY model_id")
	if err != nil {
		return nil, fmt.Errorf("discover models: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("discover models: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// FirstInference returns the timestamp of a model's first inference.
func (s *Store) FirstInference(ctx context.Context, model string) (time.Time, error) {
	var first time.Time
	if err := s.conn.QueryRow(ctx, "SELECT min(timestamp) FROM inferences WHERE model_id = "+chsql.String(model)).Scan(&first); err != nil {
		return time.Time{}, fmt.Errorf("first event of %s: %w", model, err)
	}
	return first, nil
}

// InferenceCount returns how many inferences (not shadow) of model are in
// span.
func (s *Store) InferenceCount(ctx context.Context, model string, span window.Span) (uint64, error) {
	var n uint64
	q := fmt.Sprintf("SELECT count() FROM inferences WHERE model_id = %s AND NOT shadow AND timestamp >= %s AND timestamp < %s",
		chsql.String(model), chsql.Time(span.Start), chsql.Time(span.End))
	if err := s.conn.QueryRow(ctx, q).Scan(&n); err != nil {
		return 0, fmt.Errorf("count the inferences of %s in %s: %w", model, span, err)
	}
	return n, nil
}

// ServedVersion returns the model_version of a model's newest inference in
// span: the version the window served.
func (s *Store) ServedVersion(ctx context.Context, model string, span window.Span) (string, error) {
	// Read in the table's order from the end (model_id, timestamp): the
	// newest rows only, however many the window holds (a second sort key
	// would sort the whole window: 0.6 s against 0.05 s at 10M rows). As
	// with argMax, rows tied on the newest timestamp give any of theirs.
	rows, err := s.conn.Query(ctx, fmt.Sprintf("SELECT model_version FROM inferences WHERE model_id = %s AND NOT shadow AND timestamp >= %s AND timestamp < %s ORDER BY timestamp DESC LIMIT 1",
		chsql.String(model), chsql.Time(span.Start), chsql.Time(span.End)))
	if err != nil {
		return "", fmt.Errorf("read the model version of %s in %s: %w", model, span, err)
	}
	defer rows.Close()
	var version string
	if rows.Next() {
		if err := rows.Scan(&version); err != nil {
			return "", fmt.Errorf("read the model version of %s in %s: %w", model, span, err)
		}
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("read the model version of %s in %s: %w", model, span, err)
	}
	return version, nil
}

// PredictionCounts returns how many of a model's inferences carry a score
// or a label (scored) and how many a value (valued).
func (s *Store) PredictionCounts(ctx context.Context, model string) (scored, valued uint64, err error) {
	err = s.conn.QueryRow(ctx, "SELECT countIf(prediction_score IS NOT NULL OR prediction_label IS NOT NULL), countIf(prediction_value IS NOT NULL) FROM inferences WHERE model_id = "+chsql.String(model)).Scan(&scored, &valued)
	return scored, valued, err
}

// WriteResults inserts a window's drift results into drift_results: rows,
// the methods' results, and verdicts, the per-feature verdict rows, of the
// population (segment "") or of one slice ("region=eu").
func (s *Store) WriteResults(ctx context.Context, snap *window.Snapshot, segment, referenceKind string, rows, verdicts []policy.Row, computedAt time.Time) error {
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO drift_results (model_id, model_version, window_start, window_end, reference_start, reference_end, reference_kind, feature, segment, kind, method, value, p_value, p_value_adjusted, threshold, drifted, sustained, status, note, samples, reference_samples, computed_at, instance_id)")
	if err != nil {
		return fmt.Errorf("prepare drift_results insert: %w", err)
	}
	defer batch.Abort() //nolint:errcheck // a no-op after Send
	add := func(r policy.Row) error {
		return batch.Append(snap.Model, "", snap.Current.Start, snap.Current.End, snap.Reference.Start, snap.Reference.End, referenceKind,
			r.Feature, segment, r.Kind, r.Method, r.Value, nullable(r.PValue), nullable(r.PValueAdjusted), finite(r.Threshold),
			r.Drifted, r.Sustained, r.Status, r.Note, uint64(max(r.Samples, 0)), uint64(max(r.ReferenceSamples, 0)), computedAt, s.instance)
	}
	for _, r := range rows {
		if err := add(r); err != nil {
			return fmt.Errorf("append drift result: %w", err)
		}
	}
	for _, r := range verdicts {
		if err := add(r); err != nil {
			return fmt.Errorf("append verdict: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d drift results of %s: %w", len(rows), snap.Model, err)
	}
	return nil
}

// DriftHistory returns, for each feature of the population, whether it
// was drifted in the windows ending at each of ends (oldest first), from
// the newest verdict rows; a window without a verdict row counts as not
// drifted.
func (s *Store) DriftHistory(ctx context.Context, model string, ends []time.Time) (policy.History, error) {
	hs, err := s.SegmentHistory(ctx, model, ends, false)
	if err != nil {
		return nil, err
	}
	if h := hs[""]; h != nil {
		return h, nil
	}
	return policy.History{}, nil
}

// SegmentHistory is DriftHistory per segment: of the population alone
// (key "") or, with slices, of every slice (keys "region=eu", …) and not
// the population.
func (s *Store) SegmentHistory(ctx context.Context, model string, ends []time.Time, slices bool) (map[string]policy.History, error) {
	out := map[string]policy.History{}
	if len(ends) == 0 {
		return out, nil
	}
	in := ""
	for i, e := range ends {
		if i > 0 {
			in += ", "
		}
		in += chsql.Time(e)
	}
	seg := "segment = ''"
	if slices {
		seg = "segment != ''"
	}
	q := fmt.Sprintf("SELECT segment, feature, window_end, argMax(drifted, computed_at) FROM drift_results WHERE model_id = %s AND %s AND method = %s AND window_end IN (%s) GROUP BY segment, feature, window_end",
		chsql.String(model), seg, chsql.String(MethodVerdict), in)
	rows, err := s.conn.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read drift history of %s: %w", model, err)
	}
	defer rows.Close()
	type key struct{ segment, feature string }
	got := map[key]map[int64]bool{}
	for rows.Next() {
		var (
			k   key
			end time.Time
			d   bool
		)
		if err := rows.Scan(&k.segment, &k.feature, &end, &d); err != nil {
			return nil, fmt.Errorf("read drift history of %s: %w", model, err)
		}
		if got[k] == nil {
			got[k] = map[int64]bool{}
		}
		got[k][end.UnixMilli()] = d
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read drift history of %s: %w", model, err)
	}
	for k, byEnd := range got {
		h := out[k.segment]
		if h == nil {
			h = policy.History{}
			out[k.segment] = h
		}
		for _, e := range ends {
			h[k.feature] = append(h[k.feature], byEnd[e.UnixMilli()]) // a missing window counts as not drifted
		}
	}
	return out, nil
}

// BusinessMetrics returns the names of at most limit business metrics
// recorded in span for a model or for every model (empty model_id), the most
// observed first.
func (s *Store) BusinessMetrics(ctx context.Context, model string, span window.Span, limit int) ([]string, error) {
	rows, err := s.conn.Query(ctx, fmt.Sprintf("SELECT metric FROM business_metrics WHERE model_id IN (%s, '') AND timestamp >= %s AND timestamp < %s GROUP BY metric ORDER BY count() DESC, metric LIMIT %d",
		chsql.String(model), chsql.Time(span.Start), chsql.Time(span.End), limit))
	if err != nil {
		return nil, fmt.Errorf("list business metrics of %s: %w", model, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		out = append(out, name)
	}
	return out, rows.Err()
}

// BusinessSeries returns the mean of a business metric (of the model or
// of every model) per bucket of span: n buckets of length bucket from
// span.Start, NaN where a bucket has no observation.
func (s *Store) BusinessSeries(ctx context.Context, model, metric string, span window.Span, bucket time.Duration, n int) ([]float64, error) {
	q := fmt.Sprintf("SELECT toDateTime64(toStartOfInterval(timestamp, INTERVAL %d SECOND), 3, 'UTC') AS b, avg(value) FROM business_metrics FINAL WHERE metric = %s AND model_id IN (%s, '') AND timestamp >= %s AND timestamp < %s GROUP BY b ORDER BY b",
		int(bucket/time.Second), chsql.String(metric), chsql.String(model), chsql.Time(span.Start), chsql.Time(span.End))
	series, err := s.bucketSeries(ctx, q, span.Start, bucket, n)
	if err != nil {
		return nil, fmt.Errorf("business series %s of %s: %w", metric, model, err)
	}
	return series, nil
}

// MeanPrediction returns a model's mean prediction (its score, or its
// value for a regressor) per bucket of span: n buckets of length bucket
// from span.Start, NaN where a bucket has no prediction.
func (s *Store) MeanPrediction(ctx context.Context, model string, span window.Span, bucket time.Duration, n int) ([]float64, error) {
	q := fmt.Sprintf("SELECT toDateTime64(toStartOfInterval(timestamp, INTERVAL %d SECOND), 3, 'UTC') AS b, avg(coalesce(prediction_score, prediction_value)) FROM inferences WHERE model_id = %s AND NOT shadow AND timestamp >= %s AND timestamp < %s AND coalesce(prediction_score, prediction_value) IS NOT NULL GROUP BY b ORDER BY b",
		int(bucket/time.Second), chsql.String(model), chsql.Time(span.Start), chsql.Time(span.End))
	series, err := s.bucketSeries(ctx, q, span.Start, bucket, n)
	if err != nil {
		return nil, fmt.Errorf("mean prediction of %s: %w", model, err)
	}
	return series, nil
}

// bucketSeries runs q, which returns (bucket start, value) rows, and lays
// them on the grid of n buckets from start, NaN where a bucket has no row.
func (s *Store) bucketSeries(ctx context.Context, q string, start time.Time, bucket time.Duration, n int) ([]float64, error) {
	rows, err := s.conn.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var at []time.Time
	var vals []float64
	for rows.Next() {
		var t time.Time
		var v float64
		if err := rows.Scan(&t, &v); err != nil {
			return nil, err
		}
		at, vals = append(at, t), append(vals, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return correlate.Align(start, bucket, n, at, vals)
}

// WriteCorrelations inserts a model's correlations, computed at computedAt,
// into business_correlations; no rows is no insert.
func (s *Store) WriteCorrelations(ctx context.Context, model string, computedAt time.Time, rows []CorrelationRow) error {
	if len(rows) == 0 {
		return nil
	}
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO business_correlations (model_id, model_metric, business_metric, lag, method, value, p_value, samples, bucket_seconds, window_start, window_end, computed_at)")
	if err != nil {
		return fmt.Errorf("prepare business_correlations insert: %w", err)
	}
	defer batch.Abort() //nolint:errcheck // a no-op after Send
	for _, c := range rows {
		if err := batch.Append(model, c.ModelMetric, c.BusinessMetric, c.Lag, c.Method, c.Value, c.PValue, c.Samples, c.BucketSeconds, c.WindowStart, c.WindowEnd, computedAt); err != nil {
			return fmt.Errorf("append correlation: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert business correlations of %s: %w", model, err)
	}
	return nil
}

// HasTrigger reports whether retrain_triggers holds a trigger of model with
// the dedup key.
func (s *Store) HasTrigger(ctx context.Context, model, dedupKey string) (bool, error) {
	var n uint64
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM retrain_triggers WHERE model_id = "+chsql.String(model)+" AND dedup_key = "+chsql.String(dedupKey)).Scan(&n); err != nil {
		return false, fmt.Errorf("look up trigger %s: %w", dedupKey, err)
	}
	return n > 0, nil
}

// TriggerHistory returns when model's newest trigger was created (the zero
// Unix time when it has none) and how many of its triggers were created at
// or after since.
func (s *Store) TriggerHistory(ctx context.Context, model string, since time.Time) (last time.Time, n uint64, err error) {
	q := fmt.Sprintf("SELECT max(created_at), countIf(created_at >= %s) FROM retrain_triggers WHERE model_id = %s",
		chsql.Time(since), chsql.String(model))
	if err := s.conn.QueryRow(ctx, q).Scan(&last, &n); err != nil {
		return time.Time{}, 0, fmt.Errorf("read trigger history of %s: %w", model, err)
	}
	return last, n, nil
}

// RecordTrigger inserts a published trigger into retrain_triggers, with its
// evidence already encoded as JSON.
func (s *Store) RecordTrigger(ctx context.Context, t *schemas.RetrainTrigger, evidence string) error {
	if err := s.conn.Exec(ctx, "INSERT INTO retrain_triggers (trigger_id, dedup_key, model_id, model_version, reason, policy, window_start, window_end, reference_start, reference_end, evidence, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		t.TriggerID, t.DedupKey, t.ModelID, t.ModelVersion, string(t.Reason), t.Policy, t.Window.From, t.Window.To, t.Reference.From, t.Reference.To, evidence, t.CreatedAt); err != nil {
		return fmt.Errorf("record trigger for %s: %w", t.ModelID, err)
	}
	return nil
}

const resultCols = "feature, kind, method, value, p_value, p_value_adjusted, threshold, drifted, sustained, status, samples, window_start, window_end, reference_kind, reference_start, reference_end, note"

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

// scanSQL is scanAll that returns sql too, for the API's "sql".
func scanSQL[T any](ctx context.Context, conn driver.Conn, table, sql string, scan func(driver.Rows, *T) error) ([]T, string, error) {
	out, err := scanAll(ctx, conn, table, sql, scan)
	return out, sql, err
}

func scanResult(rows driver.Rows, r *ResultRow) error {
	var v float64
	if err := rows.Scan(&r.Feature, &r.Kind, &r.Method, &v, &r.PValue, &r.PValueAdjusted, &r.Threshold, &r.Drifted, &r.Sustained, &r.Status, &r.Samples, &r.WindowStart, &r.WindowEnd, &r.Reference, &r.ReferenceStart, &r.ReferenceEnd, &r.Note); err != nil {
		return err
	}
	if !math.IsNaN(v) && !math.IsInf(v, 0) {
		r.Value = &v
	}
	return nil
}

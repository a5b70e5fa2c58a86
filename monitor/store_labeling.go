package monitor

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/monitor/labeling"
	"github.com/driftwatch/driftwatch/monitor/policy"
)

// maxFocusFeatures caps the drifted features (and maxFocusSlices the
// drifted slices) whose rows the labeling queue over-weights, so that the
// pool's expression stays bounded.
const (
	maxFocusFeatures = 10
	maxFocusSlices   = 20
)

// labelPool is one labeling request's candidates: a model's inferences in
// [from, to) without an outcome, not shadow, not handed out since since.
type labelPool struct {
	model           string
	from, to, since time.Time
	// seed seeds the draws' hashes (the batch id).
	seed string
	// uncertainty, reasons and weight are the labeling package's SQL
	// expressions.
	uncertainty, reasons string
	weight               func(u, reasons string) string
}

// labelColumns are the columns of a pool's rows a draw reads, in
// scanLabelRow's order.
const labelColumns = `prediction_id, event_id, model_version, timestamp, features_numeric, features_categorical, segment,
	prediction_label, prediction_score, prediction_value, prediction_probabilities, u, reasons, w, h`

// sql is the pool as a subquery, one row per prediction_id, with the
// inference's columns and u (uncertainty), reasons, w (weight) and h (the
// seeded hash that orders the uniform draw). ClickHouse reads only the
// columns a query over it uses.
func (p labelPool) sql() string {
	m := chsql.String(p.model)
	return fmt.Sprintf(`SELECT *, %[7]s AS w FROM (
	SELECT prediction_id, event_id, model_version, timestamp, features_numeric, features_categorical, segment,
		prediction_label, prediction_score, prediction_value, prediction_probabilities,
		%[5]s AS u, %[6]s AS reasons, sipHash64(prediction_id, %[8]s) AS h
	FROM inferences FINAL
	WHERE model_id = %[1]s AND NOT shadow AND timestamp >= %[2]s AND timestamp < %[3]s
		AND prediction_id NOT IN (SELECT prediction_id FROM outcomes WHERE model_id = %[1]s AND timestamp >= %[2]s)
		AND prediction_id NOT IN (SELECT prediction_id FROM labeling_queue WHERE model_id = %[1]s AND handed_out_at >= %[4]s)
	LIMIT 1 BY prediction_id)`, m, chsql.Time(p.from), chsql.Time(p.to), chsql.Time(p.since), p.uncertainty, p.reasons, p.weight("u", "reasons"), chsql.String(p.seed))
}

// LabelingFocus reads what drifted in a model's newest evaluated window:
// the slices with a drifted verdict (of the newest window with slices) and
// the over-represented bins or categories of the population's drifted
// features (from drift_distributions of that window).
func (s *Store) LabelingFocus(ctx context.Context, model string) (labeling.Focus, []string, error) {
	var f labeling.Focus
	m := chsql.String(model)
	q1 := fmt.Sprintf(`SELECT DISTINCT segment FROM drift_results FINAL
WHERE model_id = %[1]s AND segment != '' AND method = %[2]s AND drifted AND kind IN (%[3]s, %[4]s)
	AND window_end = (SELECT max(window_end) FROM drift_results WHERE model_id = %[1]s AND segment != '')
ORDER BY segment LIMIT %[5]d`, m, chsql.String(MethodVerdict), chsql.String(policy.KindDrift), chsql.String(policy.KindPredictionDrift), maxFocusSlices)
	segs, err := scanAll(ctx, s.conn, "drift_results", q1, func(rows driver.Rows, seg *string) error { return rows.Scan(seg) })
	if err != nil {
		return f, nil, fmt.Errorf("drifted slices of %s: %w", model, err)
	}
	for _, seg := range segs {
		if sl, ok := labeling.ParseSlice(seg); ok {
			f.Slices = append(f.Slices, sl)
		}
	}
	q2 := fmt.Sprintf(`SELECT feature, kind, bin_lower, bin_upper, categories, reference_counts, current_counts FROM drift_distributions FINAL
WHERE model_id = %[1]s AND NOT startsWith(feature, '__')
	AND (window_start, window_end, feature) IN (
		SELECT window_start, window_end, feature FROM drift_results FINAL
		WHERE model_id = %[1]s AND segment = '' AND kind = %[2]s AND method = %[3]s AND drifted
			AND window_end = (SELECT max(window_end) FROM drift_results WHERE model_id = %[1]s AND segment = ''))
ORDER BY feature LIMIT %[4]d`, m, chsql.String(policy.KindDrift), chsql.String(MethodVerdict), maxFocusFeatures)
	type dist struct {
		feature, kind string
		lower, upper  []float64
		cats          []string
		ref, cur      []uint64
	}
	ds, err := scanAll(ctx, s.conn, "drift_distributions", q2, func(rows driver.Rows, d *dist) error {
		return rows.Scan(&d.feature, &d.kind, &d.lower, &d.upper, &d.cats, &d.ref, &d.cur)
	})
	if err != nil {
		return f, nil, fmt.Errorf("drifted features of %s: %w", model, err)
	}
	for _, d := range ds {
		if d.kind == "numeric" {
			f.Ranges = append(f.Ranges, labeling.Overrepresented(d.feature, d.lower, d.upper, d.ref, d.cur)...)
		} else {
			f.Categories = append(f.Categories, labeling.OverrepresentedCategories(d.feature, d.cats, d.ref, d.cur)...)
		}
	}
	return f, []string{q1, q2}, nil
}

// LabelingPoolSize counts a pool's rows.
func (s *Store) LabelingPoolSize(ctx context.Context, p labelPool) (rows uint64, sql string, err error) {
	sql = "SELECT count() FROM (" + p.sql() + ")"
	if err := s.conn.QueryRow(ctx, sql).Scan(&rows); err != nil {
		return 0, sql, fmt.Errorf("count the labeling pool of %s: %w", p.model, err)
	}
	return rows, sql, nil
}

// labelPick is a row drawn from a pool: the inference, its uncertainty,
// reasons and weight, its hash and its key in the draw.
type labelPick struct {
	LabelingRow
	hash uint64
	key  float64
}

// LabelingDraw draws n rows of a pool: uniformly (the smallest hashes h),
// or, when weighted, without replacement with probability proportional to
// w (the smallest Efraimidis–Spirakis keys −ln(U)/w, U uniform from a
// second hash) among the rows whose h is above after: the rows a uniform
// draw took are those with h up to its largest, so no list of them is
// sent back. A weighted draw reads one row more than n, whose key is the
// draw's threshold τ (+Inf when there is none: the pool held at most n
// rows).
func (s *Store) LabelingDraw(ctx context.Context, p labelPool, n int, weighted bool, after *uint64) (picks []labelPick, threshold float64, sql string, err error) {
	threshold = math.Inf(1)
	if n <= 0 {
		return nil, threshold, "", nil
	}
	cond, key, limit := "", "toFloat64(h)", n
	if after != nil {
		cond = fmt.Sprintf(" WHERE h > %d", *after)
	}
	if weighted {
		key = fmt.Sprintf("-log((sipHash64(prediction_id, %s) + 0.5) / 18446744073709551616.0) / w", chsql.String(p.seed+"/targeted"))
		limit = n + 1
	}
	sql = fmt.Sprintf("SELECT %s, %s AS k FROM (%s)%s ORDER BY k, prediction_id LIMIT %d", labelColumns, key, p.sql(), cond, limit)
	picks, err = scanAll(ctx, s.conn, "inferences", sql, func(rows driver.Rows, r *labelPick) error {
		var num map[string]float64
		var cat map[string]string
		if err := rows.Scan(&r.PredictionID, &r.EventID, &r.ModelVersion, &r.Timestamp, &num, &cat, &r.Segment,
			&r.PredictionLabel, &r.PredictionScore, &r.PredictionValue, &r.PredictionProbabilities,
			&r.Uncertainty, &r.Reasons, &r.Weight, &r.hash, &r.key); err != nil {
			return err
		}
		r.ModelID = p.model
		r.Features = make(map[string]any, len(num)+len(cat))
		for k, v := range num {
			r.Features[k] = v
		}
		for k, v := range cat {
			r.Features[k] = v
		}
		return nil
	})
	if err != nil {
		return nil, threshold, sql, fmt.Errorf("draw from the labeling pool of %s: %w", p.model, err)
	}
	if len(picks) > n {
		threshold, picks = picks[n].key, picks[:n]
	}
	return picks, threshold, sql, nil
}

// RecordHandedOut writes a batch's rows to labeling_queue.
func (s *Store) RecordHandedOut(ctx context.Context, b *LabelingBatch) error {
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO labeling_queue (model_id, prediction_id, event_id, inference_timestamp, batch_id, assignee, strategy, stratum, uncertainty, weight, inclusion_probability, pool_rows, random_share, reasons, handed_out_at)")
	if err != nil {
		return fmt.Errorf("record the rows handed out for %s: %w", b.ModelID, err)
	}
	defer batch.Abort()
	for _, r := range b.Rows {
		if err := batch.Append(b.ModelID, r.PredictionID, r.EventID, r.Timestamp, b.BatchID, b.Assignee, string(b.Strategy), string(r.Stratum),
			r.Uncertainty, r.Weight, r.InclusionProbability, b.PoolRows, b.RandomShare, r.Reasons, b.HandedOutAt); err != nil {
			return fmt.Errorf("record the rows handed out for %s: %w", b.ModelID, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("record the rows handed out for %s: %w", b.ModelID, err)
	}
	return nil
}

package monitor

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/monitor/policy"
	"github.com/driftwatch/driftwatch/monitor/window"
)

// MethodVerdict is the method column of the per-feature verdict row: value
// 1 when every decision method flagged the feature, 0 otherwise; drifted
// and sustained as decided. History is read back from these rows.
const MethodVerdict = "verdict"

func nullable(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

func finite(x float64) float64 {
	if math.IsInf(x, 1) {
		return math.MaxFloat64
	}
	return x
}

// writeResults inserts a window's rows into drift_results.
func writeResults(ctx context.Context, conn driver.Conn, snap *window.Snapshot, v policy.Verdict, computedAt time.Time) error {
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO drift_results (model_id, model_version, window_start, window_end, reference_start, reference_end, feature, kind, method, value, p_value, p_value_adjusted, threshold, drifted, sustained, status, samples, reference_samples, computed_at)")
	if err != nil {
		return fmt.Errorf("prepare drift_results insert: %w", err)
	}
	defer batch.Abort() //nolint:errcheck // a no-op after Send
	add := func(r policy.Row) error {
		return batch.Append(snap.Model, "", snap.Current.Start, snap.Current.End, snap.Reference.Start, snap.Reference.End,
			r.Feature, r.Kind, r.Method, r.Value, nullable(r.PValue), nullable(r.PValueAdjusted), finite(r.Threshold),
			r.Drifted, r.Sustained, r.Status, uint64(max(r.Samples, 0)), uint64(max(r.ReferenceSamples, 0)), computedAt)
	}
	for _, r := range v.Rows {
		if err := add(r); err != nil {
			return fmt.Errorf("append drift result: %w", err)
		}
	}
	for _, f := range verdictFeatures(v) {
		r := policy.Row{Feature: f.name, Kind: f.kind, Method: MethodVerdict, PValue: math.NaN(), PValueAdjusted: math.NaN(), Threshold: 1,
			Status: f.status, Samples: f.samples, ReferenceSamples: f.ref}
		if f.drifted {
			r.Value, r.Drifted = 1, true
		}
		r.Sustained = f.sustained
		if err := add(r); err != nil {
			return fmt.Errorf("append verdict: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d drift results of %s: %w", len(v.Rows), snap.Model, err)
	}
	return nil
}

type featureVerdict struct {
	name, kind, status string
	drifted, sustained bool
	samples, ref       int64
}

func verdictFeatures(v policy.Verdict) []featureVerdict {
	drifted := map[string]bool{}
	for _, f := range v.Drifted {
		drifted[f] = true
	}
	sustained := map[string]bool{}
	for _, f := range v.Sustained {
		sustained[f] = true
	}
	insufficient := map[string]bool{}
	for _, f := range v.Insufficient {
		insufficient[f] = true
	}
	seen := map[string]bool{}
	var out []featureVerdict
	for _, r := range v.Rows {
		if r.Kind == policy.KindDataQuality || seen[r.Feature] {
			continue
		}
		seen[r.Feature] = true
		fv := featureVerdict{name: r.Feature, kind: r.Kind, status: policy.StatusOK, drifted: drifted[r.Feature], sustained: sustained[r.Feature], samples: r.Samples, ref: r.ReferenceSamples}
		switch {
		case insufficient[r.Feature]:
			fv.status = policy.StatusInsufficient
		case fv.drifted:
			fv.status = policy.StatusDrifted
		}
		out = append(out, fv)
	}
	return out
}

// history reads, for each feature, whether it was drifted in the windows
// ending at each of ends (oldest first), from the newest verdict rows.
func history(ctx context.Context, conn driver.Conn, model string, ends []time.Time) (policy.History, error) {
	h := policy.History{}
	if len(ends) == 0 {
		return h, nil
	}
	in := ""
	for i, e := range ends {
		if i > 0 {
			in += ", "
		}
		in += chsql.Time(e)
	}
	q := fmt.Sprintf("SELECT feature, window_end, argMax(drifted, computed_at) FROM drift_results WHERE model_id = %s AND method = %s AND window_end IN (%s) GROUP BY feature, window_end",
		chsql.String(model), chsql.String(MethodVerdict), in)
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read drift history of %s: %w", model, err)
	}
	defer rows.Close()
	got := map[string]map[int64]bool{}
	for rows.Next() {
		var (
			f   string
			end time.Time
			d   bool
		)
		if err := rows.Scan(&f, &end, &d); err != nil {
			return nil, fmt.Errorf("read drift history of %s: %w", model, err)
		}
		if got[f] == nil {
			got[f] = map[int64]bool{}
		}
		got[f][end.UnixMilli()] = d
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read drift history of %s: %w", model, err)
	}
	for f, byEnd := range got {
		for _, e := range ends {
			h[f] = append(h[f], byEnd[e.UnixMilli()]) // a missing window counts as not drifted
		}
	}
	return h, nil
}

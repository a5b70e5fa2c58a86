package monitor

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/driftwatch/driftwatch/monitor/window"
)

// Distribution kinds (drift_distributions.kind and the API's "kind").
const (
	DistributionNumeric     = "numeric"
	DistributionCategorical = "categorical"
)

// distributionRow is one drift_distributions row: a feature's bin or
// category counts of one window and its reference, the arrays aligned.
type distributionRow struct {
	feature, kind           string
	refMissing, curMissing  uint64
	lower, upper            []float64
	categories              []string
	isNew                   []bool
	refCounts, curCounts    []uint64
	refMin, refMax          float64
	curOutOfRange, distinct uint64
	folded                  bool
}

// distributionRows turns a snapshot's aggregates into drift_distributions
// rows: every numeric feature with its bins (the interior edges, with −∞
// and +∞ outside them) and every categorical one with its categories
// (already at most MaxCategories, the rest in __other).
func distributionRows(snap *window.Snapshot) []distributionRow {
	missing := func(rows, n int64) uint64 { return uint64(max(rows-n, 0)) }
	out := make([]distributionRow, 0, len(snap.Numeric)+len(snap.Categorical))
	for _, n := range snap.Numeric {
		r := distributionRow{feature: n.Feature, kind: DistributionNumeric,
			refMissing: missing(snap.RefRows, n.RefN), curMissing: missing(snap.CurRows, n.CurN),
			refMin: n.RefMin, refMax: n.RefMax, curOutOfRange: uint64(max(n.CurOutOfRange, 0)),
			lower: []float64{}, upper: []float64{}, categories: []string{}, isNew: []bool{}, refCounts: []uint64{}, curCounts: []uint64{}}
		if len(n.RefBins) == len(n.Edges)+1 && len(n.CurBins) == len(n.RefBins) {
			for i := range n.RefBins {
				lo, hi := math.Inf(-1), math.Inf(1)
				if i > 0 {
					lo = n.Edges[i-1]
				}
				if i < len(n.Edges) {
					hi = n.Edges[i]
				}
				r.lower, r.upper = append(r.lower, lo), append(r.upper, hi)
				r.refCounts = append(r.refCounts, uint64(max(n.RefBins[i], 0)))
				r.curCounts = append(r.curCounts, uint64(max(n.CurBins[i], 0)))
			}
		}
		out = append(out, r)
	}
	for _, c := range snap.Categorical {
		r := distributionRow{feature: c.Feature, kind: DistributionCategorical,
			refMissing: missing(snap.RefRows, c.RefN), curMissing: missing(snap.CurRows, c.CurN),
			refMin: math.NaN(), refMax: math.NaN(), distinct: uint64(max(c.Distinct, 0)), folded: c.Folded,
			lower: []float64{}, upper: []float64{}, categories: []string{}, isNew: []bool{}, refCounts: []uint64{}, curCounts: []uint64{}}
		for i, v := range c.Categories {
			ref, cur := c.RefCounts[i], c.CurCounts[i]
			r.categories = append(r.categories, v)
			r.isNew = append(r.isNew, v != window.OtherCategory && ref == 0 && cur > 0)
			r.refCounts = append(r.refCounts, uint64(max(ref, 0)))
			r.curCounts = append(r.curCounts, uint64(max(cur, 0)))
		}
		out = append(out, r)
	}
	return out
}

// WriteDistributions inserts a window's bin and category counts into
// drift_distributions, with the window columns and computed_at of its
// drift_results rows; a snapshot without features is no insert.
func (s *Store) WriteDistributions(ctx context.Context, snap *window.Snapshot, referenceKind string, computedAt time.Time) error {
	rows := distributionRows(snap)
	if len(rows) == 0 {
		return nil
	}
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO drift_distributions (model_id, window_start, window_end, reference_start, reference_end, reference_kind, feature, kind, reference_rows, current_rows, reference_missing, current_missing, bin_lower, bin_upper, categories, is_new, reference_counts, current_counts, reference_min, reference_max, current_out_of_range, distinct_values, folded, computed_at)")
	if err != nil {
		return fmt.Errorf("prepare drift_distributions insert: %w", err)
	}
	defer batch.Abort() //nolint:errcheck // a no-op after Send
	for _, r := range rows {
		if err := batch.Append(snap.Model, snap.Current.Start, snap.Current.End, snap.Reference.Start, snap.Reference.End, referenceKind,
			r.feature, r.kind, uint64(max(snap.RefRows, 0)), uint64(max(snap.CurRows, 0)), r.refMissing, r.curMissing,
			r.lower, r.upper, r.categories, r.isNew, r.refCounts, r.curCounts, r.refMin, r.refMax, r.curOutOfRange, r.distinct, r.folded, computedAt); err != nil {
			return fmt.Errorf("append distribution of %s: %w", r.feature, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d distributions of %s: %w", len(rows), snap.Model, err)
	}
	return nil
}

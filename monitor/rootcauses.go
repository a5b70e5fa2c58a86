package monitor

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/monitor/policy"
	"github.com/driftwatch/driftwatch/monitor/rootcause"
	"github.com/driftwatch/driftwatch/monitor/window"
	"github.com/driftwatch/driftwatch/schemas"
)

// RootCause ranks the slices of one segment key by their contribution to
// a drifted feature's PSI in the population (package rootcause).
type RootCause struct {
	Feature string `json:"feature"`
	// Key is the segment key or segment_by feature whose slices are
	// ranked.
	Key string `json:"segment_key"`
	// PSI is the population's, the sum of Contributions' totals.
	PSI           float64                  `json:"population_psi"`
	Contributions []rootcause.Contribution `json:"contributions"`
}

// rootCauses decomposes the PSI of every feature drifted in the population
// (v) over each key's slices (segs).
func rootCauses(snap *window.Snapshot, v policy.Verdict, segs []SegmentResult) []RootCause {
	if len(segs) == 0 || len(v.Drifted) == 0 {
		return nil
	}
	byKey := map[string][]SegmentResult{}
	var keys []string
	for _, s := range segs {
		k, _, _ := strings.Cut(s.Name, "=")
		if byKey[k] == nil {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], s)
	}
	slices.Sort(keys)
	counts := func(s *window.Snapshot, f string) (ref, cur []int64, ok bool) {
		for _, n := range s.Numeric {
			if n.Feature == f {
				return n.RefBins, n.CurBins, true
			}
		}
		for _, c := range s.Categorical {
			if c.Feature == f && !c.Folded {
				return c.RefCounts, c.CurCounts, true
			}
		}
		return nil, nil, false
	}
	var out []RootCause
	for _, f := range v.Drifted {
		pr, pc, ok := counts(snap, f)
		if !ok {
			continue
		}
		for _, k := range keys {
			var sl []rootcause.Slice
			for _, s := range byKey[k] {
				if r, c, ok := counts(s.Snapshot, f); ok {
					sl = append(sl, rootcause.Slice{Name: s.Name, Ref: r, Cur: c})
				}
			}
			psi, cs, err := rootcause.Decompose(pr, pc, sl)
			if err != nil || math.IsNaN(psi) {
				continue
			}
			out = append(out, RootCause{Feature: f, Key: k, PSI: psi, Contributions: cs})
		}
	}
	return out
}

// rootCauseEvidence is the top slice of each sustained feature's root
// causes, as trigger evidence (check root_cause, method mix or within).
func rootCauseEvidence(rcs []RootCause, sustained []string, segs []SegmentResult) []schemas.Evidence {
	rows := map[string]int64{}
	for _, s := range segs {
		rows[s.Name] = s.Snapshot.CurRows
	}
	var ev []schemas.Evidence
	for _, rc := range rcs {
		if !slices.Contains(sustained, rc.Feature) || len(rc.Contributions) == 0 {
			continue
		}
		top := rc.Contributions[0]
		ev = append(ev, schemas.Evidence{Check: "root_cause", Feature: rc.Feature, Segment: top.Segment, Method: top.Kind(),
			Value: top.Total, Threshold: rc.PSI, Samples: rows[top.Segment]})
	}
	return ev
}

// WriteRootCauses inserts a window's root causes into root_causes.
func (s *Store) WriteRootCauses(ctx context.Context, snap *window.Snapshot, rcs []RootCause, computedAt time.Time) error {
	if len(rcs) == 0 {
		return nil
	}
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO root_causes (model_id, window_start, window_end, feature, segment_key, segment, rank, kind, mix, within, total, reference_share, current_share, population_psi, computed_at)")
	if err != nil {
		return fmt.Errorf("prepare root_causes insert: %w", err)
	}
	defer batch.Abort() //nolint:errcheck // a no-op after Send
	for _, rc := range rcs {
		for i, c := range rc.Contributions {
			if err := batch.Append(snap.Model, snap.Current.Start, snap.Current.End, rc.Feature, rc.Key, c.Segment, uint16(i+1), c.Kind(),
				c.Mix, c.Within, c.Total, c.RefShare, c.CurShare, rc.PSI, computedAt); err != nil {
				return fmt.Errorf("append root cause: %w", err)
			}
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert root causes of %s: %w", snap.Model, err)
	}
	return nil
}

// AnyPerformanceMetric, as the root-cause route's metric, reads the
// newest performance drop's root causes whatever metric they decompose
// (accuracy for a classifier, mae or rmse for a regressor).
const AnyPerformanceMetric = "*"

// RootCauseRow is one slice's contribution in the API.
type RootCauseRow struct {
	WindowStart    time.Time `json:"window_start"`
	WindowEnd      time.Time `json:"window_end"`
	Feature        string    `json:"feature"`
	Metric         string    `json:"metric"`
	SegmentKey     string    `json:"segment_key"`
	Segment        string    `json:"segment"`
	Rank           uint16    `json:"rank"`
	Kind           string    `json:"kind"`
	Mix            float64   `json:"mix"`
	Within         float64   `json:"within"`
	Total          float64   `json:"total"`
	ReferenceShare float64   `json:"reference_share"`
	CurrentShare   float64   `json:"current_share"`
	PopulationPSI  float64   `json:"population_psi"`
}

// RootCauses returns the root causes of a model's newest window with any,
// by feature, key and rank; feature, when not empty, keeps only it;
// metric empty reads the drift (PSI) root causes, a performance metric
// those of the newest performance drop decomposed in it, and "*" those of
// the newest performance drop whatever metric it decomposed.
func (s *Store) RootCauses(ctx context.Context, model, feature, metric string, limit int) ([]RootCauseRow, string, error) {
	cond := " AND metric = " + chsql.String(metric)
	if metric == AnyPerformanceMetric {
		cond = " AND metric != ''"
	}
	if feature != "" {
		cond += " AND feature = " + chsql.String(feature)
	}
	q := fmt.Sprintf(`SELECT window_start, window_end, feature, metric, segment_key, segment, rank, kind, mix, within, total, reference_share, current_share, population_psi
FROM root_causes FINAL
WHERE model_id = %[1]s%[2]s AND window_end = (SELECT max(window_end) FROM root_causes WHERE model_id = %[1]s%[2]s)
ORDER BY feature, segment_key, rank LIMIT %[3]d`, chsql.String(model), cond, limit)
	return scanSQL(ctx, s.conn, "root_causes", q, func(rows driver.Rows, r *RootCauseRow) error {
		return rows.Scan(&r.WindowStart, &r.WindowEnd, &r.Feature, &r.Metric, &r.SegmentKey, &r.Segment, &r.Rank, &r.Kind, &r.Mix, &r.Within, &r.Total, &r.ReferenceShare, &r.CurrentShare, &r.PopulationPSI)
	})
}

// SegmentFlag is one slice's verdict on one feature in a window: the
// per-slice drift flags (drift_results rows with a segment, method
// verdict).
type SegmentFlag struct {
	WindowEnd time.Time `json:"window_end"`
	Segment   string    `json:"segment"`
	Feature   string    `json:"feature"`
	Kind      string    `json:"kind"`
	Drifted   bool      `json:"drifted"`
	Sustained bool      `json:"sustained"`
	Status    string    `json:"status"`
	Samples   uint64    `json:"samples"`
	Note      string    `json:"note,omitempty"`
}

// SegmentFlags returns the slices' verdict rows of a model's newest window
// with slices, drifted first, then by slice and feature.
func (s *Store) SegmentFlags(ctx context.Context, model string, limit int) ([]SegmentFlag, string, error) {
	q := fmt.Sprintf(`SELECT window_end, segment, feature, kind, drifted, sustained, status, samples, note
FROM drift_results FINAL
WHERE model_id = %[1]s AND segment != '' AND method = %[2]s AND window_end = (SELECT max(window_end) FROM drift_results WHERE model_id = %[1]s AND segment != '')
ORDER BY drifted DESC, segment, feature LIMIT %[3]d`, chsql.String(model), chsql.String(MethodVerdict), limit)
	return scanSQL(ctx, s.conn, "drift_results", q, func(rows driver.Rows, r *SegmentFlag) error {
		return rows.Scan(&r.WindowEnd, &r.Segment, &r.Feature, &r.Kind, &r.Drifted, &r.Sustained, &r.Status, &r.Samples, &r.Note)
	})
}

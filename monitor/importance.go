package monitor

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/monitor/policy"
	"github.com/driftwatch/driftwatch/monitor/stat"
)

// Importance is the champion's normalised feature importance as the
// monitor uses it (docs/monitor.md, "Importance-weighted drift").
type Importance struct {
	// Version is the champion's version, "" when the model has none.
	Version string
	// UpdatedAt is the champion's models row's updated_at: a version
	// promoted again, or re-registered, is read again.
	UpdatedAt time.Time
	// Shares are the permutation importance shares (summing to 1), empty
	// when the champion has none registered (an external trainer, a
	// version registered by Recover): weighting is then off.
	Shares map[string]float64
}

// Weighting says whether importance weights drift.
func (i Importance) Weighting() bool { return len(i.Shares) > 0 }

// importanceCache holds each model's champion importance; it is read
// again only when the champion changes (a cheap read of the champion's
// version and updated_at each evaluation tells).
type importanceCache struct {
	mu      sync.Mutex
	byModel map[string]Importance
}

// championImportance returns model's champion importance, from the cache
// while the champion is the same.
func (m *Monitor) championImportance(ctx context.Context, model string) (Importance, error) {
	version, updated, err := m.store.Champion(ctx, model)
	if err != nil {
		return Importance{}, err
	}
	m.importance.mu.Lock()
	cached, ok := m.importance.byModel[model]
	m.importance.mu.Unlock()
	if ok && cached.Version == version && cached.UpdatedAt.Equal(updated) {
		return cached, nil
	}
	imp := Importance{Version: version, UpdatedAt: updated}
	if version != "" {
		if imp.Shares, err = m.store.FeatureImportance(ctx, model, version); err != nil {
			return Importance{}, err
		}
	}
	m.importance.mu.Lock()
	m.importance.byModel[model] = imp
	m.importance.mu.Unlock()
	if version != "" && !imp.Weighting() {
		m.log.Info("champion has no feature importance registered: drift is not weighted", "model", model, "version", version)
	}
	return imp, nil
}

// Champion returns the version registered as model's champion and its
// row's updated_at; "" when there is none.
func (s *Store) Champion(ctx context.Context, model string) (string, time.Time, error) {
	q := fmt.Sprintf(`SELECT version, updated_at FROM models FINAL WHERE model_id = %s AND status = %s ORDER BY updated_at DESC, version DESC LIMIT 1`,
		chsql.String(model), chsql.String(registryChampion))
	var version string
	var updated time.Time
	_, _, err := scanSQL(ctx, s.conn, "models", q, func(rows driver.Rows, _ *struct{}) error { return rows.Scan(&version, &updated) })
	if err != nil {
		return "", time.Time{}, fmt.Errorf("read the champion of %s: %w", model, err)
	}
	return version, updated, nil
}

// FeatureImportance returns a version's registered permutation importance
// shares, without the non-finite ones.
func (s *Store) FeatureImportance(ctx context.Context, model, version string) (map[string]float64, error) {
	q := fmt.Sprintf(`SELECT feature_importance FROM models FINAL WHERE model_id = %s AND version = %s LIMIT 1`, chsql.String(model), chsql.String(version))
	var fi map[string]float64
	_, _, err := scanSQL(ctx, s.conn, "models", q, func(rows driver.Rows, _ *struct{}) error { return rows.Scan(&fi) })
	if err != nil {
		return nil, fmt.Errorf("read the feature importance of %s %s: %w", model, version, err)
	}
	for f, v := range fi {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			delete(fi, f)
		}
	}
	return fi, nil
}

// WeightedFeature is one input feature of a window in the importance
// ranking: its drift (PSI), its importance and their product.
type WeightedFeature struct {
	Feature string `json:"feature"`
	// Drift is the feature's PSI in the window (null when not computed).
	Drift *float64 `json:"drift"`
	// Importance is the champion's share (null when not registered).
	Importance *float64 `json:"importance"`
	// WeightedScore is Drift × Importance, or Drift when weighting is
	// off; Rank orders the features by it, 1 the highest.
	WeightedScore *float64 `json:"weighted_score"`
	Rank          int      `json:"rank"`
	Drifted       bool     `json:"drifted"`
	// BelowMinImportance: sustained drift kept from triggering.
	BelowMinImportance bool `json:"below_min_importance"`
}

// ImportanceView is the importance block of the latest results.
type ImportanceView struct {
	ChampionVersion string `json:"champion_version"`
	// Weighting is false when the champion has no importance registered
	// (or there is no champion); Note says so.
	Weighting bool              `json:"weighting"`
	Note      string            `json:"note,omitempty"`
	Ranking   []WeightedFeature `json:"ranking"`
}

// weightedRanking ranks the input features of rows (one window's results)
// by PSI × importance, highest first; PSI alone when imp has no shares.
func weightedRanking(rows []ResultRow, imp Importance) ImportanceView {
	v := ImportanceView{ChampionVersion: imp.Version, Weighting: imp.Weighting(), Ranking: []WeightedFeature{}}
	switch {
	case imp.Version == "":
		v.Note = "no champion registered: drift is not weighted by importance, nothing is excluded by min_importance"
	case !imp.Weighting():
		v.Note = "the champion has no feature importance registered: drift is not weighted by importance, nothing is excluded by min_importance"
	}
	byFeature := map[string]*WeightedFeature{}
	var order []string
	for _, r := range rows {
		if r.Kind != policy.KindDrift {
			continue
		}
		wf := byFeature[r.Feature]
		if wf == nil {
			wf = &WeightedFeature{Feature: r.Feature}
			if s, ok := imp.Shares[r.Feature]; ok {
				wf.Importance = nullable(s)
			}
			byFeature[r.Feature] = wf
			order = append(order, r.Feature)
		}
		switch r.Method {
		case stat.MethodPSI:
			wf.Drift = r.Value
		case MethodVerdict:
			wf.Drifted = r.Drifted
			wf.BelowMinImportance = strings.HasPrefix(r.Note, policy.NoteBelowMinImportance)
		}
	}
	for _, f := range order {
		wf := byFeature[f]
		switch {
		case wf.Drift == nil:
		case !v.Weighting:
			wf.WeightedScore = nullable(*wf.Drift)
		case wf.Importance != nil:
			wf.WeightedScore = nullable(*wf.Drift * *wf.Importance)
		default:
			// Not in the registered importance: it counts as 0.
			wf.WeightedScore = nullable(0)
		}
		v.Ranking = append(v.Ranking, *wf)
	}
	score := func(w WeightedFeature) float64 {
		if w.WeightedScore == nil {
			return math.Inf(-1)
		}
		return *w.WeightedScore
	}
	slices.SortStableFunc(v.Ranking, func(a, b WeightedFeature) int {
		if c := cmp.Compare(score(b), score(a)); c != 0 {
			return c
		}
		return cmp.Compare(a.Feature, b.Feature)
	})
	for i := range v.Ranking {
		v.Ranking[i].Rank = i + 1
	}
	return v
}

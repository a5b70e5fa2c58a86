package monitor

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"golang.org/x/sync/errgroup"

	"github.com/driftwatch/driftwatch/internal/chsql"
)

// Overview statuses of a model (GET /api/v1/models).
const (
	// StatusUnknown: no results yet.
	StatusUnknown = "unknown"
	// DriftOK, DriftDrifted and DriftSustained: in the newest window no
	// feature drifted, one drifted, or one drifted for the configured
	// consecutive windows (what alerts and triggers act on).
	DriftOK        = "ok"
	DriftDrifted   = "drifted"
	DriftSustained = "sustained"
	// QualityOK and QualityIssues: no data-quality check of the newest
	// window crossed its threshold, or one did.
	QualityOK     = "ok"
	QualityIssues = "issues"
)

// overviewParallel is how many of the overview's queries run at a time:
// the drift query takes about as long as the other four together, so two
// lanes answer in about the time of the slowest, and leave the embedded
// engine's other sessions (4 by default) to ingest and the evaluations.
const overviewParallel = 2

// registryChampion is the models table's status of the version in
// production (written by the trainer's registry).
const registryChampion = "champion"

// ModelSummary is one entry of GET /api/v1/models: a model's state at a
// glance, from one set of queries over every model.
type ModelSummary struct {
	ModelID string `json:"model_id"`
	// LastWindowStart and LastWindowEnd are the newest evaluated window
	// ending within the lookback (null when there is none).
	LastWindowStart *time.Time `json:"last_window_start"`
	LastWindowEnd   *time.Time `json:"last_window_end"`
	DriftStatus     string     `json:"drift_status"`
	DriftedFeatures []string   `json:"drifted_features"`
	SustainedDrift  []string   `json:"sustained_features"`
	Samples         uint64     `json:"samples"`
	// QualityStatus and QualityIssues: the newest window's data-quality
	// checks that crossed their thresholds.
	QualityStatus string         `json:"data_quality_status"`
	QualityIssues []QualityIssue `json:"data_quality_issues"`
	// Performance is the newest performance window's metrics (null while
	// a metric is undefined), LabelCoverage its share of labelled
	// inferences.
	PerformanceWindowEnd *time.Time          `json:"performance_window_end"`
	Performance          map[string]*float64 `json:"performance"`
	LabelCoverage        *float64            `json:"label_coverage"`
	// NewestInferenceMinute is the start of the newest minute with
	// inferences within the monitor's lookback (null: none), from the
	// inferences_per_minute rollup.
	NewestInferenceMinute *time.Time `json:"newest_inference_minute"`
	LastTriggerAt         *time.Time `json:"last_trigger_at"`
	LastTriggerReason     string     `json:"last_trigger_reason"`
	// ChampionVersion is the version registered as champion, "" when
	// none is.
	ChampionVersion string `json:"champion_version"`
}

// QualityIssue is a data-quality check that crossed its threshold.
type QualityIssue struct {
	Feature string  `json:"feature"`
	Check   string  `json:"check"`
	Value   float64 `json:"value"`
}

func (m *Monitor) apiModels(w http.ResponseWriter, r *http.Request) {
	var sqls []string
	out, truncated, ok := apiQuery(m, w, r, 0, func(ctx context.Context, n int) (rows []ModelSummary, err error) {
		rows, sqls, err = m.store.Overview(ctx, m.opts.Now().Add(-m.opts.Lookback), n)
		return rows, err
	})
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"models": out, "truncated": truncated, "sql": sqls})
}

// Overview returns every model's summary, by model_id, at most limit of
// them: five queries, each over every model at once (the newest verdicts
// with their data-quality checks among the windows ending since since,
// the newest performance window, the newest inference minute since since,
// the newest trigger, the champion),
// whatever the number of models, overviewParallel at a time. The newest rows of the
// newest window are picked with argMax by computed_at rather than FINAL,
// and the window is matched on the key's prefix (model_id, window_start,
// window_end), so ClickHouse reads only those windows' granules; the
// newest windows come from drift_results' projection newest_window
// (migration 043), a few rows per part. With 300 models of 24 windows the
// first version (FINAL over every window) was several times slower
// (BenchmarkAPIViews). A model is listed when any of them knows
// it. Each query keeps the first limit models by model_id, which holds
// every model of the first limit of their union.
func (s *Store) Overview(ctx context.Context, since time.Time, limit int) ([]ModelSummary, []string, error) {
	byID := map[string]*ModelSummary{}
	var mu sync.Mutex // guards byID; each query sets fields of its own
	get := func(id string) *ModelSummary {
		mu.Lock()
		defer mu.Unlock()
		x := byID[id]
		if x == nil {
			x = &ModelSummary{ModelID: id, DriftStatus: StatusUnknown, DriftedFeatures: []string{}, SustainedDrift: []string{},
				QualityStatus: StatusUnknown, QualityIssues: []QualityIssue{}, Performance: map[string]*float64{}}
			byID[id] = x
		}
		return x
	}
	queries := []struct {
		table, sql string
		scan       func(driver.Rows) error
	}{
		{"drift_results", fmt.Sprintf(`SELECT model_id, window_start, window_end,
       groupArrayIf(feature, d AND method = 'verdict'), groupArrayIf(feature, s AND method = 'verdict'), maxIf(n, method = 'verdict'),
       groupArrayIf(feature, d AND kind = 'data_quality' AND method != 'verdict'),
       groupArrayIf(method, d AND kind = 'data_quality' AND method != 'verdict'), groupArrayIf(v, d AND kind = 'data_quality' AND method != 'verdict'),
       countIf(kind = 'data_quality' AND method != 'verdict')
FROM (
    SELECT model_id, window_start, window_end, feature, method, kind,
           argMax(drifted, computed_at) AS d, argMax(sustained, computed_at) AS s, argMax(samples, computed_at) AS n, argMax(value, computed_at) AS v
    FROM drift_results
    WHERE (model_id, window_start, window_end) IN (
            SELECT model_id, argMax(window_start, window_end), max(window_end) AS newest FROM drift_results
            WHERE method = 'verdict' GROUP BY model_id HAVING newest >= %[1]s)
      AND window_end >= %[1]s AND segment = '' AND (method = 'verdict' OR kind = 'data_quality')
    GROUP BY model_id, window_start, window_end, feature, method, kind)
GROUP BY model_id, window_start, window_end
ORDER BY model_id LIMIT %[2]d`, chsql.Time(since), limit), func(rows driver.Rows) error {
			var (
				id              string
				start, end      time.Time
				drifted, sust   []string
				samples, checks uint64
				qf, qc          []string
				qv              []float64
			)
			if err := rows.Scan(&id, &start, &end, &drifted, &sust, &samples, &qf, &qc, &qv, &checks); err != nil {
				return err
			}
			x := get(id)
			x.LastWindowStart, x.LastWindowEnd, x.DriftedFeatures, x.SustainedDrift, x.Samples = &start, &end, drifted, sust, samples
			switch {
			case len(sust) > 0:
				x.DriftStatus = DriftSustained
			case len(drifted) > 0:
				x.DriftStatus = DriftDrifted
			default:
				x.DriftStatus = DriftOK
			}
			for i := range min(len(qf), len(qc), len(qv)) {
				x.QualityIssues = append(x.QualityIssues, QualityIssue{Feature: qf[i], Check: qc[i], Value: qv[i]})
			}
			switch {
			case len(x.QualityIssues) > 0:
				x.QualityStatus = QualityIssues
			case checks > 0:
				x.QualityStatus = QualityOK
			}
			return nil
		}},
		{"performance_latest", fmt.Sprintf(`SELECT model_id, window_end, groupArray(metric), groupArray(value)
FROM performance_latest
WHERE segment = '' AND (model_id, window_end) IN (SELECT model_id, max(window_end) FROM performance_results WHERE segment = '' GROUP BY model_id)
GROUP BY model_id, window_end
ORDER BY model_id LIMIT %d`, limit), func(rows driver.Rows) error {
			var (
				id      string
				end     time.Time
				metrics []string
				values  []float64
			)
			if err := rows.Scan(&id, &end, &metrics, &values); err != nil {
				return err
			}
			x := get(id)
			x.PerformanceWindowEnd = &end
			for i, k := range metrics {
				if i < len(values) {
					x.Performance[k] = nullable(values[i])
				}
			}
			x.LabelCoverage = x.Performance["label_coverage"]
			return nil
		}},
		{"inferences_per_minute", fmt.Sprintf(`SELECT model_id, max(minute)
FROM inferences_per_minute
WHERE minute >= %s
GROUP BY model_id
ORDER BY model_id LIMIT %d`, chsql.Time(since.Truncate(time.Minute)), limit), func(rows driver.Rows) error {
			var id string
			var t time.Time
			if err := rows.Scan(&id, &t); err != nil {
				return err
			}
			t = t.UTC()
			get(id).NewestInferenceMinute = &t
			return nil
		}},
		{"retrain_triggers", fmt.Sprintf(`SELECT model_id, max(created_at), argMax(reason, created_at)
FROM retrain_triggers
GROUP BY model_id
ORDER BY model_id LIMIT %d`, limit), func(rows driver.Rows) error {
			var id, reason string
			var t time.Time
			if err := rows.Scan(&id, &t, &reason); err != nil {
				return err
			}
			x := get(id)
			x.LastTriggerAt, x.LastTriggerReason = &t, reason
			return nil
		}},
		{"models", fmt.Sprintf(`SELECT model_id, argMaxIf(version, updated_at, status = %s)
FROM models FINAL
GROUP BY model_id
ORDER BY model_id LIMIT %d`, chsql.String(registryChampion), limit), func(rows driver.Rows) error {
			var id, version string
			if err := rows.Scan(&id, &version); err != nil {
				return err
			}
			get(id).ChampionVersion = version
			return nil
		}},
	}
	sqls := make([]string, 0, len(queries))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(overviewParallel)
	for _, q := range queries {
		sqls = append(sqls, q.sql)
		g.Go(func() error {
			_, err := scanAll(gctx, s.conn, q.table, q.sql, func(rows driver.Rows, _ *struct{}) error { return q.scan(rows) })
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, sqls, err
	}
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]ModelSummary, 0, min(len(ids), limit))
	for _, id := range ids[:min(len(ids), limit)] {
		out = append(out, *byID[id])
	}
	return out, sqls, nil
}

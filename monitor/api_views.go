package monitor

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// The API's views for the console (docs/monitor.md#api): a feature's
// distributions, the drift matrix, data quality, dead letters, training
// runs and versions. Each answer carries "sql", the queries it was read
// with, values inlined, so a person can run them in clickhouse-client.

// Bin is one bin of a numeric feature's histogram: [lower, upper), null
// for −∞ and +∞ (the outer bins).
type Bin struct {
	Bin       int      `json:"bin"`
	Lower     *float64 `json:"lower"`
	Upper     *float64 `json:"upper"`
	Reference uint64   `json:"reference"`
	Current   uint64   `json:"current"`
}

// CategoryBar is one category of a categorical feature: New when the
// current window has it and the reference does not.
type CategoryBar struct {
	Value     string `json:"value"`
	Reference uint64 `json:"reference"`
	Current   uint64 `json:"current"`
	New       bool   `json:"new"`
}

// Distribution is GET /api/v1/models/{model}/features/{feature}/distribution.
type Distribution struct {
	ModelID          string    `json:"model_id"`
	Feature          string    `json:"feature"`
	Kind             string    `json:"kind"`
	WindowStart      time.Time `json:"window_start"`
	WindowEnd        time.Time `json:"window_end"`
	ReferenceStart   time.Time `json:"reference_start"`
	ReferenceEnd     time.Time `json:"reference_end"`
	Reference        string    `json:"reference"`
	ComputedAt       time.Time `json:"computed_at"`
	ReferenceRows    uint64    `json:"reference_rows"`
	CurrentRows      uint64    `json:"current_rows"`
	ReferenceMissing uint64    `json:"reference_missing"`
	CurrentMissing   uint64    `json:"current_missing"`
	// Bins (numeric) or Categories (categorical); the other is empty.
	Bins       []Bin         `json:"bins"`
	Categories []CategoryBar `json:"categories"`
	// Numeric only.
	ReferenceMin      *float64 `json:"reference_min,omitempty"`
	ReferenceMax      *float64 `json:"reference_max,omitempty"`
	CurrentOutOfRange *uint64  `json:"current_out_of_range,omitempty"`
	// Categorical only.
	DistinctValues *uint64  `json:"distinct_values,omitempty"`
	Folded         *bool    `json:"folded,omitempty"`
	Truncated      bool     `json:"truncated"`
	SQL            []string `json:"sql"`
}

func (m *Monitor) apiDistribution(w http.ResponseWriter, r *http.Request) {
	model, feature := r.PathValue("model"), r.PathValue("feature")
	if !validModel(w, model) {
		return
	}
	var end time.Time
	if s := r.URL.Query().Get("window_end"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			fail(w, http.StatusBadRequest, "window_end: %q is not an RFC 3339 time", s)
			return
		}
		end = t
	}
	var (
		d         Distribution
		found, tr bool
		sql       string
	)
	if !apiRun(m, w, r, func(ctx context.Context) (err error) {
		d, found, tr, sql, err = m.store.Distribution(ctx, model, feature, end, m.opts.APIMaxRows)
		return err
	}) {
		return
	}
	if !found {
		fail(w, http.StatusNotFound, "no distribution of feature %q of model %q (windows evaluated before drift_distributions existed have none)", feature, model)
		return
	}
	d.Truncated, d.SQL = tr, []string{sql}
	writeJSON(w, http.StatusOK, d)
}

// MatrixWindow is one column of the drift matrix.
type MatrixWindow struct {
	WindowStart time.Time `json:"window_start"`
	WindowEnd   time.Time `json:"window_end"`
}

// MatrixFeature is one row of the drift matrix.
type MatrixFeature struct {
	Feature string `json:"feature"`
	Kind    string `json:"kind"`
}

// MatrixCell is one feature in one window: the method's score against its
// threshold, and the feature's verdict (drifted, sustained, status) with
// the drifted windows in a row up to this one (Consecutive, counted within
// the matrix's windows).
type MatrixCell struct {
	Feature       string    `json:"feature"`
	WindowStart   time.Time `json:"window_start"`
	WindowEnd     time.Time `json:"window_end"`
	Method        string    `json:"method"`
	Value         *float64  `json:"value"`
	PValue        *float64  `json:"p_value"`
	Threshold     *float64  `json:"threshold"`
	MethodDrifted bool      `json:"method_drifted"`
	Drifted       bool      `json:"drifted"`
	Sustained     bool      `json:"sustained"`
	Consecutive   int       `json:"consecutive"`
	Status        string    `json:"status"`
}

// maxMatrixWindows is the most windows the drift matrix takes.
const maxMatrixWindows = 1000

func (m *Monitor) apiDriftMatrix(w http.ResponseWriter, r *http.Request) {
	model := r.PathValue("model")
	if !validModel(w, model) {
		return
	}
	windows, err := intParam(r, "windows", 24, maxMatrixWindows)
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	method := r.URL.Query().Get("method")
	if method == "" {
		method = "psi"
	}
	var sql string
	rows, truncated, ok := apiQuery(m, w, r, 0, func(ctx context.Context, n int) (rows []matrixRow, err error) {
		rows, sql, err = m.store.DriftMatrix(ctx, model, method, windows, n)
		return rows, err
	})
	if !ok {
		return
	}
	out := driftMatrix(rows, method)
	writeJSON(w, http.StatusOK, map[string]any{"model_id": model, "method": method, "windows": out.windows, "features": out.features,
		"cells": out.cells, "truncated": truncated, "sql": []string{sql}})
}

type matrix struct {
	windows  []MatrixWindow
	features []MatrixFeature
	cells    []MatrixCell
}

// driftMatrix pivots the rows (ordered by feature, window, method) into
// the matrix: the windows oldest first, the features by name, one cell per
// feature and window that has a verdict or a row of method.
func driftMatrix(rows []matrixRow, method string) matrix {
	out := matrix{windows: []MatrixWindow{}, features: []MatrixFeature{}, cells: []MatrixCell{}}
	seenWindow := map[int64]bool{}
	for _, r := range rows {
		if !seenWindow[r.end.UnixMilli()] {
			seenWindow[r.end.UnixMilli()] = true
			out.windows = append(out.windows, MatrixWindow{WindowStart: r.start, WindowEnd: r.end})
		}
	}
	slices.SortFunc(out.windows, func(a, b MatrixWindow) int { return a.WindowEnd.Compare(b.WindowEnd) })
	type key struct {
		feature string
		end     int64
	}
	cells := map[key]*MatrixCell{}
	var order []key
	for _, r := range rows {
		k := key{r.feature, r.end.UnixMilli()}
		c := cells[k]
		if c == nil {
			c = &MatrixCell{Feature: r.feature, WindowStart: r.start, WindowEnd: r.end, Method: method}
			cells[k] = c
			order = append(order, k)
			if len(out.features) == 0 || out.features[len(out.features)-1].Feature != r.feature {
				out.features = append(out.features, MatrixFeature{Feature: r.feature, Kind: r.kind})
			}
		}
		if r.method == MethodVerdict {
			c.Drifted, c.Sustained, c.Status = r.drifted, r.sustained, r.status
			continue
		}
		c.Value, c.PValue, c.Threshold, c.MethodDrifted = nullable(r.value), r.pValue, nullable(r.threshold), r.drifted
		if c.Status == "" {
			c.Status = r.status
		}
	}
	run := map[string]int{}
	for _, k := range order { // by feature, then window, oldest first
		c := cells[k]
		if c.Drifted {
			run[k.feature]++
		} else {
			run[k.feature] = 0
		}
		c.Consecutive = run[k.feature]
		out.cells = append(out.cells, *c)
	}
	return out
}

func (m *Monitor) apiDataQuality(w http.ResponseWriter, r *http.Request) {
	model := r.PathValue("model")
	if !validModel(w, model) {
		return
	}
	limit, err := limitParam(r)
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	var sql string
	rows, truncated, ok := apiQuery(m, w, r, limit, func(ctx context.Context, n int) (rows []ResultRow, err error) {
		rows, sql, err = m.store.DataQuality(ctx, model, n)
		return rows, err
	})
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"model_id": model, "data_quality": rows, "truncated": truncated, "sql": []string{sql}})
}

// DeadLetterRow counts one reason's dead letters of a model.
type DeadLetterRow struct {
	Reason string `json:"reason"`
	// Kind is the topic the events came from: inferences, outcomes or
	// business-metrics.
	Kind           string    `json:"kind"`
	Count          uint64    `json:"count"`
	NewestEvent    time.Time `json:"newest_event"`
	NewestReceived time.Time `json:"newest_received"`
	LastError      string    `json:"last_error"`
}

func (m *Monitor) apiDeadLetters(w http.ResponseWriter, r *http.Request) {
	model := r.PathValue("model")
	if !validModel(w, model) {
		return
	}
	to := m.opts.Now().UTC()
	from := to.Add(-24 * time.Hour)
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"to", &to}, {"from", &from}} {
		if s := r.URL.Query().Get(p.name); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				fail(w, http.StatusBadRequest, "%s: %q is not an RFC 3339 time", p.name, s)
				return
			}
			*p.t = t.UTC()
		}
	}
	if r.URL.Query().Get("from") == "" {
		from = to.Add(-24 * time.Hour)
	}
	if !from.Before(to) {
		fail(w, http.StatusBadRequest, "from (%s) must be before to (%s)", from.Format(time.RFC3339), to.Format(time.RFC3339))
		return
	}
	var sql string
	rows, truncated, ok := apiQuery(m, w, r, 0, func(ctx context.Context, n int) (rows []DeadLetterRow, err error) {
		rows, sql, err = m.store.DeadLetters(ctx, model, from, to, n)
		return rows, err
	})
	if !ok {
		return
	}
	var total uint64
	for _, d := range rows {
		total += d.Count
	}
	writeJSON(w, http.StatusOK, map[string]any{"model_id": model, "from": from, "to": to, "total": total, "dead_letters": rows, "truncated": truncated, "sql": []string{sql}})
}

// TrainingRunRow is one training run: the challenger's metrics against the
// champion's on the same rows, the bootstrap interval of their difference
// in the primary metric, and the decision.
type TrainingRunRow struct {
	RunID           string              `json:"run_id"`
	Version         string              `json:"version"`
	ParentVersion   string              `json:"parent_version"`
	TriggerID       string              `json:"trigger_id"`
	Attempt         uint32              `json:"attempt"`
	Reason          string              `json:"reason"`
	Trainer         string              `json:"trainer"`
	Status          string              `json:"status"`
	Decision        string              `json:"decision"`
	DecisionReason  string              `json:"decision_reason"`
	Interrupted     bool                `json:"interrupted"`
	Metrics         map[string]*float64 `json:"metrics"`
	ChampionMetrics map[string]*float64 `json:"champion_metrics"`
	DiffLo          *float64            `json:"diff_lo"`
	DiffHi          *float64            `json:"diff_hi"`
	RowsTrain       uint64              `json:"rows_train"`
	RowsValidation  uint64              `json:"rows_validation"`
	RowsTest        uint64              `json:"rows_test"`
	RowsEval        uint64              `json:"rows_eval"`
	TrainingFrom    time.Time           `json:"training_from"`
	EvalFrom        time.Time           `json:"eval_from"`
	EvalTo          time.Time           `json:"eval_to"`
	CPUSeconds      float64             `json:"cpu_seconds"`
	ArtifactURI     string              `json:"artifact_uri"`
	StartedAt       time.Time           `json:"started_at"`
	FinishedAt      *time.Time          `json:"finished_at"`
	UpdatedAt       time.Time           `json:"updated_at"`
}

func (m *Monitor) apiTrainingRuns(w http.ResponseWriter, r *http.Request) {
	model := r.PathValue("model")
	if !validModel(w, model) {
		return
	}
	limit, err := limitParam(r)
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	var sql string
	rows, truncated, ok := apiQuery(m, w, r, limit, func(ctx context.Context, n int) (rows []TrainingRunRow, err error) {
		rows, sql, err = m.store.TrainingRuns(ctx, model, n)
		return rows, err
	})
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"model_id": model, "training_runs": rows, "truncated": truncated, "sql": []string{sql}})
}

// VersionRow is one registered version of a model (the models table).
type VersionRow struct {
	Version         string              `json:"version"`
	Status          string              `json:"status"`
	Metrics         map[string]*float64 `json:"metrics"`
	ChampionMetrics map[string]*float64 `json:"champion_metrics"`
	// FeatureImportance and CoefficientImportance are the version's
	// normalised feature importance (docs/monitor.md, "Importance-weighted
	// drift"); empty objects when unknown.
	FeatureImportance     map[string]*float64 `json:"feature_importance"`
	CoefficientImportance map[string]*float64 `json:"coefficient_importance"`
	Trainer               string              `json:"trainer"`
	ArtifactURI           string              `json:"artifact_uri"`
	TriggerID             string              `json:"trigger_id"`
	RunID                 string              `json:"run_id"`
	ParentVersion         string              `json:"parent_version"`
	Reason                string              `json:"reason"`
	CreatedAt             time.Time           `json:"created_at"`
	UpdatedAt             time.Time           `json:"updated_at"`
}

func (m *Monitor) apiVersions(w http.ResponseWriter, r *http.Request) {
	model := r.PathValue("model")
	if !validModel(w, model) {
		return
	}
	limit, err := limitParam(r)
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	var sql string
	rows, truncated, ok := apiQuery(m, w, r, limit, func(ctx context.Context, n int) (rows []VersionRow, err error) {
		rows, sql, err = m.store.Versions(ctx, model, n)
		return rows, err
	})
	if !ok {
		return
	}
	champion := ""
	for _, v := range rows {
		if v.Status == "champion" && champion == "" {
			champion = v.Version
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"model_id": model, "champion": champion, "versions": rows, "truncated": truncated, "sql": []string{sql}})
}

// intParam reads the integer query parameter name, from 1 to most, def
// when absent.
func intParam(r *http.Request, name string, def, most int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > most {
		return 0, fmt.Errorf("%s must be an integer from 1 to %d, got %q", name, most, s)
	}
	return n, nil
}

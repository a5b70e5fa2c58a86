package monitor

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/monitor/policy"
	"github.com/driftwatch/driftwatch/monitor/stat"
	"github.com/driftwatch/driftwatch/schemas"
)

// TestMinImportanceKeepsUnusedFeatureFromTriggering: two models, the same
// 1.5 sd mean shift of f1 from +1h (the first hour is the reference), and
// min_importance 0.05. model-0's champion (v2; v1, its earlier champion,
// retired) registered f1 with importance 0, model-1's with 0.4. By the
// window ending +3h f1 is sustained in both: model-0 records and shows it
// (drift_results rows drifted and sustained with the note "below
// min_importance", the API's importance and ranking) and publishes no
// trigger; model-1 publishes a feature_drift trigger whose evidence names
// f1. model-2, without a champion, is not weighted (the API says so).
// Then v3, using f1, becomes model-0's champion: the cache reads it, and
// the window evaluated again triggers on f1.
//
// Prediction-drift triggers are off: f1 moves the generator's score too,
// and min_importance is about input features only.
func TestMinImportanceKeepsUnusedFeatureFromTriggering(t *testing.T) {
	w := newWorld(t)
	w.start = time.Now().UTC().Truncate(time.Hour).Add(-10 * time.Hour)
	w.numeric, w.models = 4, 3
	w.fill(t, 3, 2000, "mean_shift:f1:1.5@+1h")
	ctx := context.Background()
	tm := func(d time.Duration) string { return chsql.Time(w.start.Add(d)) }
	if err := w.conn.Exec(ctx, "INSERT INTO models (model_id, version, status, metrics, feature_importance, created_at, updated_at) VALUES "+
		"('model-0', 'v1', 'champion', map(), map('f0', 0.25, 'f1', 0.25, 'f2', 0.25, 'f3', 0.25), "+tm(-48*time.Hour)+", "+tm(-48*time.Hour)+"), "+
		"('model-0', 'v1', 'retired', map(), map('f0', 0.25, 'f1', 0.25, 'f2', 0.25, 'f3', 0.25), "+tm(-48*time.Hour)+", "+tm(-24*time.Hour)+"), "+
		"('model-0', 'v2', 'champion', map(), map('f0', 0.5, 'f1', 0, 'f2', 0.3, 'f3', 0.2), "+tm(-24*time.Hour)+", "+tm(-24*time.Hour)+"), "+
		"('model-1', 'v1', 'champion', map(), map('f0', 0.3, 'f1', 0.4, 'f2', 0.2, 'f3', 0.1), "+tm(-24*time.Hour)+", "+tm(-24*time.Hour)+")"); err != nil {
		t.Fatal(err)
	}
	tw, err := kafkaio.NewWriter(w.kopts, "retrain-triggers")
	if err != nil {
		t.Fatal(err)
	}
	defer tw.Close()
	pol := policy.Default()
	pol.MinImportance = 0.05
	s := testSettings(48*time.Hour, pol, nil)
	s.Triggers.PredictionDrift = false
	reg := prometheus.NewRegistry()
	m, err := New(Options{Settings: s, Conn: w.conn, TriggerWriter: tw, Registerer: reg,
		Now: func() time.Time { return w.start.Add(10 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	published := map[string][]schemas.RetrainTrigger{}
	for _, model := range []string{"model-0", "model-1", "model-2"} {
		for h := 2; h <= 3; h++ {
			res, err := m.Evaluate(ctx, model, w.start.Add(time.Duration(h)*time.Hour))
			if err != nil {
				t.Fatalf("%s +%dh: %v", model, h, err)
			}
			if got := inputs(res.Verdict); !slices.Contains(got, "f1") {
				t.Fatalf("%s +%dh: drifted inputs %v, want f1 among them", model, h, got)
			}
			for _, d := range res.Decisions {
				if d.Outcome == OutcomePublished {
					published[model] = append(published[model], *d.Trigger)
				}
			}
			if h == 3 {
				switch model {
				case "model-0":
					if !slices.Contains(res.Verdict.Unimportant, "f1") || slices.Contains(res.Verdict.Sustained, "f1") {
						t.Errorf("model-0 +3h: sustained %v unimportant %v, want f1 unimportant only", res.Verdict.Sustained, res.Verdict.Unimportant)
					}
					if res.Importance.Version != "v2" {
						t.Errorf("model-0: weighted with the importance of %q, want the champion v2", res.Importance.Version)
					}
				default:
					if !slices.Contains(res.Verdict.Sustained, "f1") || len(res.Verdict.Unimportant) != 0 {
						t.Errorf("%s +3h: sustained %v unimportant %v, want f1 sustained", model, res.Verdict.Sustained, res.Verdict.Unimportant)
					}
				}
			}
		}
	}
	for _, tr := range published["model-0"] {
		for _, e := range tr.Evidence {
			if e.Feature == "f1" {
				t.Errorf("model-0 published a %s trigger with f1 in its evidence: %+v", tr.Reason, e)
			}
		}
	}
	if len(published["model-0"]) != 0 {
		t.Errorf("model-0: %d triggers published, want none (f1 is its only drifted input)", len(published["model-0"]))
	}
	for _, model := range []string{"model-1", "model-2"} {
		if len(published[model]) != 1 || published[model][0].Reason != schemas.TriggerFeatureDrift ||
			!slices.ContainsFunc(published[model][0].Evidence, func(e schemas.Evidence) bool { return e.Feature == "f1" }) {
			t.Errorf("%s: published %+v, want one feature_drift trigger with f1 in its evidence", model, published[model])
		}
	}

	// Not paging either: model-0's driftwatch_drift_detected for f1 is 0.
	if got := detected(t, reg, "model-0", "f1"); got != 0 {
		t.Errorf("model-0 driftwatch_drift_detected{feature=f1} = %v, want 0", got)
	}

	// Recorded: model-0's f1 rows of the window ending +3h are drifted and
	// sustained, and say why nothing was triggered.
	var drifted, sustained bool
	var note string
	if err := w.conn.QueryRow(ctx, "SELECT drifted, sustained, note FROM drift_results FINAL WHERE model_id = 'model-0' AND feature = 'f1' AND segment = '' AND method = ? AND window_end = ?",
		MethodVerdict, w.start.Add(3*time.Hour)).Scan(&drifted, &sustained, &note); err != nil {
		t.Fatal(err)
	}
	if !drifted || !sustained || !strings.HasPrefix(note, policy.NoteBelowMinImportance) {
		t.Errorf("model-0 f1 verdict row: drifted %v sustained %v note %q, want drifted, sustained, %q…", drifted, sustained, note, policy.NoteBelowMinImportance)
	}

	// Shown: the API's latest results carry the importance and the ranking.
	type apiResults struct {
		Results    []ResultRow    `json:"results"`
		Importance ImportanceView `json:"importance"`
	}
	get := func(model string) apiResults {
		t.Helper()
		rec := httptest.NewRecorder()
		m.API().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/models/"+model+"/results", nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("%s results: %d %s", model, rec.Code, rec.Body)
		}
		var out apiResults
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	r0 := get("model-0")
	if !r0.Importance.Weighting || r0.Importance.ChampionVersion != "v2" {
		t.Errorf("model-0 importance block %+v, want weighting by v2", r0.Importance)
	}
	var f1 *WeightedFeature
	for i, wf := range r0.Importance.Ranking {
		if wf.Feature == "f1" {
			f1 = &r0.Importance.Ranking[i]
		}
		if wf.Rank != i+1 {
			t.Errorf("ranking[%d] has rank %d", i, wf.Rank)
		}
	}
	if f1 == nil || f1.Importance == nil || *f1.Importance != 0 || !f1.Drifted || !f1.BelowMinImportance || f1.WeightedScore == nil || *f1.WeightedScore != 0 ||
		f1.Drift == nil || !(*f1.Drift >= pol.Threshold("f1", stat.MethodPSI)) {
		t.Errorf("model-0 f1 in the ranking: %+v, want drifted, importance 0, weighted score 0, below min_importance, PSI over its threshold", f1)
	} else if f1.Rank != len(r0.Importance.Ranking) {
		// Every other feature has a positive importance and some PSI.
		t.Errorf("model-0 f1 ranked %d of %d, want last", f1.Rank, len(r0.Importance.Ranking))
	}
	for _, row := range r0.Results {
		if row.Feature == "f1" && row.Kind == policy.KindDrift && (row.Importance == nil || *row.Importance != 0) {
			t.Errorf("model-0 f1 %s row importance %v, want 0", row.Method, row.Importance)
		}
	}
	r1 := get("model-1")
	if top := r1.Importance.Ranking; len(top) == 0 || top[0].Feature != "f1" || top[0].BelowMinImportance {
		t.Errorf("model-1 ranking %+v, want f1 first, not below min_importance", top)
	}
	r2 := get("model-2")
	if r2.Importance.Weighting || !strings.Contains(r2.Importance.Note, "not weighted") {
		t.Errorf("model-2 (no champion) importance block %+v, want weighting off and a note saying so", r2.Importance)
	}

	// A new champion of model-0 (v3) that uses f1: the cache follows it,
	// and the same window evaluated again now triggers on f1.
	if err := w.conn.Exec(ctx, "INSERT INTO models (model_id, version, status, metrics, feature_importance, created_at, updated_at) VALUES "+
		"('model-0', 'v2', 'retired', map(), map('f0', 0.5, 'f1', 0, 'f2', 0.3, 'f3', 0.2), "+tm(-24*time.Hour)+", "+tm(-time.Hour)+"), "+
		"('model-0', 'v3', 'champion', map(), map('f0', 0.2, 'f1', 0.4, 'f2', 0.2, 'f3', 0.2), "+tm(-time.Hour)+", "+tm(-time.Hour)+")"); err != nil {
		t.Fatal(err)
	}
	res, err := m.Evaluate(ctx, "model-0", w.start.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if res.Importance.Version != "v3" || !slices.Contains(res.Verdict.Sustained, "f1") || len(res.Verdict.Unimportant) != 0 {
		t.Errorf("model-0 with champion v3: weighted by %q, sustained %v, unimportant %v; want v3, f1 sustained", res.Importance.Version, res.Verdict.Sustained, res.Verdict.Unimportant)
	}
	if len(res.Decisions) != 1 || res.Decisions[0].Outcome != OutcomePublished || res.Decisions[0].Trigger.Reason != schemas.TriggerFeatureDrift {
		t.Errorf("model-0 with champion v3: decisions %+v, want one published feature_drift trigger", res.Decisions)
	}
	if got := detected(t, reg, "model-0", "f1"); got != 1 {
		t.Errorf("model-0 with champion v3: driftwatch_drift_detected{feature=f1} = %v, want 1", got)
	}
}

// detected is the value of driftwatch_drift_detected{model, feature} in
// reg (-1 when absent).
func detected(t *testing.T, reg *prometheus.Registry, model, feature string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "driftwatch_drift_detected" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range mt.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["model"] == model && labels["feature"] == feature {
				return mt.GetGauge().GetValue()
			}
		}
	}
	return -1
}

// TestWeightedRanking: PSI × importance, computed by hand: a 0.5 × 0.1 =
// 0.05, b 0.2 × 0.6 = 0.12, c 0.1 × 0.3 = 0.03, d (not in the importance)
// 0.9 × 0 = 0; so b, a, c, d. Without importance the ranking is by PSI:
// d, a, b, c. Prediction and data-quality rows are not ranked.
func TestWeightedRanking(t *testing.T) {
	p := func(x float64) *float64 { return &x }
	var rows []ResultRow
	for i, f := range []string{"a", "b", "c", "d"} {
		psi := []float64{0.5, 0.2, 0.1, 0.9}[i]
		rows = append(rows, ResultRow{Feature: f, Kind: policy.KindDrift, Method: stat.MethodPSI, Value: p(psi)},
			ResultRow{Feature: f, Kind: policy.KindDrift, Method: MethodVerdict, Value: p(1), Drifted: true})
	}
	rows = append(rows, ResultRow{Feature: "__score", Kind: policy.KindPredictionDrift, Method: stat.MethodPSI, Value: p(3)},
		ResultRow{Feature: "a", Kind: policy.KindDataQuality, Method: policy.CheckMissingShare, Value: p(0.5)})
	rows[1].Note = policy.NoteBelowMinImportance // a's verdict row + " (importance 0.1 < 0.2): recorded, no trigger"
	for _, tc := range []struct {
		name  string
		imp   Importance
		order []string
		score []float64
	}{
		{"weighted", Importance{Version: "v1", Shares: map[string]float64{"a": 0.1, "b": 0.6, "c": 0.3}}, []string{"b", "a", "c", "d"}, []float64{0.12, 0.05, 0.03, 0}},
		{"no importance", Importance{Version: "v1"}, []string{"d", "a", "b", "c"}, []float64{0.9, 0.5, 0.2, 0.1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := weightedRanking(rows, tc.imp)
			if v.Weighting != (len(tc.imp.Shares) > 0) || (v.Weighting == (v.Note != "")) {
				t.Errorf("weighting %v note %q", v.Weighting, v.Note)
			}
			var order []string
			for i, wf := range v.Ranking {
				order = append(order, wf.Feature)
				if wf.Rank != i+1 || wf.WeightedScore == nil || !(math.Abs(*wf.WeightedScore-tc.score[i]) <= 1e-12) {
					t.Errorf("%s: rank %d score %v, want %d and %g", wf.Feature, wf.Rank, wf.WeightedScore, i+1, tc.score[i])
				}
				if wf.BelowMinImportance != (wf.Feature == "a") {
					t.Errorf("%s: below_min_importance %v", wf.Feature, wf.BelowMinImportance)
				}
			}
			if !slices.Equal(order, tc.order) {
				t.Errorf("order %v, want %v", order, tc.order)
			}
		})
	}
}

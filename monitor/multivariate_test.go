package monitor

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/testcheck"
	"github.com/driftwatch/driftwatch/monitor/multivariate"
	"github.com/driftwatch/driftwatch/monitor/policy"
	"github.com/driftwatch/driftwatch/schemas"
)

// TestMultivariateCorrelationFlip is issue 18's test, through Kafka,
// ingest and ClickHouse: two models of six numeric features (3000
// inferences an hour each), f1 and f2
// correlated 0.8 in both; from +2h model-0's correlation flips to −0.8
// while both marginals stay as they were (N(μ, σ) each). With
// policy.multivariate on, in the windows ending +3h and +4h:
//
//   - no per-feature method flags any input of either model (f1 and f2
//     included: their marginals did not move);
//   - both multivariate features drift for model-0, sustained at +4h
//     (consecutive 2), which publishes a feature_drift trigger whose
//     evidence names f1*f2 as what the classifier leaned on most;
//   - model-1 (unchanged) is flagged by neither method in any window,
//     nor is model-0 in the window ending +2h (before the flip);
//
// and the rows are in drift_results (kind drift, value, threshold,
// samples, note), in the API's results and in Prometheus. With the
// reference's raw rows deleted, a new monitor evaluates both methods from
// the pinned profile's joint sample.
func TestMultivariateCorrelationFlip(t *testing.T) {
	w := newWorld(t)
	w.start = time.Now().UTC().Truncate(time.Hour).Add(-10 * time.Hour)
	w.numeric, w.models = 6, 2
	w.fill(t, 4, 6000, "correlation:f1:f2:0.8", "model-0/correlation:f1:f2:-0.8@+2h")
	tw, err := kafkaio.NewWriter(w.kopts, "retrain-triggers")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tw.Close() })
	pol := policy.Default()
	pol.Multivariate.Enabled = true
	reg := prometheus.NewRegistry()
	m, err := New(Options{Settings: testSettings(48*time.Hour, pol, nil), Conn: w.conn, TriggerWriter: tw, Registerer: reg,
		Now: func() time.Time { return w.start.Add(10 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	both := []string{multivariate.ClassifierFeature, multivariate.ReconstructionFeature}
	for h := 2; h <= 4; h++ {
		for _, model := range []string{"model-0", "model-1"} {
			res, err := m.Evaluate(ctx, model, w.start.Add(time.Duration(h)*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if res.Skipped != "" {
				t.Fatalf("%s +%dh skipped: %s", model, h, res.Skipped)
			}
			at := fmt.Sprintf("%s, window ending +%dh", model, h)
			if got := inputs(res.Verdict); got != nil {
				t.Errorf("%s: per-feature drift in %v, want none", at, got)
			}
			var mv []string
			for _, f := range res.Verdict.Drifted {
				if multivariate.IsFeature(f) {
					mv = append(mv, f)
				}
			}
			want := []string(nil)
			if model == "model-0" && h > 2 {
				want = both
			}
			if !slices.Equal(mv, want) {
				t.Errorf("%s: multivariate drift %v, want %v", at, mv, want)
			}
			rows := map[string]policy.Row{}
			for _, r := range res.Verdict.Rows {
				if multivariate.IsFeature(r.Feature) && r.Method != MethodVerdict {
					rows[r.Feature] = r
				}
			}
			if len(rows) != 2 {
				t.Fatalf("%s: multivariate rows %v, want both features", at, rows)
			}
			for f, r := range rows {
				// The joint sample: every row (about 3000 a model and
				// hour, under policy.multivariate.rows).
				if r.Samples != res.Snapshot.CurRows || r.ReferenceSamples != res.Snapshot.RefRows {
					t.Errorf("%s %s: %d current and %d reference rows, want the windows' %d and %d", at, f, r.Samples, r.ReferenceSamples, res.Snapshot.CurRows, res.Snapshot.RefRows)
				}
				if r.Status != policy.StatusOK && r.Status != policy.StatusDrifted {
					t.Errorf("%s %s: status %s (%s)", at, f, r.Status, r.Note)
				}
			}
			cls, rec := rows[multivariate.ClassifierFeature], rows[multivariate.ReconstructionFeature]
			t.Logf("%s: AUC %.4f (threshold %.4f), reconstruction error %.4f (%s), %s", at, cls.Value, cls.Threshold, rec.Value, rec.Note, cls.Note)
			if !testcheck.Between(cls.Threshold, 0.5, 0.6) {
				t.Errorf("%s: classifier threshold %v, want a little above 0.5", at, cls.Threshold)
			}
			if len(want) > 0 {
				if !testcheck.AtLeast(cls.Value, 0.6) {
					t.Errorf("%s: classifier AUC %v, want well above chance", at, cls.Value)
				}
				if len(cls.Leaned) == 0 || cls.Leaned[0].Column != "f1*f2" {
					t.Errorf("%s: classifier leaned on %v, want f1*f2 first", at, cls.Leaned)
				}
			}
			if model == "model-0" && h == 4 {
				if !slices.Equal(res.Verdict.Sustained, both) {
					t.Errorf("%s: sustained %v, want %v", at, res.Verdict.Sustained, both)
				}
				checkLeanedTrigger(t, res)
			} else if model == "model-1" && len(res.Decisions) > 0 {
				t.Errorf("%s: triggers %v", at, res.Decisions)
			}
		}
	}
	// drift_results, the API, Prometheus.
	var n uint64
	if err := w.conn.QueryRow(ctx, fmt.Sprintf("SELECT count() FROM drift_results FINAL WHERE model_id = 'model-0' AND feature IN (%s, %s) AND kind = 'drift' AND drifted AND method IN (%s, %s) AND note != '' AND samples > 2500 AND threshold > 0",
		chsql.String(multivariate.ClassifierFeature), chsql.String(multivariate.ReconstructionFeature), chsql.String(multivariate.MethodClassifier), chsql.String(multivariate.MethodReconstruction))).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 4 { // two methods × the windows ending +3h and +4h
		t.Errorf("%d drifted multivariate rows of model-0 in drift_results, want 4", n)
	}
	_, out := call(t, m.API(), "GET", "/api/v1/models/model-0/results", "")
	var seen []string
	for _, r := range out["results"].([]any) {
		row := r.(map[string]any)
		if f, _ := row["feature"].(string); multivariate.IsFeature(f) && row["method"] != MethodVerdict {
			seen = append(seen, f)
			if row["drifted"] != true || row["sustained"] != true {
				t.Errorf("API: %v", row)
			}
		}
	}
	slices.Sort(seen)
	if !slices.Equal(seen, both) {
		t.Errorf("API results name %v, want %v", seen, both)
	}
	for _, f := range both {
		if got := testutil.ToFloat64(gaugeOf(t, reg, "driftwatch_drift_detected", map[string]string{"model": "model-0", "feature": f})); got != 1 {
			t.Errorf("driftwatch_drift_detected{model-0, %s} = %v, want 1", f, got)
		}
		if got := testutil.ToFloat64(gaugeOf(t, reg, "driftwatch_drift_detected", map[string]string{"model": "model-1", "feature": f})); got != 0 {
			t.Errorf("driftwatch_drift_detected{model-1, %s} = %v, want 0", f, got)
		}
	}
	auc := testutil.ToFloat64(gaugeOf(t, reg, "driftwatch_drift_score", map[string]string{"model": "model-0", "feature": multivariate.ClassifierFeature, "method": multivariate.MethodClassifier}))
	if !testcheck.AtLeast(auc, 0.6) {
		t.Errorf("driftwatch_drift_score of the classifier %v", auc)
	}

	// The pinned reference's profile carries its joint sample: with the
	// reference's raw rows gone, a new monitor (nothing cached) still
	// evaluates both methods, on the same reference rows.
	if err := w.conn.Exec(ctx, fmt.Sprintf("ALTER TABLE inferences DELETE WHERE model_id = 'model-0' AND timestamp < %s SETTINGS mutations_sync = 2", chsql.Time(w.start.Add(time.Hour+time.Minute)))); err != nil {
		t.Fatal(err)
	}
	if left := w.count(t, fmt.Sprintf("SELECT count() FROM inferences WHERE model_id = 'model-0' AND timestamp < %s", chsql.Time(w.start.Add(time.Hour)))); left != 0 {
		t.Fatalf("%d reference rows left after the delete", left)
	}
	m2, err := New(Options{Settings: testSettings(48*time.Hour, pol, nil), Conn: w.conn, TriggerWriter: tw, Registerer: prometheus.NewRegistry(),
		Now: func() time.Time { return w.start.Add(10 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	again, err := m2.Evaluate(ctx, "model-0", w.start.Add(4*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if again.Reference != ReferencePinned || again.Snapshot.RefJoint == nil || int64(len(again.Snapshot.RefJoint.Rows)) != again.Snapshot.RefRows {
		t.Fatalf("after the reference's rows were deleted: reference %q, joint sample %v of %d rows", again.Reference, again.Snapshot.RefJoint != nil, again.Snapshot.RefRows)
	}
	for _, f := range both {
		if !slices.Contains(again.Verdict.Drifted, f) {
			t.Errorf("from the persisted profile: %s not drifted (%v)", f, again.Verdict.Drifted)
		}
	}
}

// checkLeanedTrigger: res published a feature_drift trigger whose evidence
// holds the multivariate rows and, first of the leaned_on rows, f1*f2.
func checkLeanedTrigger(t *testing.T, res Result) {
	t.Helper()
	for _, d := range res.Decisions {
		if d.Trigger.Reason != schemas.TriggerFeatureDrift {
			continue
		}
		if d.Outcome != OutcomePublished {
			t.Errorf("feature_drift trigger %s", d.Outcome)
		}
		var leaned, features []string
		for _, e := range d.Trigger.Evidence {
			switch e.Check {
			case CheckLeanedOn:
				leaned = append(leaned, e.Feature)
			case policy.KindDrift:
				features = append(features, e.Feature)
			}
		}
		slices.Sort(features)
		if !slices.Contains(leaned, "f1*f2") || !slices.Equal(features, []string{multivariate.ClassifierFeature, multivariate.ReconstructionFeature}) {
			t.Errorf("evidence: leaned on %v, drift of %v", leaned, features)
		}
		return
	}
	t.Errorf("no feature_drift trigger: %v", res.Decisions)
}

// TestMultivariateAssociationFlip is the categorical counterpart of
// TestMultivariateCorrelationFlip, through Kafka, ingest and ClickHouse:
// two models of six numeric and five categorical features (3000
// inferences an hour each); c0's first categories go with f1's low values
// (loadgen's association:c0:f1:1) in both, and from +2h model-0's with its
// high values (association:c0:f1:-1) while both marginals stay. In the
// windows ending +3h and +4h no per-feature method flags any input of
// either model; both multivariate features drift for model-0 (sustained
// at +4h), the classifier leaning first on a product of f1 and a one-hot
// column of c0 ("f1*c0=…", its features f1 and c0); model-1 is flagged by
// neither method in any window, nor model-0 before the flip.
func TestMultivariateAssociationFlip(t *testing.T) {
	w := newWorld(t)
	w.start = time.Now().UTC().Truncate(time.Hour).Add(-10 * time.Hour)
	w.numeric, w.models = 6, 2
	w.fill(t, 4, 6000, "association:c0:f1:1", "model-0/association:c0:f1:-1@+2h")
	tw, err := kafkaio.NewWriter(w.kopts, "retrain-triggers")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tw.Close() })
	pol := policy.Default()
	pol.Multivariate.Enabled = true
	pol.Multivariate.Categorical = true
	m, err := New(Options{Settings: testSettings(48*time.Hour, pol, nil), Conn: w.conn, TriggerWriter: tw, Registerer: prometheus.NewRegistry(),
		Now: func() time.Time { return w.start.Add(10 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	both := []string{multivariate.ClassifierFeature, multivariate.ReconstructionFeature}
	for h := 2; h <= 4; h++ {
		for _, model := range []string{"model-0", "model-1"} {
			res, err := m.Evaluate(ctx, model, w.start.Add(time.Duration(h)*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if res.Skipped != "" {
				t.Fatalf("%s +%dh skipped: %s", model, h, res.Skipped)
			}
			at := fmt.Sprintf("%s, window ending +%dh", model, h)
			if got := inputs(res.Verdict); got != nil {
				t.Errorf("%s: per-feature drift in %v, want none", at, got)
			}
			if j := res.Snapshot.CurJoint; j == nil || !slices.Contains(j.Categorical, "c0") {
				t.Fatalf("%s: the joint sample has no c0", at)
			}
			var mv []string
			for _, f := range res.Verdict.Drifted {
				if multivariate.IsFeature(f) {
					mv = append(mv, f)
				}
			}
			want := []string(nil)
			if model == "model-0" && h > 2 {
				want = both
			}
			if !slices.Equal(mv, want) {
				t.Errorf("%s: multivariate drift %v, want %v", at, mv, want)
			}
			rows := map[string]policy.Row{}
			for _, r := range res.Verdict.Rows {
				if multivariate.IsFeature(r.Feature) && r.Method != MethodVerdict {
					rows[r.Feature] = r
				}
			}
			cls, rec := rows[multivariate.ClassifierFeature], rows[multivariate.ReconstructionFeature]
			t.Logf("%s: AUC %.4f (threshold %.4f), reconstruction error %.4f (%s), %s", at, cls.Value, cls.Threshold, rec.Value, rec.Note, cls.Note)
			if cls.Status != policy.StatusOK && cls.Status != policy.StatusDrifted {
				t.Errorf("%s: classifier status %s (%s)", at, cls.Status, cls.Note)
			}
			if len(want) > 0 {
				if !testcheck.AtLeast(cls.Value, 0.6) {
					t.Errorf("%s: classifier AUC %v, want well above chance", at, cls.Value)
				}
				if len(cls.Leaned) == 0 || !strings.HasPrefix(cls.Leaned[0].Column, "f1*c0=") || !slices.Equal(cls.Leaned[0].Features, []string{"f1", "c0"}) {
					t.Errorf("%s: classifier leaned on %v, want f1*c0=… (f1 and c0) first", at, cls.Leaned)
				}
			}
			if model == "model-0" && h == 4 && !slices.Equal(res.Verdict.Sustained, both) {
				t.Errorf("%s: sustained %v, want %v", at, res.Verdict.Sustained, both)
			}
		}
	}
}

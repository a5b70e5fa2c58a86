package monitor

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/internal/testdb"
)

// TestDistributionsAreStored evaluates a window of hand-made rows and
// reads its bin and category counts back from drift_distributions, the
// view drift_distribution_bins and the API.
//
// The reference hour holds x = 0…99 and c = a (even) / b (odd); the
// current hour x = 50…149, and c only on its first 80 rows: a, b, then two
// rows of a category the reference never had (number % 4 = 0, 1, 2–3).
// By hand: the reference's deciles of 0…99 (numpy "linear": p·99) are
// 9.9, 19.8, …, 89.1, so the reference has 10 rows in each of the 10 bins
// and the current none below 49.5, 10 in each bin from [49.5, 59.4) to
// [79.2, 89.1) and 60 (90…149) in [89.1, +∞). c: a 50 → 20, b 50 → 20,
// new 0 → 40 (new), 0 reference and 20 current rows missing it.
func TestDistributionsAreStored(t *testing.T) {
	conn, _ := testdb.Open(t, "monitor_dist")
	ctx := context.Background()
	t0 := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	step := 36 * time.Second
	insertRows(t, conn, "dist", "ref", t0, 100, step, "map('x', toFloat64(number))", "map('c', if(number % 2 = 0, 'a', 'b'))")
	cur := t0.Add(time.Hour)
	insertRows(t, conn, "dist", "cur", cur, 80, step, "map('x', toFloat64(number + 50))", "map('c', multiIf(number % 4 = 0, 'a', number % 4 = 1, 'b', 'new'))")
	insertRows(t, conn, "dist", "cur-no-c", cur.Add(80*step), 20, step, "map('x', toFloat64(number + 130))", "CAST(map(), 'Map(String, String)')")

	now := cur.Add(time.Hour + time.Minute)
	m, err := New(Options{Settings: testSettings(48*time.Hour, DefaultSettings().Policy, nil), Conn: conn, TriggerWriter: &recordingWriter{},
		Registerer: prometheus.NewRegistry(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	end := cur.Add(time.Hour)
	// Twice: the second evaluation (later computed_at) replaces the first.
	for range 2 {
		if res, err := m.Evaluate(ctx, "dist", end); err != nil || res.Skipped != "" {
			t.Fatalf("evaluate: %v %q", err, res.Skipped)
		}
		now = now.Add(time.Minute)
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM drift_distributions FINAL WHERE model_id = 'dist' AND feature IN ('x', 'c')").Scan(&n); err != nil || n != 2 {
		t.Fatalf("drift_distributions rows of x and c: %d, %v; want 2", n, err)
	}
	// The window columns are drift_results'.
	var sameWindow uint64
	if err := conn.QueryRow(ctx, `SELECT count() FROM drift_distributions AS d FINAL INNER JOIN (SELECT DISTINCT window_start, window_end, reference_start, reference_end, computed_at FROM drift_results FINAL WHERE model_id = 'dist' AND method = 'verdict') r
		ON d.window_start = r.window_start AND d.window_end = r.window_end AND d.reference_start = r.reference_start AND d.reference_end = r.reference_end AND d.computed_at = r.computed_at
		WHERE d.model_id = 'dist' AND d.feature = 'x'`).Scan(&sameWindow); err != nil || sameWindow != 1 {
		t.Errorf("drift_distributions and drift_results share the window and computed_at: %d, %v", sameWindow, err)
	}

	wantRef := []float64{10, 10, 10, 10, 10, 10, 10, 10, 10, 10}
	wantCur := []float64{0, 0, 0, 0, 0, 10, 10, 10, 10, 60}
	wantEdges := []float64{9.9, 19.8, 29.7, 39.6, 49.5, 59.4, 69.3, 79.2, 89.1}
	h := m.API()

	t.Run("numeric", func(t *testing.T) {
		code, out := call(t, h, "GET", "/api/v1/models/dist/features/x/distribution", "")
		if code != http.StatusOK || out["kind"] != "numeric" {
			t.Fatalf("%d %v", code, out)
		}
		checkSchema(t, "/api/v1/models/{model}/features/{feature}/distribution", out)
		bins, _ := out["bins"].([]any)
		if len(bins) != 10 {
			t.Fatalf("%d bins, want 10: %v", len(bins), out)
		}
		for i, b := range bins {
			bin := b.(map[string]any)
			if bin["reference"] != wantRef[i] || bin["current"] != wantCur[i] {
				t.Errorf("bin %d: %v, want reference %v current %v", i, bin, wantRef[i], wantCur[i])
			}
			lo, hi := bin["lower"], bin["upper"]
			if i == 0 && lo != nil || i == 9 && hi != nil {
				t.Errorf("bin %d: the outer edges must be null (−∞, +∞): %v", i, bin)
			}
			if i > 0 && !(math.Abs(lo.(float64)-wantEdges[i-1]) <= 1e-9) || i < 9 && !(math.Abs(hi.(float64)-wantEdges[i]) <= 1e-9) {
				t.Errorf("bin %d: edges %v, %v; want %v", i, lo, hi, wantEdges)
			}
		}
		if out["reference_missing"] != 0.0 || out["current_missing"] != 0.0 || out["reference_rows"] != 100.0 || out["current_rows"] != 100.0 ||
			out["reference_min"] != 0.0 || out["reference_max"] != 99.0 || out["current_out_of_range"] != 50.0 {
			t.Errorf("rows, missing, range: %v", out)
		}
		if out["window_end"] != end.Format(time.RFC3339) || out["reference"] != ReferencePinned {
			t.Errorf("window: %v %v", out["window_end"], out["reference"])
		}
		runSQL(t, conn, out, 1)
	})
	t.Run("categorical", func(t *testing.T) {
		code, out := call(t, h, "GET", "/api/v1/models/dist/features/c/distribution?window_end="+end.Add(time.Hour).Format(time.RFC3339), "")
		if code != http.StatusOK || out["kind"] != "categorical" {
			t.Fatalf("%d %v", code, out)
		}
		checkSchema(t, "/api/v1/models/{model}/features/{feature}/distribution", out)
		got := fmt.Sprint(out["categories"])
		want := "[map[current:20 new:false reference:50 value:a] map[current:20 new:false reference:50 value:b] map[current:40 new:true reference:0 value:new]]"
		if got != want {
			t.Errorf("categories %s\nwant       %s", got, want)
		}
		if out["reference_missing"] != 0.0 || out["current_missing"] != 20.0 || out["distinct_values"] != 3.0 || out["folded"] != false {
			t.Errorf("missing, distinct: %v", out)
		}
		runSQL(t, conn, out, 1)
	})
	t.Run("view", func(t *testing.T) {
		rows, err := conn.Query(ctx, "SELECT bin, lower, upper, reference_count, current_count FROM drift_distribution_bins WHERE model_id = 'dist' AND feature = 'x' ORDER BY bin")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		i := 0
		for ; rows.Next(); i++ {
			var bin uint32
			var lo, hi float64
			var r, c uint64
			if err := rows.Scan(&bin, &lo, &hi, &r, &c); err != nil {
				t.Fatal(err)
			}
			if int(bin) != i || float64(r) != wantRef[i] || float64(c) != wantCur[i] || (i == 0) != math.IsInf(lo, -1) || (i == 9) != math.IsInf(hi, 1) {
				t.Errorf("view row %d: bin %d [%v, %v) %d %d", i, bin, lo, hi, r, c)
			}
		}
		if i != 10 {
			t.Errorf("view: %d rows of x, want 10 (one per bin, newest computation only)", i)
		}
	})
	t.Run("docs query", func(t *testing.T) {
		raw, err := os.ReadFile("../docs/tables.md")
		if err != nil {
			t.Fatal(err)
		}
		q := regexp.MustCompile("(?s)```sql\n(-- The reference and current histogram.*?)```").FindSubmatch(raw)
		if q == nil {
			t.Fatal("docs/tables.md has no drift_distributions example")
		}
		got := rowStrings(t, conn, string(q[1]))
		if len(got) != 10 || got[0] != "0 -Inf 9.9  false 10 0 0.1 0" || !strings.HasPrefix(got[9], "9 89.1") || !strings.HasSuffix(got[9], " +Inf  false 10 60 0.1 0.6") {
			t.Errorf("docs/tables.md's histogram query: %q", got)
		}
	})
	for _, tc := range []struct{ path, why string }{
		{"/api/v1/models/dist/features/nope/distribution", "unknown feature"},
		{"/api/v1/models/dist/features/x/distribution?window_end=" + cur.Format(time.RFC3339), "before the first window"},
	} {
		if code, out := call(t, h, "GET", tc.path, ""); code != http.StatusNotFound {
			t.Errorf("%s (%s): %d %v, want 404", tc.path, tc.why, code, out)
		}
	}
	if code, _ := call(t, h, "GET", "/api/v1/models/dist/features/x/distribution?window_end=yesterday", ""); code != http.StatusBadRequest {
		t.Errorf("a bad window_end: %d, want 400", code)
	}
}

// TestConsoleViews fills the tables the console reads with rows written
// by hand and checks each view's answer, its schema in openapi.yaml and
// that its "sql" runs as given.
func TestConsoleViews(t *testing.T) {
	conn, _ := testdb.Open(t, "monitor_views")
	ctx := context.Background()
	end := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	w := func(k int) (string, string) { // window k (1 oldest … 3 newest)
		e := end.Add(time.Duration(k-3) * time.Hour)
		return chsql.Time(e.Add(-time.Hour)), chsql.Time(e)
	}
	exec := func(q string) {
		t.Helper()
		if err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// f1 drifts in windows 2 and 3 (sustained in 3), f2 never; f2 has no
	// psi row in window 1. Data quality: missing_share of f1 in windows 1
	// and 3 (crossed in 3), out_of_range_share of f1 only in window 2.
	var rows []string
	row := func(k int, feature, kind, method string, value, threshold float64, drifted, sustained bool, status string) {
		s, e := w(k)
		rows = append(rows, fmt.Sprintf("('m', %s, %s, '%s', '%s', '%s', %v, %v, %v, %v, '%s', 100, toDateTime64('2026-11-02 00:00:00', 3, 'UTC'))",
			s, e, feature, kind, method, value, threshold, drifted, sustained, status))
	}
	for k := 1; k <= 3; k++ {
		d := k >= 2
		st := "ok"
		if d {
			st = "drifted"
		}
		row(k, "f1", "drift", "psi", 0.1*float64(k), 0.2, d, k == 3, st)
		row(k, "f1", "drift", "verdict", 0, 1, d, k == 3, st)
		row(k, "f2", "drift", "verdict", 0, 1, false, false, "ok")
		if k > 1 {
			row(k, "f2", "drift", "psi", 0.01, 0.2, false, false, "ok")
		}
	}
	row(1, "f1", "data_quality", "missing_share", 0.01, 0.05, false, false, "ok")
	row(3, "f1", "data_quality", "missing_share", 0.3, 0.05, true, false, "drifted")
	row(2, "f1", "data_quality", "out_of_range_share", 0.02, 0.05, false, false, "ok")
	exec("INSERT INTO drift_results (model_id, window_start, window_end, feature, kind, method, value, threshold, drifted, sustained, status, samples, computed_at) VALUES " + strings.Join(rows, ", "))

	tm := func(d time.Duration) string { return chsql.Time(end.Add(d)) }
	exec("INSERT INTO dead_letters (timestamp, received_at, model_id, kind, reason, error, kafka_topic, kafka_partition, kafka_offset) VALUES " +
		"(" + tm(-2*time.Hour) + ", " + tm(-2*time.Hour) + ", 'm', 'inferences', 'missing_field', 'missing prediction', 't', 0, 1), " +
		"(" + tm(-time.Hour) + ", " + tm(-time.Hour) + ", 'm', 'inferences', 'missing_field', 'missing timestamp', 't', 0, 2), " +
		"(" + tm(-30*time.Hour) + ", " + tm(-30*time.Hour) + ", 'm', 'inferences', 'missing_field', 'old', 't', 0, 3), " +
		"(" + tm(-time.Hour) + ", " + tm(-time.Hour) + ", 'm', 'inferences', 'invalid_json', 'bad', 't', 0, 4), " +
		"(" + tm(-time.Hour) + ", " + tm(-time.Hour) + ", 'other', 'inferences', 'invalid_json', 'bad', 't', 0, 5)")
	exec("INSERT INTO training_runs (run_id, model_id, version, parent_version, status, decision, decision_reason, metrics, champion_metrics, diff_lo, diff_hi, started_at, finished_at, updated_at) VALUES " +
		"('r1', 'm', 'v2', 'v1', 'running', '', '', map(), map(), 0, 0, " + tm(-5*time.Hour) + ", NULL, " + tm(-5*time.Hour) + "), " +
		"('r1', 'm', 'v2', 'v1', 'succeeded', 'promote', 'roc_auc +0.04', map('roc_auc', 0.84), map('roc_auc', 0.80), 0.01, 0.07, " + tm(-5*time.Hour) + ", " + tm(-4*time.Hour) + ", " + tm(-4*time.Hour) + "), " +
		"('r2', 'm', 'v3', 'v2', 'rejected', 'reject', 'no gain', map('roc_auc', 0.79, 'log_loss', nan), map('roc_auc', 0.84), -0.08, 0.01, " + tm(-2*time.Hour) + ", " + tm(-time.Hour) + ", " + tm(-time.Hour) + ")")
	exec("INSERT INTO models (model_id, version, status, metrics, feature_importance, created_at, updated_at) VALUES " +
		"('m', 'v1', 'champion', map(), map(), " + tm(-48*time.Hour) + ", " + tm(-48*time.Hour) + "), " +
		"('m', 'v1', 'retired', map(), map(), " + tm(-48*time.Hour) + ", " + tm(-4*time.Hour) + "), " +
		"('m', 'v2', 'champion', map('roc_auc', 0.84), map('f0', 0.75, 'f1', 0.25), " + tm(-4*time.Hour) + ", " + tm(-4*time.Hour) + "), " +
		"('m', 'v3', 'rejected', map('roc_auc', 0.79), map(), " + tm(-time.Hour) + ", " + tm(-time.Hour) + "), " +
		"('registered-only', 'a', 'candidate', map(), map(), " + tm(-time.Hour) + ", " + tm(-time.Hour) + ")")
	exec("INSERT INTO performance_results (model_id, window_start, window_end, metric, value, samples, label_coverage, computed_at) VALUES " +
		"('m', " + tm(-3*time.Hour) + ", " + tm(-2*time.Hour) + ", 'roc_auc', 0.70, 10, 0.1, " + tm(0) + "), " +
		"('m', " + tm(-2*time.Hour) + ", " + tm(-time.Hour) + ", 'roc_auc', 0.81, 50, 0.5, " + tm(0) + "), " +
		"('m', " + tm(-2*time.Hour) + ", " + tm(-time.Hour) + ", 'label_coverage', 0.5, 100, 0.5, " + tm(0) + ")")
	exec("INSERT INTO retrain_triggers (trigger_id, dedup_key, model_id, reason, policy, created_at) VALUES " +
		"('t1', 'k1', 'm', 'feature_drift', 'p', " + tm(-3*time.Hour) + "), ('t2', 'k2', 'm', 'performance', 'p', " + tm(-90*time.Minute) + ")")
	insertRows(t, conn, "m", "fresh", end.Add(-10*time.Minute), 3, time.Minute, "map('f1', 1.0)", "CAST(map(), 'Map(String, String)')")

	s := testSettings(48*time.Hour, DefaultSettings().Policy, nil)
	m, err := New(Options{Settings: s, Conn: conn, TriggerWriter: &recordingWriter{}, Registerer: prometheus.NewRegistry(), Now: func() time.Time { return end }})
	if err != nil {
		t.Fatal(err)
	}
	h := m.API()
	get := func(t *testing.T, path, schemaPath string) map[string]any {
		t.Helper()
		code, out := call(t, h, "GET", path, "")
		if code != http.StatusOK {
			t.Fatalf("%s: %d %v", path, code, out)
		}
		checkSchema(t, schemaPath, out)
		return out
	}

	t.Run("drift-matrix", func(t *testing.T) {
		out := get(t, "/api/v1/models/m/drift-matrix", "/api/v1/models/{model}/drift-matrix")
		if ws, _ := out["windows"].([]any); len(ws) != 3 || ws[0].(map[string]any)["window_end"] != end.Add(-2*time.Hour).Format(time.RFC3339) {
			t.Errorf("windows, oldest first: %v", out["windows"])
		}
		cells, _ := out["cells"].([]any)
		var got []string
		for _, c := range cells {
			c := c.(map[string]any)
			got = append(got, fmt.Sprintf("%s %v %v/%v %v %v %v", c["feature"], c["window_end"].(string)[11:16], c["value"], c["threshold"], c["drifted"], c["sustained"], c["consecutive"]))
		}
		want := []string{
			"f1 22:00 0.1/0.2 false false 0", "f1 23:00 0.2/0.2 true false 1", "f1 00:00 0.30000000000000004/0.2 true true 2",
			"f2 22:00 <nil>/<nil> false false 0", "f2 23:00 0.01/0.2 false false 0", "f2 00:00 0.01/0.2 false false 0",
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("cells\n%v\nwant\n%v", got, want)
		}
		runSQL(t, conn, out, len(cells)+5) // the psi rows (5) and the verdict rows (6)
		out = get(t, "/api/v1/models/m/drift-matrix?windows=2&method=ks", "/api/v1/models/{model}/drift-matrix")
		if ws, _ := out["windows"].([]any); len(ws) != 2 || out["method"] != "ks" {
			t.Errorf("windows=2&method=ks: %v", out)
		}
		if code, _ := call(t, h, "GET", "/api/v1/models/m/drift-matrix?windows=0", ""); code != http.StatusBadRequest {
			t.Errorf("windows=0: %d, want 400", code)
		}
	})
	t.Run("data-quality", func(t *testing.T) {
		out := get(t, "/api/v1/models/m/data-quality", "/api/v1/models/{model}/data-quality")
		var got []string
		for _, r := range out["data_quality"].([]any) {
			r := r.(map[string]any)
			got = append(got, fmt.Sprintf("%s %s %v %v %s", r["feature"], r["method"], r["value"], r["drifted"], r["window_end"]))
		}
		want := []string{"f1 missing_share 0.3 true " + end.Format(time.RFC3339), "f1 out_of_range_share 0.02 false " + end.Add(-time.Hour).Format(time.RFC3339)}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("data quality %v\nwant %v", got, want)
		}
		runSQL(t, conn, out, 2)
	})
	t.Run("dead-letters", func(t *testing.T) {
		out := get(t, "/api/v1/models/m/dead-letters", "/api/v1/models/{model}/dead-letters")
		var got []string
		for _, r := range out["dead_letters"].([]any) {
			r := r.(map[string]any)
			got = append(got, fmt.Sprintf("%s %v %s %s", r["reason"], r["count"], r["newest_event"], r["last_error"]))
		}
		want := []string{"missing_field 2 " + end.Add(-time.Hour).Format(time.RFC3339) + " missing timestamp", "invalid_json 1 " + end.Add(-time.Hour).Format(time.RFC3339) + " bad"}
		if fmt.Sprint(got) != fmt.Sprint(want) || out["total"] != 3.0 {
			t.Errorf("dead letters (the last 24 h of model m) %v, total %v\nwant %v, total 3", got, out["total"], want)
		}
		runSQL(t, conn, out, 2)
		out = get(t, "/api/v1/models/m/dead-letters?from="+end.Add(-48*time.Hour).Format(time.RFC3339), "/api/v1/models/{model}/dead-letters")
		if out["total"] != 4.0 {
			t.Errorf("from 48 h before: total %v, want 4", out["total"])
		}
		if code, _ := call(t, h, "GET", "/api/v1/models/m/dead-letters?from="+end.Format(time.RFC3339)+"&to="+end.Format(time.RFC3339), ""); code != http.StatusBadRequest {
			t.Errorf("from = to: %d, want 400", code)
		}
	})
	t.Run("training-runs", func(t *testing.T) {
		out := get(t, "/api/v1/models/m/training-runs", "/api/v1/models/{model}/training-runs")
		runs, _ := out["training_runs"].([]any)
		if len(runs) != 2 {
			t.Fatalf("%d runs, want 2 (r1's newest row, r2): %v", len(runs), out)
		}
		r2, r1 := runs[0].(map[string]any), runs[1].(map[string]any)
		if r2["run_id"] != "r2" || r2["decision"] != "reject" || r2["diff_lo"] != -0.08 || r2["diff_hi"] != 0.01 ||
			fmt.Sprint(r2["metrics"]) != "map[log_loss:<nil> roc_auc:0.79]" || fmt.Sprint(r2["champion_metrics"]) != "map[roc_auc:0.84]" {
			t.Errorf("r2 (NaN metric as null): %v", r2)
		}
		if r1["run_id"] != "r1" || r1["status"] != "succeeded" || r1["version"] != "v2" || r1["parent_version"] != "v1" || r1["finished_at"] != end.Add(-4*time.Hour).Format(time.RFC3339) {
			t.Errorf("r1 (its newest row): %v", r1)
		}
		runSQL(t, conn, out, 2)
	})
	t.Run("versions", func(t *testing.T) {
		out := get(t, "/api/v1/models/m/versions", "/api/v1/models/{model}/versions")
		var got []string
		for _, v := range out["versions"].([]any) {
			v := v.(map[string]any)
			got = append(got, fmt.Sprint(v["version"], " ", v["status"]))
			if v["version"] == "v2" {
				if fi := fmt.Sprint(v["feature_importance"]); fi != "map[f0:0.75 f1:0.25]" {
					t.Errorf("v2 feature_importance %s, want map[f0:0.75 f1:0.25]", fi)
				}
			}
		}
		if out["champion"] != "v2" || fmt.Sprint(got) != "[v3 rejected v2 champion v1 retired]" {
			t.Errorf("champion %v, versions %v; want v2, [v3 rejected v2 champion v1 retired]", out["champion"], got)
		}
		runSQL(t, conn, out, 3)
	})
	t.Run("overview", func(t *testing.T) {
		out := get(t, "/api/v1/models", "/api/v1/models")
		models, _ := out["models"].([]any)
		if len(models) != 2 {
			t.Fatalf("%d models, want m and registered-only: %v", len(models), out)
		}
		a, b := models[0].(map[string]any), models[1].(map[string]any)
		checks := map[string]any{
			"model_id": "m", "drift_status": DriftSustained, "drifted_features": "[f1]", "sustained_features": "[f1]",
			"data_quality_status": QualityIssues, "data_quality_issues": "[map[check:missing_share feature:f1 value:0.3]]",
			"performance": "map[label_coverage:0.5 roc_auc:0.81]", "label_coverage": 0.5, "performance_window_end": end.Add(-time.Hour).Format(time.RFC3339),
			"newest_inference_minute": end.Add(-8 * time.Minute).Format(time.RFC3339), "last_trigger_at": end.Add(-90 * time.Minute).Format(time.RFC3339),
			"last_trigger_reason": "performance", "champion_version": "v2", "last_window_end": end.Format(time.RFC3339),
		}
		for k, want := range checks {
			got := a[k]
			if _, isString := want.(string); isString {
				if _, gotString := got.(string); !gotString {
					got = fmt.Sprint(got)
				}
			}
			if got != want {
				t.Errorf("m: %s = %v, want %v", k, a[k], want)
			}
		}
		if b["model_id"] != "registered-only" || b["drift_status"] != StatusUnknown || b["data_quality_status"] != StatusUnknown ||
			b["last_window_end"] != nil || b["champion_version"] != "" || b["newest_inference_minute"] != nil {
			t.Errorf("registered-only: %v", b)
		}
		if sqls, _ := out["sql"].([]any); len(sqls) != 5 {
			t.Errorf("overview: %d queries, want 5 whatever the number of models", len(sqls))
		}
		runSQL(t, conn, out, -1)
	})
}

// rowStrings runs q and returns its rows, columns joined by spaces.
func rowStrings(t *testing.T, conn driver.Conn, q string) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var (
			bin          uint32
			lo, hi       float64
			cat          string
			isNew        bool
			r, c         uint64
			rShare, cShr float64
		)
		if err := rows.Scan(&bin, &lo, &hi, &cat, &isNew, &r, &c, &rShare, &cShr); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprint(bin, " ", lo, " ", hi, " ", cat, " ", isNew, " ", r, " ", c, " ", rShare, " ", cShr))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// runSQL runs every query of an answer's "sql" as it is, and checks that
// the last one reads want rows (−1: any number).
func runSQL(t *testing.T, conn driver.Conn, out map[string]any, want int) {
	t.Helper()
	sqls, _ := out["sql"].([]any)
	if len(sqls) == 0 {
		t.Fatalf("no sql in %v", out)
	}
	for i, s := range sqls {
		rows, err := conn.Query(context.Background(), s.(string))
		if err != nil {
			t.Fatalf("sql %q: %v", s, err)
		}
		n := 0
		for rows.Next() {
			n++
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("sql %q: %v", s, err)
		}
		rows.Close()
		if i == len(sqls)-1 && want >= 0 && n != want {
			t.Errorf("sql %q: %d rows, want %d", s, n, want)
		}
	}
}

// checkSchema checks a 200 answer of GET path against its schema in
// openapi.yaml: every required property present, types of the
// properties the schema names (object, array, string, number, integer,
// boolean; null only where nullable), and no property the schema does not
// name.
func checkSchema(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	dig := func(m any, keys ...string) any {
		for _, k := range keys {
			mm, _ := m.(map[string]any)
			m = mm[k]
		}
		return m
	}
	schema := dig(doc, "paths", path, "get", "responses", "200", "content", "application/json", "schema")
	if schema == nil {
		t.Fatalf("openapi.yaml has no 200 schema of GET %s", path)
	}
	var check func(at string, s, v any)
	check = func(at string, s, v any) {
		sm, _ := s.(map[string]any)
		if ref, ok := sm["$ref"].(string); ok {
			check(at, dig(doc, strings.Split(strings.TrimPrefix(ref, "#/"), "/")...), v)
			return
		}
		if v == nil {
			if sm["nullable"] != true {
				t.Errorf("%s: null, and the schema does not say nullable", at)
			}
			return
		}
		typ, _ := sm["type"].(string)
		okType := map[string]bool{
			"object": is[map[string]any](v), "array": is[[]any](v), "string": is[string](v), "boolean": is[bool](v),
			"number": is[float64](v), "integer": is[float64](v) && v.(float64) == math.Trunc(v.(float64)), "": true,
		}[typ]
		if !okType {
			t.Errorf("%s: %v (%T) is not of type %s", at, v, v, typ)
			return
		}
		switch typ {
		case "object":
			obj := v.(map[string]any)
			props, _ := sm["properties"].(map[string]any)
			req, _ := sm["required"].([]any)
			for _, k := range req {
				if _, ok := obj[k.(string)]; !ok {
					t.Errorf("%s: required property %s missing", at, k)
				}
			}
			for k, x := range obj {
				if ps, ok := props[k]; ok {
					check(at+"."+k, ps, x)
				} else if ap, ok := sm["additionalProperties"]; ok {
					check(at+"."+k, ap, x)
				} else {
					t.Errorf("%s: property %s is not in the schema", at, k)
				}
			}
		case "array":
			for i, x := range v.([]any) {
				check(fmt.Sprintf("%s[%d]", at, i), sm["items"], x)
			}
		}
	}
	check(path, schema, v)
}

func is[T any](v any) bool { _, ok := v.(T); return ok }

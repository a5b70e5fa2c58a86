package monitor

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/testcheck"
	"github.com/driftwatch/driftwatch/monitor/policy"
	"github.com/driftwatch/driftwatch/monitor/stat"
)

// insertRows inserts n inferences of model from start, one every step,
// generated inside ClickHouse (INSERT … SELECT FROM numbers): numeric and
// categorical are the expressions of the two feature maps, over number;
// id distinguishes the event ids of several calls.
func insertRows(t *testing.T, conn driver.Conn, model, id string, start time.Time, n int, step time.Duration, numeric, categorical string) {
	t.Helper()
	q := fmt.Sprintf("INSERT INTO inferences (event_id, model_id, model_version, prediction_id, timestamp, features_numeric, features_categorical, prediction_label, prediction_score, ingested_at) "+
		"SELECT concat(%[1]s, '-', %[2]s, '-', toString(number)), %[1]s, '1', concat('p', %[2]s, toString(number)), %[3]s + toIntervalMicrosecond(number * %[4]d), "+
		"%[5]s, %[6]s, if(number %% 3 = 0, 'yes', 'no'), (cityHash64(number, 'score') %% 1000) / 1000, now64(3) FROM numbers(%[7]d)",
		chsql.String(model), chsql.String(id), chsql.Time(start), step.Microseconds(), numeric, categorical, n)
	if err := conn.Exec(context.Background(), q); err != nil {
		t.Fatalf("insert %d rows of %s: %v", n, model, err)
	}
}

// runUntil runs m.Run until done reports true (checked every 200 ms) or
// limit passes, and returns whether done did; limit is where the test
// gives up, not a figure it checks.
func runUntil(t *testing.T, m *Monitor, limit time.Duration, done func() bool) bool {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- m.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if done() {
			return true
		}
	}
	return done()
}

// heapPeak samples the Go heap in use every 10 ms until the returned stop
// is called, which returns the largest figure seen.
func heapPeak() (stop func() uint64) {
	var peak atomic.Uint64
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-quit:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return func() uint64 {
		close(quit)
		wg.Wait()
		return peak.Load()
	}
}

// TestHighCardinalityFeature: model a-ids sends a user id as a categorical
// feature, unique per event, 500,000 of them in the current window (and
// 50,000 in the reference); model b-ok is small and ordinary. The monitor
// (Run, as in production) evaluates both: the Go heap stays under 1 GiB,
// a-ids's user_id has a flagged high_cardinality data-quality row with the
// distinct count, and its category methods are skipped, saying why, while
// its low-cardinality feature plan is still compared; b-ok has its
// results. Then, with a-ids's evaluation_timeout far too small for its
// windows, a-ids is cut off (outcome timeout) and b-ok is evaluated still.
func TestHighCardinalityFeature(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	const refRows, curRows = 50_000, 500_000
	cat := "map('user_id', concat('u', toString(cityHash64(number, %s))), 'plan', ['free', 'pro', 'team'][number %% 3 + 1])"
	num := "map('f1', (cityHash64(number, 'f1') % 1000) / 100)"
	insertRows(t, w.conn, "a-ids", "ref", t0, refRows, time.Hour/refRows, num, fmt.Sprintf(cat, "'ref'"))
	insertRows(t, w.conn, "a-ids", "cur", t0.Add(time.Hour), curRows, time.Hour/curRows, num, fmt.Sprintf(cat, "'cur'"))
	for i, start := range []time.Time{t0, t0.Add(time.Hour)} {
		insertRows(t, w.conn, "b-ok", fmt.Sprint(i), start, 2000, time.Hour/2000, num, "map('plan', ['free', 'pro', 'team'][number % 3 + 1])")
	}
	if n := w.count(t, "SELECT uniqExact(features_categorical['user_id']) FROM inferences WHERE model_id = 'a-ids' AND timestamp >= "+chsql.Time(t0.Add(time.Hour))); n != curRows {
		t.Fatalf("%d distinct user ids in the current window, want %d", n, curRows)
	}
	tw, err := kafkaio.NewWriter(w.kopts, "retrain-triggers")
	if err != nil {
		t.Fatal(err)
	}
	defer tw.Close()
	end := t0.Add(2 * time.Hour)
	newMonitor := func(set Settings) *Monitor {
		t.Helper()
		m, err := New(Options{Settings: set, Conn: w.conn, TriggerWriter: tw, Registerer: prometheus.NewRegistry(),
			Now: func() time.Time { return end.Add(time.Minute) }})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	verdicts := func(model string) uint64 {
		return w.count(t, fmt.Sprintf("SELECT count() FROM drift_results FINAL WHERE model_id = %s AND window_end = %s AND method = 'verdict'", chsql.String(model), chsql.Time(end)))
	}

	set := testSettings(48*time.Hour, policy.Default(), nil)
	m := newMonitor(set)
	runtime.GC()
	stop := heapPeak()
	// An evaluation counts as ok once it has written everything (the
	// verdicts come before the distributions), so wait for the count too.
	finished := runUntil(t, m, 5*time.Minute, func() bool {
		return verdicts("a-ids") > 0 && verdicts("b-ok") > 0 && testutil.ToFloat64(m.evals.WithLabelValues("ok")) >= 2
	})
	peak := stop()
	t.Logf("Go heap in use, peak while both models were evaluated: %.0f MiB", float64(peak)/(1<<20))
	if !finished {
		t.Fatalf("not both models evaluated: verdict rows a-ids %d, b-ok %d", verdicts("a-ids"), verdicts("b-ok"))
	}
	if peak > 1<<30 {
		t.Errorf("Go heap peaked at %d MiB, want at most 1024", peak>>20)
	}
	res, _, err := m.store.LatestResults(ctx, "a-ids", 10_000)
	if err != nil {
		t.Fatal(err)
	}
	var hc *ResultRow
	skipped := map[string]string{}
	for i, r := range res {
		switch {
		case r.Method == policy.CheckHighCardinality:
			if r.Feature != "user_id" {
				t.Errorf("high_cardinality row for %s, only user_id is", r.Feature)
			}
			hc = &res[i]
		case r.Feature == "user_id" && r.Kind == policy.KindDrift:
			skipped[r.Method] = r.Status
		case r.Feature == "plan" && r.Kind == policy.KindDrift && r.Status != policy.StatusOK:
			t.Errorf("plan/%s: status %s, want ok (compared)", r.Method, r.Status)
		}
	}
	// Distinct user ids in the two windows: 550,000 (hashes of distinct
	// pairs; uniqExact checked the current window's above).
	if hc == nil || hc.Value == nil || !testcheck.WithinRel(*hc.Value, refRows+curRows, 0.02, 0) ||
		hc.Kind != policy.KindDataQuality || !hc.Drifted || hc.Status != policy.StatusDrifted || hc.Threshold != float64(set.MaxCategories) {
		t.Errorf("high_cardinality row %+v; want user_id flagged with about %d distinct values, threshold max_categories", hc, refRows+curRows)
	}
	for _, method := range append(slices.Clone(set.Policy.CategoricalMethods), MethodVerdict) {
		if skipped[method] != policy.StatusSkipped {
			t.Errorf("user_id/%s: status %q, want skipped", method, skipped[method])
		}
	}
	notes := w.count(t, fmt.Sprintf("SELECT count() FROM drift_results FINAL WHERE model_id = 'a-ids' AND window_end = %s AND feature = 'user_id' AND method IN (%s) AND status = 'skipped' AND note LIKE '%%high_cardinality%%'",
		chsql.Time(end), "'"+strings.Join(set.Policy.CategoricalMethods, "', '")+"'"))
	if notes != uint64(len(set.Policy.CategoricalMethods)) {
		t.Errorf("%d skipped user_id method rows say why (high_cardinality in the note), want %d", notes, len(set.Policy.CategoricalMethods))
	}
	if n := testutil.ToFloat64(m.evals.WithLabelValues("ok")); n < 2 {
		t.Errorf("%v evaluations ok, want both models'", n)
	}

	// A slow model cut off: a-ids gets 1 ms, which its first query alone
	// takes longer than; b-ok is evaluated all the same.
	if err := w.conn.Exec(ctx, "TRUNCATE TABLE drift_results"); err != nil {
		t.Fatal(err)
	}
	set.Models = map[string]ModelConfig{"a-ids": {EvaluationTimeout: time.Millisecond}}
	m = newMonitor(set)
	timeouts := func() float64 { return testutil.ToFloat64(m.evals.WithLabelValues("timeout")) }
	if !runUntil(t, m, 2*time.Minute, func() bool { return verdicts("b-ok") > 0 && timeouts() > 0 }) {
		t.Fatalf("with a-ids timing out: b-ok verdict rows %d, a-ids timeouts %v; want b-ok evaluated and a-ids cut off", verdicts("b-ok"), timeouts())
	}
	if n := verdicts("a-ids"); n != 0 {
		t.Errorf("a-ids has %d verdict rows though every evaluation of it timed out", n)
	}
}

// hangingConn passes every call to the real connection except queries
// whose text contains hang, which block until their context ends, and
// those containing fail, which fail with errInjected.
type hangingConn struct {
	driver.Conn
	hang, fail string
}

func (c hangingConn) Query(ctx context.Context, q string, args ...any) (driver.Rows, error) {
	if strings.Contains(q, c.hang) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if strings.Contains(q, c.fail) {
		return nil, errInjected
	}
	return c.Conn.Query(ctx, q, args...)
}

func (c hangingConn) QueryRow(ctx context.Context, q string, args ...any) driver.Row {
	if strings.Contains(q, c.hang) {
		<-ctx.Done()
		return failedRow{}
	}
	if strings.Contains(q, c.fail) {
		return failedRow{}
	}
	return c.Conn.QueryRow(ctx, q, args...)
}

// TestHangingModelDoesNotStopOthers: of three models, a-hang's queries
// never answer (until their context ends), b-fail's fail, c-ok is fine.
// Run evaluates c-ok and writes its results although a-hang, first in
// order, never finishes; a-hang is cut off at its deadline (outcome
// timeout) and b-fail's failure is counted (outcome error).
func TestHangingModelDoesNotStopOthers(t *testing.T) {
	w := newWorld(t)
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	num := "map('f1', (cityHash64(number, 'f1') % 1000) / 100)"
	for _, model := range []string{"a-hang", "b-fail", "c-ok"} {
		for i, start := range []time.Time{t0, t0.Add(time.Hour)} {
			insertRows(t, w.conn, model, fmt.Sprint(i), start, 1000, time.Hour/1000, num, "map('plan', ['free', 'pro'][number % 2 + 1])")
		}
	}
	end := t0.Add(2 * time.Hour)
	set := testSettings(48*time.Hour, policy.Default(), nil)
	set.EvaluationTimeout = 3 * time.Second
	m, err := New(Options{Settings: set, Conn: hangingConn{Conn: w.conn, hang: "'a-hang'", fail: "'b-fail'"}, TriggerWriter: &recordingWriter{},
		Registerer: prometheus.NewRegistry(), Now: func() time.Time { return end.Add(time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	okRows := func() uint64 {
		return w.count(t, "SELECT count() FROM drift_results FINAL WHERE model_id = 'c-ok' AND method = 'verdict' AND window_end = "+chsql.Time(end))
	}
	timeouts := func() float64 { return testutil.ToFloat64(m.evals.WithLabelValues("timeout")) }
	errs := func() float64 { return testutil.ToFloat64(m.evals.WithLabelValues("error")) }
	if !runUntil(t, m, 2*time.Minute, func() bool { return okRows() > 0 && timeouts() > 0 && errs() > 0 }) {
		t.Fatalf("c-ok verdict rows %d, a-hang timeouts %v, b-fail errors %v; want c-ok evaluated, a-hang cut off, b-fail counted", okRows(), timeouts(), errs())
	}
}

// TestWideConfiguration: bins 50 and max_features 260 on a model with 260
// numeric features named with 60 bytes each — a valid configuration whose
// bin query, written whole, is larger than ClickHouse's max_query_size
// (262,144 bytes). The evaluation succeeds and compares every feature.
func TestWideConfiguration(t *testing.T) {
	w := newWorld(t)
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	const features = 260
	name := "concat('feature_', leftPad(toString(i), 3, '0'), '_', repeat('x', 48))" // 60 bytes
	num := fmt.Sprintf("mapFromArrays(arrayMap(i -> %s, range(%d)), arrayMap(i -> toFloat64(cityHash64(number, i) %% 1000) / 10, range(%d)))", name, features, features)
	for i, start := range []time.Time{t0, t0.Add(time.Hour)} {
		insertRows(t, w.conn, "wide", fmt.Sprint(i), start, 500, time.Hour/500, num, "map('plan', ['free', 'pro'][number % 2 + 1])")
	}
	set := testSettings(48*time.Hour, policy.Default(), nil)
	set.Bins, set.MaxFeatures = 50, features
	m, err := New(Options{Settings: set, Conn: w.conn, TriggerWriter: &recordingWriter{}, Registerer: prometheus.NewRegistry(),
		Now: func() time.Time { return t0.Add(3 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Evaluate(context.Background(), "wide", t0.Add(2*time.Hour))
	if err != nil {
		t.Fatalf("evaluate with bins 50 and %d features of 60-byte names: %v", features, err)
	}
	if res.Skipped != "" {
		t.Fatalf("skipped: %s", res.Skipped)
	}
	psi := 0
	for _, n := range res.Snapshot.Numeric {
		if len(n.Feature) != 60 && n.Feature != "__score" {
			t.Errorf("feature %q: %d bytes, want 60", n.Feature, len(n.Feature))
		}
		var in, cur int64
		for j := range n.RefBins {
			in, cur = in+n.RefBins[j], cur+n.CurBins[j]
		}
		if in != n.RefN || cur != n.CurN || n.RefN != 500 || n.CurN != 500 || len(n.RefValues) == 0 {
			t.Errorf("%s: bins hold %d/%d rows of %d/%d (want 500 each) and %d sample values", n.Feature, in, cur, n.RefN, n.CurN, len(n.RefValues))
		}
	}
	for _, r := range res.Verdict.Rows {
		if r.Method == stat.MethodPSI && r.Kind == policy.KindDrift && r.Status != policy.StatusInsufficient && !math.IsNaN(r.Value) {
			psi++
		}
	}
	if len(res.Snapshot.Numeric) != features+1 || psi != features+1 {
		t.Errorf("%d numeric features aggregated and %d PSI results, want %d each (and the score)", len(res.Snapshot.Numeric), psi, features+1)
	}
}

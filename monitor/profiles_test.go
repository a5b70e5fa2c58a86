package monitor

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/internal/testcheck"
	"github.com/driftwatch/driftwatch/monitor/policy"
	"github.com/driftwatch/driftwatch/monitor/window"
)

func psiOf(t *testing.T, res Result, feature string) float64 {
	t.Helper()
	for _, r := range res.Verdict.Rows {
		if r.Feature == feature && r.Method == "psi" {
			return r.Value
		}
	}
	t.Fatalf("no psi row for %s in %d rows", feature, len(res.Verdict.Rows))
	return math.NaN()
}

// TestReferenceSurvives: a model's first reference period is persisted when
// first complete. After its rows are gone (as the TTL removes them), a
// forged event dated a month earlier arrived, and the monitor restarted,
// drift is still measured against the same aggregates; an operator can
// re-pin it; a reference with no rows is a data-quality result and a
// gauge the alert reads.
func TestReferenceSurvives(t *testing.T) {
	w := newWorld(t)
	w.numeric = 3
	w.start = time.Now().UTC().Truncate(time.Hour).Add(-4 * time.Hour)
	w.fill(t, 3, 2000, "mean_shift:f1:1.5@+2h")
	ctx := context.Background()
	set := testSettings(48*time.Hour, policy.Default(), nil)
	newMonitor := func(set Settings) *Monitor {
		m, err := New(Options{Settings: set, Conn: w.conn, TriggerWriter: &recordingWriter{}, Registerer: prometheus.NewRegistry(),
			Now: func() time.Time { return w.start.Add(4 * time.Hour) }})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	end := w.start.Add(3 * time.Hour)
	first := window.Span{Start: w.start, End: w.start.Add(time.Hour)}

	m := newMonitor(set)
	res, err := m.Evaluate(ctx, "model-0", end)
	if err != nil || res.Skipped != "" || res.Reference != ReferencePinned || !slices.Contains(res.Verdict.Drifted, "f1") {
		t.Fatalf("first evaluation: %v, skipped %q, reference %q, drifted %v; want pinned with f1 drifted", err, res.Skipped, res.Reference, res.Verdict.Drifted)
	}
	before := psiOf(t, res, "f1")
	p, ok, err := m.store.ReferenceProfile(ctx, "model-0")
	if err != nil || !ok || p.Source != ProfileFirst || !sameSpan(p.Span(), first) || p.Rows != 2000 || p.NumericFeatures == 0 {
		t.Fatalf("profile %+v, %v, %v; want source first over %s with 2000 rows", p, ok, err, first)
	}

	// The reference's rows expire; a forged event a month older arrives.
	if err := w.conn.Exec(ctx, "ALTER TABLE inferences DELETE WHERE timestamp < "+chsql.Time(first.End)+" SETTINGS mutations_sync = 2"); err != nil {
		t.Fatal(err)
	}
	if err := w.conn.Exec(ctx, "INSERT INTO inferences (event_id, model_id, model_version, prediction_id, timestamp, features_numeric, ingested_at) VALUES ('forged', 'model-0', 'v1', 'forged', "+
		chsql.Time(w.start.Add(-30*24*time.Hour))+", map('f1', 1e6), now64(3))"); err != nil {
		t.Fatal(err)
	}
	if n := w.count(t, "SELECT count() FROM inferences FINAL WHERE timestamp >= "+chsql.Time(first.Start)+" AND timestamp < "+chsql.Time(first.End)); n != 0 {
		t.Fatalf("%d reference rows left after the delete", n)
	}

	m2 := newMonitor(set) // a restart
	res, err = m2.Evaluate(ctx, "model-0", end)
	if err != nil || res.Skipped != "" || res.Reference != ReferencePinned {
		t.Fatalf("after TTL, a forged event and a restart: %v, skipped %q, reference %q; want pinned", err, res.Skipped, res.Reference)
	}
	if !sameSpan(res.Snapshot.Reference, first) || res.Snapshot.RefRows != 2000 {
		t.Errorf("reference %s with %d rows, want %s with 2000", res.Snapshot.Reference, res.Snapshot.RefRows, first)
	}
	if after := psiOf(t, res, "f1"); !testcheck.Within(after, before, 1e-9) {
		t.Errorf("PSI of f1 against the persisted reference %v, against the original %v", after, before)
	}
	if v := testutil.ToFloat64(m2.refMissing.WithLabelValues("model-0")); v != 0 {
		t.Errorf("reference_missing gauge %v while the reference is persisted", v)
	}

	// An operator re-pins it to the second hour (no shift in it either).
	second := window.Span{Start: w.start.Add(time.Hour), End: w.start.Add(2 * time.Hour)}
	sp, err := SetReference(ctx, w.conn, set, "model-0", second, "test@host", w.start.Add(4*time.Hour).Add(time.Minute))
	if err != nil || sp.Source != ProfileSet || sp.Rows != 2000 {
		t.Fatalf("SetReference: %+v, %v", sp, err)
	}
	res, err = m2.Evaluate(ctx, "model-0", end)
	if err != nil || res.Reference != ReferenceOperator || !sameSpan(res.Snapshot.Reference, second) || !slices.Contains(res.Verdict.Drifted, "f1") {
		t.Fatalf("after reference set: %v, reference %q %s, drifted %v; want set %s with f1 drifted", err, res.Reference, res.Snapshot.Reference, res.Verdict.Drifted, second)
	}
	if _, err := SetReference(ctx, w.conn, set, "model-0", first, "test@host", w.start.Add(5*time.Hour)); err == nil {
		t.Error("SetReference over a period without rows succeeded")
	}

	// A first period too sparse to be a baseline (3 rows, min_samples 100)
	// is used but not persisted.
	var vals []string
	for i := range 3 {
		vals = append(vals, fmt.Sprintf("('s%d', 'sparse', 'v1', 's%d', %s, map('f1', %d), now64(3))", i, i, chsql.Time(w.start.Add(-30*time.Hour+time.Duration(i)*time.Minute)), i))
	}
	for i := range 300 {
		vals = append(vals, fmt.Sprintf("('c%d', 'sparse', 'v1', 'c%d', %s, map('f1', %d), now64(3))", i, i, chsql.Time(end.Add(-time.Duration(i+1)*10*time.Second)), i%7))
	}
	if err := w.conn.Exec(ctx, "INSERT INTO inferences (event_id, model_id, model_version, prediction_id, timestamp, features_numeric, ingested_at) VALUES "+strings.Join(vals, ", ")); err != nil {
		t.Fatal(err)
	}
	res, err = m2.Evaluate(ctx, "sparse", end)
	if err != nil || res.Reference != ReferencePinned || res.Snapshot.RefRows != 3 {
		t.Fatalf("sparse model: %v, reference %q, %d reference rows", err, res.Reference, res.Snapshot.RefRows)
	}
	if _, ok, err := m2.store.ReferenceProfile(ctx, "sparse"); ok || err != nil {
		t.Errorf("a 3-row reference was persisted (%v)", err)
	}

	// A fixed reference with no rows: a data-quality result and the gauge.
	set.Models = map[string]ModelConfig{"model-0": {ReferenceStart: first.Start, ReferenceEnd: first.End}}
	m3 := newMonitor(set)
	res, err = m3.Evaluate(ctx, "model-0", end)
	if err != nil || res.Skipped == "" || res.Reference != ReferenceFixed {
		t.Fatalf("fixed reference without rows: %v, skipped %q, reference %q", err, res.Skipped, res.Reference)
	}
	if v := testutil.ToFloat64(m3.refMissing.WithLabelValues("model-0")); v != 1 {
		t.Errorf("driftwatch_reference_missing{model-0} = %v, want 1", v)
	}
	if n := w.count(t, "SELECT count() FROM drift_results FINAL WHERE model_id = 'model-0' AND kind = 'data_quality' AND method = 'reference_missing' AND sustained AND window_end = "+chsql.Time(end)); n != 1 {
		t.Errorf("%d reference_missing rows, want 1", n)
	}
}

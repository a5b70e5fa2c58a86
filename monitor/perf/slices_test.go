package perf

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/internal/testcheck"
)

// TestSlicesAgreeWithFilteredWindows slices the golden datasets by
// model_version (slice "version=v1" and "version=v2") and checks, for the
// binary, multiclass and regression cases, that the population of
// ComputeSlices is Compute's and that every slice's counts, coverage,
// delays and metrics (ROC AUC, the macro averages and the confusion
// matrix included) equal Compute restricted to that version by its WHERE
// clause (Options.Version): the grouped queries against the filtered
// ones. The slices' sums add up to the population's.
func TestSlicesAgreeWithFilteredWindows(t *testing.T) {
	g := loadGolden(t)
	conn := openDB(t)
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-48 * time.Hour)
	w := Span{Start: t0, End: t0.Add(time.Duration(g.WindowMS) * time.Millisecond)}
	horizon := time.Duration(g.HorizonMS) * time.Millisecond
	for _, c := range g.Cases {
		insertInferences(t, conn, c, t0)
		insertOutcomes(t, conn, c, t0, func(int) bool { return true })
	}
	sl := Slices{Names: []string{"version=v1", "version=v2"},
		Expr: "arrayFilter(x -> x > 0, [transform(model_version, ['v1', 'v2'], CAST([1, 2], 'Array(UInt32)'), toUInt32(0))])"}
	same := func(a, b float64) bool {
		return (math.IsNaN(a) && math.IsNaN(b)) || testcheck.WithinRel(a, b, 1e-12, 1e-15)
	}
	check := func(t *testing.T, what string, got, want Result) {
		t.Helper()
		if got.Inferences != want.Inferences || got.Labelled != want.Labelled || !same(got.LabelCoverage, want.LabelCoverage) {
			t.Errorf("%s: inferences/labelled/coverage %d/%d/%v, want %d/%d/%v", what, got.Inferences, got.Labelled, got.LabelCoverage, want.Inferences, want.Labelled, want.LabelCoverage)
		}
		if !same(got.LabelDelay.P50, want.LabelDelay.P50) || !same(got.LabelDelay.P99, want.LabelDelay.P99) {
			t.Errorf("%s: delays %+v, want %+v", what, got.LabelDelay, want.LabelDelay)
		}
		if len(got.Metrics) != len(want.Metrics) {
			t.Fatalf("%s: %d metrics, want %d", what, len(got.Metrics), len(want.Metrics))
		}
		for i, m := range want.Metrics {
			g := got.Metrics[i]
			if g.Name != m.Name || g.Status != m.Status || g.Samples != m.Samples || !same(g.Value, m.Value) {
				t.Errorf("%s: %+v, want %+v", what, g, m)
			}
		}
	}
	for _, c := range g.Cases {
		t.Run(c.Name, func(t *testing.T) {
			ctx := context.Background()
			opts := c.options(horizon)
			pop, slices, err := ComputeSlices(ctx, conn, c.Model, w, opts, sl)
			if err != nil {
				t.Fatal(err)
			}
			want, err := Compute(ctx, conn, c.Model, w, opts)
			if err != nil {
				t.Fatal(err)
			}
			check(t, "population", pop, want)
			if len(slices) != 2 {
				t.Fatalf("%d slices, want 2", len(slices))
			}
			for i, v := range []string{"v1", "v2"} {
				o := opts
				o.Version = v
				want, err := Compute(ctx, conn, c.Model, w, o)
				if err != nil {
					t.Fatal(err)
				}
				if slices[i].Segment != "version="+v {
					t.Errorf("slice %d is %q", i, slices[i].Segment)
				}
				check(t, slices[i].Segment, slices[i], want)
			}
			for _, s := range pop.Sums {
				a, _ := slices[0].Sum(s.Metric)
				b, _ := slices[1].Sum(s.Metric)
				if a.N+b.N != s.N || !testcheck.WithinRel(a.Total+b.Total, s.Total, 1e-12, 1e-12) {
					t.Errorf("%s: slices' sums %d/%v and %d/%v, population %d/%v", s.Metric, a.N, a.Total, b.N, b.Total, s.N, s.Total)
				}
			}
		})
	}
}

package model

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/arrow/memory"
)

// uniqueFeatureRows is five events with 2,000 feature names each that no
// other event has (half numeric, half categorical): 10,000 features, each
// in one row. Uncapped, the design matrix would be 10,000 columns wide and
// one worker's Hessian alone 800 MB.
func uniqueFeatureRows() []row {
	rows := make([]row, 5)
	for i := range rows {
		r := row{num: map[string]float64{}, cat: map[string]string{}}
		for j := range 1000 {
			r.num[fmt.Sprintf("n%d_%04d", i, j)] = float64(j % 7)
			r.cat[fmt.Sprintf("c%d_%04d", i, j)] = fmt.Sprintf("v%d", j%3)
		}
		r.label = ptr([]string{"yes", "no"}[i%2])
		r.value = ptr(float64(i))
		rows[i] = r
	}
	return rows
}

// TestMaxFeaturesBoundsTheDesignMatrix: with 10,000 distinct features the
// preprocessor keeps at most max_features columns, the trainers' design
// matrix is that wide, and training allocates a bounded amount of memory
// (TotalAlloc, a memory bound: 200 MiB where the uncapped Hessians alone
// would be gigabytes).
func TestMaxFeaturesBoundsTheDesignMatrix(t *testing.T) {
	recs := buildRecords(t, memory.NewGoAllocator(), uniqueFeatureRows(), 5)
	for _, tc := range []struct {
		name   string
		target Target
		max    int // 0: the default
	}{
		{"logistic, default cap", classTarget, 0},
		{"logistic, max_features 50", classTarget, 50},
		{"ridge, max_features 7", Target{Task: Regression}, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.max
			if want == 0 {
				want = DefaultMaxFeatures
			}
			opts := PreprocessOptions{MaxFeatures: tc.max, MissingIndicators: true}
			pp, err := FitPreprocessor(context.Background(), Records(recs...), tc.target, opts)
			if err != nil {
				t.Fatal(err)
			}
			if cols := pp.Columns(); len(cols) > want {
				t.Fatalf("%d columns, want at most %d", len(cols), want)
			} else if len(cols) < want-1 { // a numeric feature with its indicator may not fit the last column
				t.Errorf("%d columns, want the budget of %d used", len(cols), want)
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			m, rep, err := Train(context.Background(), Records(recs...), Config{Target: tc.target, Preprocess: opts, Workers: 2})
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatal(err)
			}
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d columns, %d iterations, %.1f MiB allocated", rep.Columns, rep.Iterations, float64(alloc)/(1<<20))
			if rep.Columns > want || len(m.Coef) != rep.Columns || len(m.Columns) != rep.Columns {
				t.Errorf("design matrix %d columns (%d coefficients), want at most %d", rep.Columns, len(m.Coef), want)
			}
			if alloc > 200<<20 {
				t.Errorf("training allocated %d MiB, want at most 200 MiB", alloc>>20)
			}
		})
	}
}

// TestMaxFeaturesKeepsTheMostFrequent works the choice out by hand: a is
// in 4 rows, b in 3, colour in 3 (red twice, blue once), rare in 1. With 4
// columns: a, b, colour's "other" column, then the one category left,
// red; rare and blue do not fit. Below the budget nothing changes.
func TestMaxFeaturesKeepsTheMostFrequent(t *testing.T) {
	yes, no := ptr("yes"), ptr("no")
	train := []row{
		{num: map[string]float64{"a": 1, "b": 2}, cat: map[string]string{"colour": "red"}, label: yes},
		{num: map[string]float64{"a": 2, "b": 1}, cat: map[string]string{"colour": "red"}, label: no},
		{num: map[string]float64{"a": 3, "b": 0, "rare": 5}, cat: map[string]string{"colour": "blue"}, label: yes},
		{num: map[string]float64{"a": 4}, cat: map[string]string{}, label: no},
	}
	recs := buildRecords(t, memory.NewGoAllocator(), train, 4)
	for _, tc := range []struct {
		max  int
		want []string
	}{
		{4, []string{"a", "b", "colour=red", "colour:other"}},
		{2, []string{"a", "b"}},
		{3, []string{"a", "b", "colour:other"}},
		{0, []string{"a", "b", "rare", "colour=red", "colour=blue", "colour:other"}},
	} {
		pp, err := FitPreprocessor(context.Background(), Records(recs...), classTarget, PreprocessOptions{MaxFeatures: tc.max})
		if err != nil {
			t.Fatal(err)
		}
		if got := pp.Columns(); !slices.Equal(got, tc.want) {
			t.Errorf("max_features %d: columns %s, want %s", tc.max, strings.Join(got, ","), strings.Join(tc.want, ","))
		}
	}
	if _, err := FitPreprocessor(context.Background(), Records(recs...), classTarget, PreprocessOptions{MaxFeatures: -1}); err == nil {
		t.Error("max_features -1 accepted")
	}
}

package testcheck

import (
	"fmt"
	"math"
	"testing"
)

func TestComparisonsRejectNaN(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name string
		ok   bool
		want bool
	}{
		{"within", Within(1.05, 1, 0.1), true},
		{"not within", Within(1.2, 1, 0.1), false},
		{"within, NaN got", Within(nan, 1, 0.1), false},
		{"within, NaN want", Within(1, nan, 0.1), false},
		{"within, infinite tolerance, NaN got", Within(nan, 1, math.Inf(1)), false},
		{"rel: 1% of 100 plus 0", WithinRel(100.9, 100, 0.01, 0), true},
		{"rel: beyond", WithinRel(101.1, 100, 0.01, 0), false},
		{"rel: NaN", WithinRel(nan, 100, 0.01, 1e-12), false},
		{"scaled: absolute below 1", WithinScaled(0.5+9e-5, 0.5, 1e-4), true},
		{"scaled: relative above 1", WithinScaled(1000.09, 1000, 1e-4), true},
		{"scaled: beyond", WithinScaled(1000.2, 1000, 1e-4), false},
		{"scaled: NaN", WithinScaled(nan, 1000, 1e-4), false},
		{"at most", AtMost(1, 1), true},
		{"at most: above", AtMost(1.1, 1), false},
		{"at most: NaN", AtMost(nan, 1), false},
		{"at most: NaN bound", AtMost(1, nan), false},
		{"at least", AtLeast(1, 1), true},
		{"at least: below", AtLeast(0.9, 1), false},
		{"at least: NaN", AtLeast(nan, 1), false},
		{"between", Between(0.5, 0, 1), true},
		{"between: outside", Between(1.5, 0, 1), false},
		{"between: NaN", Between(nan, 0, 1), false},
		{"max diff", MaxAbsDiff([]float64{1, 2, 3}, []float64{1, 2.5, 2}) == 1, true},
		{"max diff: NaN first", math.IsNaN(MaxAbsDiff([]float64{nan, 2}, []float64{1, 2})), true},
		{"max diff: NaN last", math.IsNaN(MaxAbsDiff([]float64{1, 2}, []float64{1, nan})), true},
		{"max diff: +Inf against +Inf", math.IsNaN(MaxAbsDiff([]float64{math.Inf(1)}, []float64{math.Inf(1)})), true},
		{"max diff: lengths", math.IsInf(MaxAbsDiff([]float64{1}, []float64{1, 2}), 1), true},
		{"max diff: NaN fails a bound", AtMost(MaxAbsDiff([]float64{nan}, []float64{0}), 1), false},
	} {
		if tc.ok != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, tc.ok, tc.want)
		}
	}
}

// recorder is a testing.TB that counts the errors reported to it.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func TestCloseReports(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name string
		run  func(tb testing.TB) bool
		ok   bool
	}{
		{"close", func(tb testing.TB) bool { return Close(tb, "x", 1+1e-13, 1, 1e-12) }, true},
		{"far", func(tb testing.TB) bool { return Close(tb, "x", 1.1, 1, 1e-12) }, false},
		{"NaN", func(tb testing.TB) bool { return Close(tb, "x", nan, 1, math.Inf(1)) }, false},
		{"all close", func(tb testing.TB) bool { return AllClose(tb, "v", []float64{1, 2}, []float64{1, 2 + 1e-13}, 1e-12) }, true},
		{"one far", func(tb testing.TB) bool { return AllClose(tb, "v", []float64{1, 2}, []float64{1, 3}, 1e-12) }, false},
		{"one NaN", func(tb testing.TB) bool { return AllClose(tb, "v", []float64{nan, 2}, []float64{1, 2}, 1) }, false},
		{"lengths", func(tb testing.TB) bool { return AllClose(tb, "v", []float64{1}, []float64{1, 2}, 1) }, false},
		{"both empty", func(tb testing.TB) bool { return AllClose(tb, "v", nil, []float64{}, 0) }, true},
	} {
		r := &recorder{TB: t}
		if ok := tc.run(r); ok != tc.ok || (len(r.errors) == 0) != tc.ok {
			t.Errorf("%s: returned %v with errors %q, want %v", tc.name, ok, r.errors, tc.ok)
		}
	}
}

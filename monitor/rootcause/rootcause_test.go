package rootcause

import (
	"errors"
	"math"
	"testing"

	"github.com/driftwatch/driftwatch/internal/testcheck"
	"github.com/driftwatch/driftwatch/monitor/stat"
)

// TestDecomposeSumsToPSI: for a within-slice shift, a mix shift and both
// at once, the contributions sum to stat.PSI of the population (the figure
// the monitor reports), and the dominant part names the change.
func TestDecomposeSumsToPSI(t *testing.T) {
	// Two bins, three slices of 100 rows each in the reference. a's rows
	// are all in bin 0, b's in bin 1, c's half and half.
	ref := map[string][]int64{"a": {100, 0}, "b": {0, 100}, "c": {50, 50}}
	tests := []struct {
		name string
		cur  map[string][]int64
		top  string
		kind string
	}{
		// c moves to bin 1 entirely; its share stays 1/3: within.
		{name: "within", cur: map[string][]int64{"a": {100, 0}, "b": {0, 100}, "c": {0, 100}}, top: "c", kind: KindWithin},
		// b doubles its rows, none of the slices' distributions moves: mix.
		{name: "mix", cur: map[string][]int64{"a": {100, 0}, "b": {0, 200}, "c": {50, 50}}, top: "b", kind: KindMix},
		// Both at once: only the sum is checked.
		{name: "both", cur: map[string][]int64{"a": {100, 0}, "b": {0, 300}, "c": {10, 90}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pr, pc := make([]int64, 2), make([]int64, 2)
			var slices []Slice
			for _, n := range []string{"a", "b", "c"} {
				slices = append(slices, Slice{Name: n, Ref: ref[n], Cur: tt.cur[n]})
				for b := range 2 {
					pr[b] += ref[n][b]
					pc[b] += tt.cur[n][b]
				}
			}
			want, err := stat.PSI(stat.Counts{Reference: pr, Current: pc})
			if err != nil {
				t.Fatal(err)
			}
			psi, cs, err := Decompose(pr, pc, slices)
			if err != nil {
				t.Fatal(err)
			}
			var sum float64
			for _, c := range cs {
				sum += c.Total
				if !testcheck.WithinRel(c.Mix+c.Within, c.Total, 1e-12, 1e-15) {
					t.Errorf("%s: mix %g + within %g != total %g", c.Segment, c.Mix, c.Within, c.Total)
				}
			}
			if !testcheck.WithinRel(psi, want.Value, 1e-12, 1e-15) || !testcheck.WithinRel(sum, want.Value, 1e-12, 1e-15) {
				t.Errorf("psi %g, contributions sum to %g, stat.PSI %g", psi, sum, want.Value)
			}
			if tt.top != "" && (cs[0].Segment != tt.top || cs[0].Kind() != tt.kind) {
				t.Errorf("top contribution %+v, want %s (%s)", cs[0], tt.top, tt.kind)
			}
		})
	}
}

// TestDecomposeHandComputed checks the "mix" case against a hand
// computation: population 150/150 → 150/250 (bin 0/bin 1); with the 0.5
// smoothing p0 = (150.5/301, 150.5/301), p1 = (150.5/401, 250.5/401).
// L(0) = ln((150.5/401)/(150.5/301)) = ln(301/401), L(1) = ln((250.5/401)/(150.5/301)).
// b's share moves from 100/301 to 200/401 with q0(b) = (0, 1): mix of b =
// (200/401 − 100/301)·L(1); within of b = 0; a and c keep their
// distributions, so their within is 0 and their mix is their share's
// change times their q0·L.
func TestDecomposeHandComputed(t *testing.T) {
	pr, pc := []int64{150, 150}, []int64{150, 250}
	_, cs, err := Decompose(pr, pc, []Slice{{"a", []int64{100, 0}, []int64{100, 0}}, {"b", []int64{0, 100}, []int64{0, 200}}, {"c", []int64{50, 50}, []int64{50, 50}}})
	if err != nil {
		t.Fatal(err)
	}
	l0, l1 := math.Log(301.0/401), math.Log((250.5/401)/(150.5/301))
	want := map[string][2]float64{
		"a": {(100.0/401 - 100.0/301) * l0, 0},
		"b": {(200.0/401 - 100.0/301) * l1, 0},
		"c": {(100.0/401 - 100.0/301) * (l0 + l1) / 2, 0},
	}
	for _, c := range cs {
		w, ok := want[c.Segment]
		if !ok {
			continue
		}
		if !testcheck.WithinRel(c.Mix, w[0], 1e-12, 1e-15) || !testcheck.Within(c.Within, w[1], 1e-12) {
			t.Errorf("%s: mix %g within %g, want %g and %g", c.Segment, c.Mix, c.Within, w[0], w[1])
		}
	}
}

func TestDecomposeRejectsOverlap(t *testing.T) {
	_, _, err := Decompose([]int64{10, 10}, []int64{10, 10}, []Slice{{"a", []int64{11, 0}, []int64{0, 0}}})
	if !errors.Is(err, ErrNotPartition) {
		t.Errorf("error %v, want ErrNotPartition", err)
	}
}

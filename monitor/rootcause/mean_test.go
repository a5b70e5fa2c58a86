package rootcause

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/driftwatch/driftwatch/internal/testcheck"
)

// TestDecomposeMeanSumsToChange: for accuracy counts of three slices and
// a rest, under a drop inside one slice, a mix shift towards the worst
// slice, both at once and random sums, the contributions sum to the
// population's change in accuracy computed directly from its own counts,
// and the dominant part names the change.
func TestDecomposeMeanSumsToChange(t *testing.T) {
	// Reference: a 400 rows at 0.9, b 400 at 0.8, c 200 at 0.5, rest 100 at 0.7.
	ref := map[string]MeanSums{"a": {400, 360}, "b": {400, 320}, "c": {200, 100}, RestSegment: {100, 70}}
	tests := []struct {
		name string
		cur  map[string]MeanSums
		top  string
		kind string
	}{
		// b's accuracy falls to 0.5, the shares stay: within b.
		{name: "within", cur: map[string]MeanSums{"a": {400, 360}, "b": {400, 200}, "c": {200, 100}, RestSegment: {100, 70}}, top: "b", kind: KindWithin},
		// c (the worst) triples its rows at its own accuracy: mix c.
		{name: "mix", cur: map[string]MeanSums{"a": {400, 360}, "b": {400, 320}, "c": {600, 300}, RestSegment: {100, 70}}, top: "c", kind: KindMix},
		{name: "both", cur: map[string]MeanSums{"a": {100, 50}, "b": {900, 810}, "c": {0, 0}, RestSegment: {30, 3}}},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for k := range 20 {
		cur := map[string]MeanSums{}
		for _, n := range []string{"a", "b", "c", RestSegment} {
			rows := int64(rng.IntN(1000))
			if k == 0 && n == "a" {
				rows = 0
			}
			cur[n] = MeanSums{rows, float64(rows) * rng.Float64()}
		}
		if cur["b"].N == 0 {
			cur["b"] = MeanSums{1, 1}
		}
		tests = append(tests, struct {
			name string
			cur  map[string]MeanSums
			top  string
			kind string
		}{name: "random", cur: cur})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pr, pc MeanSums
			var slices []MeanSlice
			for _, n := range []string{"a", "b", "c", RestSegment} {
				pr.N, pr.Sum = pr.N+ref[n].N, pr.Sum+ref[n].Sum
				pc.N, pc.Sum = pc.N+tt.cur[n].N, pc.Sum+tt.cur[n].Sum
				if n != RestSegment {
					slices = append(slices, MeanSlice{Name: n, Ref: ref[n], Cur: tt.cur[n]})
				}
			}
			want := pc.Sum/float64(pc.N) - pr.Sum/float64(pr.N)
			delta, cs, err := DecomposeMean(pr, pc, slices)
			if err != nil {
				t.Fatal(err)
			}
			if len(cs) != 4 {
				t.Fatalf("%d contributions, want 3 slices and the rest", len(cs))
			}
			var sum float64
			for _, c := range cs {
				sum += c.Total
				if !testcheck.Within(c.Mix+c.Within, c.Total, 1e-15) {
					t.Errorf("%s: mix %g + within %g != total %g", c.Segment, c.Mix, c.Within, c.Total)
				}
			}
			if !testcheck.Within(delta, want, 1e-14) || !testcheck.Within(sum, want, 1e-12) {
				t.Errorf("change %g, contributions sum to %g, population change %g", delta, sum, want)
			}
			if tt.top != "" && (cs[0].Segment != tt.top || cs[0].Kind() != tt.kind) {
				t.Errorf("top contribution %+v, want %s (%s)", cs[0], tt.top, tt.kind)
			}
		})
	}
}

// TestDecomposeMeanHandComputed checks the "within" and "mix" cases of
// TestDecomposeMeanSumsToChange against the formula written out by hand.
// Within: N = 1100 in both windows; b's share 400/1100 stays, its accuracy
// goes 0.8 → 0.5: within(b) = (400/1100)·(0.5 − 0.8), mix(b) = 0, and the
// population's change is (−120)/1100. Mix: N goes 1100 → 1500, the
// reference's accuracy M_0 = 850/1100; c's share 200/1100 → 600/1500 at
// accuracy 0.5: mix(c) = (600/1500 − 200/1100)·(0.5 − M_0), within(c) = 0;
// a's share 400/1100 → 400/1500 at 0.9: mix(a) = (400/1500 − 400/1100)·(0.9 − M_0).
func TestDecomposeMeanHandComputed(t *testing.T) {
	pr := MeanSums{1100, 850}
	slices := []MeanSlice{{"a", MeanSums{400, 360}, MeanSums{400, 360}}, {"b", MeanSums{400, 320}, MeanSums{400, 200}}, {"c", MeanSums{200, 100}, MeanSums{200, 100}}}
	delta, cs, err := DecomposeMean(pr, MeanSums{1100, 730}, slices)
	if err != nil {
		t.Fatal(err)
	}
	if !testcheck.Within(delta, -120.0/1100, 1e-15) || cs[0].Segment != "b" ||
		!testcheck.Within(cs[0].Within, 400.0/1100*(0.5-0.8), 1e-15) || !testcheck.Within(cs[0].Mix, 0, 1e-15) {
		t.Errorf("within: change %g, top %+v", delta, cs[0])
	}
	slices = []MeanSlice{{"a", MeanSums{400, 360}, MeanSums{400, 360}}, {"b", MeanSums{400, 320}, MeanSums{400, 320}}, {"c", MeanSums{200, 100}, MeanSums{600, 300}}}
	_, cs, err = DecomposeMean(pr, MeanSums{1500, 1050}, slices)
	if err != nil {
		t.Fatal(err)
	}
	m0 := 850.0 / 1100
	want := map[string][2]float64{"a": {(400.0/1500 - 400.0/1100) * (0.9 - m0), 0}, "c": {(600.0/1500 - 200.0/1100) * (0.5 - m0), 0}}
	for _, c := range cs {
		if w, ok := want[c.Segment]; ok && (!testcheck.Within(c.Mix, w[0], 1e-15) || !testcheck.Within(c.Within, w[1], 1e-15)) {
			t.Errorf("mix: %s mix %g within %g, want %g and %g", c.Segment, c.Mix, c.Within, w[0], w[1])
		}
	}
}

// TestRescaleRMSE: the MSE decomposition rescaled by ΔRMSE/ΔMSE sums to
// the population's ΔRMSE.
func TestRescaleRMSE(t *testing.T) {
	pr, pc := MeanSums{300, 300}, MeanSums{300, 750} // MSE 1 → 2.5
	slices := []MeanSlice{{"a", MeanSums{100, 100}, MeanSums{100, 550}}, {"b", MeanSums{200, 200}, MeanSums{200, 200}}}
	dMSE, cs, err := DecomposeMean(pr, pc, slices)
	if err != nil {
		t.Fatal(err)
	}
	dRMSE := math.Sqrt(2.5) - 1
	var sum float64
	for _, c := range Rescale(cs, dMSE, dRMSE) {
		sum += c.Total
	}
	if !testcheck.Within(sum, dRMSE, 1e-14) {
		t.Errorf("rescaled contributions sum to %g, ΔRMSE %g", sum, dRMSE)
	}
}

func TestDecomposeMeanRejectsOverlap(t *testing.T) {
	_, _, err := DecomposeMean(MeanSums{10, 5}, MeanSums{10, 5}, []MeanSlice{{"a", MeanSums{11, 5}, MeanSums{1, 1}}})
	if !errors.Is(err, ErrNotPartition) {
		t.Errorf("error %v, want ErrNotPartition", err)
	}
}

package policy

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/driftwatch/driftwatch/monitor/multivariate"
	"github.com/driftwatch/driftwatch/monitor/window"
)

// flipSnapshot is a window pair of features a, b, c: a and b N(0, 1) with
// correlation 0.9 in the reference and rho in the current window, with
// per-feature aggregates and joint samples of the same rows.
func flipSnapshot(t *testing.T, rho float64) *window.Snapshot {
	t.Helper()
	rng := rand.New(rand.NewPCG(21, 22))
	gen := func(n int, rho float64) [][]float64 {
		rows := make([][]float64, n)
		for i := range rows {
			a, b, c := rng.NormFloat64(), rng.NormFloat64(), rng.NormFloat64()
			rows[i] = []float64{a, rho*a + math.Sqrt(1-rho*rho)*b, c}
		}
		return rows
	}
	ref, cur := gen(3000, 0.9), gen(3000, rho)
	col := func(rows [][]float64, j int) []float64 {
		out := make([]float64, len(rows))
		for i, r := range rows {
			out[i] = r[j]
		}
		return out
	}
	s := &window.Snapshot{Model: "m", RefRows: 3000, CurRows: 3000,
		RefJoint: &window.Joint{Features: []string{"a", "b", "c"}, Rows: ref},
		CurJoint: &window.Joint{Features: []string{"a", "b", "c"}, Rows: cur}}
	for j, f := range []string{"a", "b", "c"} {
		s.Numeric = append(s.Numeric, numeric(t, f, col(ref, j), col(cur, j)))
	}
	return s
}

// TestMultivariateVerdict: with policy.multivariate on, a correlation flip
// drifts both multivariate features and no per-feature one, sustained only
// after consecutive windows (history); off, or without a flip, nothing.
// The snapshot's joint samples are left as they were.
func TestMultivariateVerdict(t *testing.T) {
	on := Default()
	on.Multivariate.Enabled = true
	both := []string{multivariate.ClassifierFeature, multivariate.ReconstructionFeature}
	flip := flipSnapshot(t, -0.9)
	before := slices.Clone(flip.RefJoint.Rows[0])
	for _, tc := range []struct {
		name               string
		snap               *window.Snapshot
		c                  Config
		hist               History
		drifted, sustained []string
	}{
		{"flip, first window", flip, on, nil, both, nil},
		{"flip, second window", flip, on, History{multivariate.ClassifierFeature: {true}, multivariate.ReconstructionFeature: {true}}, both, both},
		{"flip, off", flip, Default(), nil, nil, nil},
		{"unchanged", flipSnapshot(t, 0.9), on, nil, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := Evaluate(tc.snap, tc.c, tc.hist)
			if !slices.Equal(v.Drifted, tc.drifted) || !slices.Equal(v.Sustained, tc.sustained) {
				t.Errorf("drifted %v sustained %v, want %v and %v", v.Drifted, v.Sustained, tc.drifted, tc.sustained)
			}
			var mv int
			for _, r := range v.Rows {
				if !multivariate.IsFeature(r.Feature) {
					continue
				}
				mv++
				if r.Status != StatusOK && r.Status != StatusDrifted {
					t.Errorf("%s: status %s (%s)", r.Feature, r.Status, r.Note)
				}
				if r.Feature == multivariate.ClassifierFeature && r.Drifted {
					if got := multivariate.LeanedFeatures(r.Leaned[:1]); !slices.Equal(got, []string{"a", "b"}) {
						t.Errorf("classifier leaned first on %v, want a*b", r.Leaned)
					}
				}
			}
			if want := map[bool]int{true: 2, false: 0}[tc.c.Multivariate.Enabled]; mv != want {
				t.Errorf("%d multivariate rows, want %d", mv, want)
			}
		})
	}
	if !slices.Equal(before, flip.RefJoint.Rows[0]) {
		t.Error("the verdict changed the snapshot's joint sample")
	}
	t.Run("no joint sample", func(t *testing.T) {
		s := flipSnapshot(t, -0.9)
		s.RefJoint = nil
		v := Evaluate(s, on, nil)
		var n int
		for _, r := range v.Rows {
			if multivariate.IsFeature(r.Feature) {
				n++
				if r.Status != StatusUndefined || r.Note == "" {
					t.Errorf("%s without a reference joint sample: %s %q", r.Feature, r.Status, r.Note)
				}
			}
		}
		if n != 2 {
			t.Errorf("%d multivariate rows, want 2 (undefined)", n)
		}
		if segs := EvaluateSegments([]*window.Snapshot{s}, on, nil); len(segs) != 1 || slices.ContainsFunc(segs[0].Rows, func(r Row) bool { return multivariate.IsFeature(r.Feature) }) {
			t.Error("a slice got multivariate rows")
		}
	})
	t.Run("edge cases", func(t *testing.T) {
		// One numeric feature, a constant one, and none: rows, no panic.
		s := flipSnapshot(t, -0.9)
		one := &window.Joint{Features: []string{"a"}}
		for _, r := range s.RefJoint.Rows {
			one.Rows = append(one.Rows, []float64{r[0]})
		}
		constant := &window.Joint{Features: []string{"a", "k"}}
		for _, r := range s.RefJoint.Rows {
			constant.Rows = append(constant.Rows, []float64{r[0], 7})
		}
		for _, tc := range []struct {
			name     string
			ref, cur *window.Joint
			status   string
		}{
			{"one feature", one, one, StatusOK},
			{"a constant feature", constant, constant, StatusOK},
			{"no features", &window.Joint{Rows: make([][]float64, 3000)}, &window.Joint{Rows: make([][]float64, 3000)}, StatusUndefined},
		} {
			for _, r := range multivariateRows(tc.ref, tc.cur, on) {
				if r.Status != tc.status || r.Drifted {
					t.Errorf("%s: %s %s drifted=%v (%s), want %s", tc.name, r.Feature, r.Status, r.Drifted, r.Note, tc.status)
				}
			}
		}
	})
	t.Run("categorical", func(t *testing.T) {
		on := on
		on.Multivariate.Categorical = true
		// g is "p" where a > 0 and "n" elsewhere in the reference, the
		// other way round in the current window (a's and g's marginals
		// unchanged; a and b keep their correlation), whose joint sample
		// lists its categorical features in another order, with one more.
		s := flipSnapshot(t, 0.9)
		sign := func(x float64, flip bool) string {
			if (x > 0) != flip {
				return "p"
			}
			return "n"
		}
		s.RefJoint.Categorical = []string{"g"}
		for _, r := range s.RefJoint.Rows {
			s.RefJoint.Categories = append(s.RefJoint.Categories, []string{sign(r[0], false)})
		}
		s.CurJoint.Categorical = []string{"h", "g"}
		for _, r := range s.CurJoint.Rows {
			s.CurJoint.Categories = append(s.CurJoint.Categories, []string{"x", sign(r[0], true)})
		}
		rows := multivariateRows(s.RefJoint, s.CurJoint, on)
		for _, r := range rows {
			if !r.Drifted {
				t.Errorf("%s: not drifted (%s %v, %s)", r.Feature, r.Status, r.Value, r.Note)
			}
			if r.Feature == multivariate.ClassifierFeature && (len(r.Leaned) == 0 || !slices.Equal(r.Leaned[0].Features, []string{"a", "g"})) {
				t.Errorf("classifier leaned on %v, want a*g=… first", r.Leaned)
			}
			if r.Feature == multivariate.ReconstructionFeature && !strings.HasSuffix(r.Note, "of 5 components") {
				t.Errorf("reconstruction note %q, want 5 columns (a, b, c, g=n, g=p)", r.Note)
			}
		}
		// Categories only; a current window read without categories (its
		// one-hot columns all 0): rows, no panic.
		only := &window.Joint{Rows: make([][]float64, 3000), Categorical: s.RefJoint.Categorical, Categories: s.RefJoint.Categories}
		for _, r := range multivariateRows(only, only, on) {
			if r.Status != StatusOK || r.Drifted {
				t.Errorf("categories only: %s %s drifted=%v (%s)", r.Feature, r.Status, r.Drifted, r.Note)
			}
		}
		bare := &window.Joint{Features: s.CurJoint.Features, Rows: s.CurJoint.Rows}
		for _, r := range multivariateRows(s.RefJoint, bare, on) {
			if r.Status != StatusOK && r.Status != StatusDrifted {
				t.Errorf("current window without categories: %s %s (%s)", r.Feature, r.Status, r.Note)
			}
		}
		// Off (the default): the categories are ignored, the numeric
		// columns alone (a, b, c: unchanged correlation) see no drift.
		off := on
		off.Multivariate.Categorical = false
		for _, r := range multivariateRows(s.RefJoint, s.CurJoint, off) {
			if r.Drifted || strings.HasSuffix(r.Note, "of 5 components") {
				t.Errorf("categorical off: %s drifted=%v (%s), want the numeric columns only and no drift", r.Feature, r.Drifted, r.Note)
			}
		}
	})
	t.Run("insufficient", func(t *testing.T) {
		s := flipSnapshot(t, -0.9)
		s.CurJoint.Rows = s.CurJoint.Rows[:50]
		v := Evaluate(s, on, nil)
		for _, r := range v.Rows {
			if multivariate.IsFeature(r.Feature) && r.Status != StatusInsufficient {
				t.Errorf("%s with 50 current rows: %s", r.Feature, r.Status)
			}
		}
		if !slices.Contains(v.Insufficient, multivariate.ClassifierFeature) {
			t.Errorf("insufficient %v", v.Insufficient)
		}
	})
}

package multivariate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/driftwatch/driftwatch/internal/testcheck"
)

// correlated returns n rows of d N(0, 1) features, features a and b with
// correlation rho.
func correlated(rng *rand.Rand, n, d, a, b int, rho float64) [][]float64 {
	rows := make([][]float64, n)
	for i := range rows {
		r := make([]float64, d)
		for j := range r {
			r[j] = rng.NormFloat64()
		}
		r[b] = rho*r[a] + math.Sqrt(1-rho*rho)*r[b]
		rows[i] = r
	}
	return rows
}

func featureNames(d int) []string {
	names := make([]string, d)
	for j := range names {
		names[j] = fmt.Sprintf("f%d", j)
	}
	return names
}

// TestAnalyticThresholdMatchesPermutation holds Classify's threshold (the
// ClassifierQuantile of the mean fold AUC, taking the folds' Mann–Whitney
// statistics as independent) to the permutation null of the same rows,
// 400 rounds: it lies between that null's 0.95 and 0.99 quantiles (the
// independent 0.95 quantile is 0.008–0.012 below the permutation's: the
// folds' AUCs are dependent, each fold's validation rows training the
// others). Measured: 2 folds 0.5549 in [0.5511, 0.5661], 5 folds 0.5551
// in [0.5471, 0.5651].
func TestAnalyticThresholdMatchesPermutation(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	rows := correlated(rng, 600, 3, 0, 1, 0.5)
	var y []float64
	for i := range rows {
		y = append(y, float64(i/300)) // 300 reference rows, then 300 current
	}
	for _, folds := range []int{2, 5} {
		perm, err := PermutationThreshold(rows, y, folds, 1, 400, 0.95, 9)
		if err != nil {
			t.Fatal(err)
		}
		perm99, err := PermutationThreshold(rows, y, folds, 1, 400, 0.99, 9)
		if err != nil {
			t.Fatal(err)
		}
		got := AnalyticThreshold(y, folds, ClassifierQuantile)
		if !testcheck.Between(got, perm, perm99) {
			t.Errorf("%d folds: threshold %v, want between the permutation null's 0.95 (%v) and 0.99 (%v) quantiles", folds, got, perm, perm99)
		}
	}
	// By hand: 2 folds of 150 + 150 rows, var_f = 301/(12·150·150), the
	// mean's standard deviation √(2·var_f)/2, z(0.95) = 1.6448536.
	want := 0.5 + 1.6448536269514722*math.Sqrt(2*301.0/(12*150*150))/2
	testcheck.Close(t, "threshold by hand", AnalyticThreshold(y, 2, 0.95), want, 1e-12)
	if !math.IsNaN(AnalyticThreshold([]float64{0, 0, 0, 0}, 2, 0.95)) {
		t.Error("one class: threshold is not NaN")
	}
}

// TestChangedPairs: the pair whose correlation flipped comes first; a
// zero budget chooses none; a constant column takes part in no pair.
func TestChangedPairs(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	ref := correlated(rng, 2000, 6, 2, 4, 0.8)
	cur := correlated(rng, 2000, 6, 2, 4, -0.8)
	for _, r := range append(ref, cur...) {
		r[5] = 1
	}
	got := ChangedPairs(ref, cur, 3)
	if len(got) != 3 || got[0] != [2]int{2, 4} {
		t.Fatalf("pairs %v, want (2, 4) first of 3", got)
	}
	for _, p := range ChangedPairs(ref, cur, 100) {
		if p[0] == 5 || p[1] == 5 {
			t.Errorf("pair %v with the constant column", p)
		}
	}
	if n := len(ChangedPairs(ref, cur, 100)); n != 10 { // 5·4/2 pairs of the non-constant columns
		t.Errorf("%d pairs, want 10", n)
	}
	if ChangedPairs(ref, cur, 0) != nil {
		t.Error("a zero budget chose pairs")
	}
}

// TestClassifyAndReconstructWide: 60 N(0, 1) features of which f7 and f41
// flip their correlation from 0.9 to −0.9: both methods flag it with the
// default settings (20 pairs of 1,770), the classifier leans first on
// f7*f41 and its features are f7 and f41; the same windows without the flip
// are flagged by neither.
func TestClassifyAndReconstructWide(t *testing.T) {
	c := DefaultConfig()
	names := featureNames(60)
	for _, tc := range []struct {
		name     string
		rho      float64
		drifted  bool
		features []string
	}{
		{"flip", -0.9, true, []string{"f7", "f41"}},
		{"unchanged", 0.9, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(11, 12))
			ref := correlated(rng, 5000, 60, 7, 41, 0.9)
			cur := correlated(rng, 5000, 60, 7, 41, tc.rho)
			rec, err := Reconstruct(ref, cur, c)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Drifted != tc.drifted {
				t.Errorf("reconstruction error %v, band [%v, %v]: drifted %v, want %v", rec.Error, rec.Band.Lower, rec.Band.Upper, rec.Drifted, tc.drifted)
			}
			cl, err := Classify(ref, cur, names, c)
			if err != nil {
				t.Fatal(err)
			}
			if cl.Drifted != tc.drifted {
				t.Errorf("AUC %v, threshold %v: drifted %v, want %v", cl.AUC, cl.Threshold, cl.Drifted, tc.drifted)
			}
			if cl.Pairs != c.Pairs {
				t.Errorf("%d pairs, want the budget %d", cl.Pairs, c.Pairs)
			}
			if tc.drifted {
				if cl.Leaned[0].Column != "f7*f41" {
					t.Errorf("leaned on %v first, want f7*f41", cl.Leaned)
				}
				if got := LeanedFeatures(cl.Leaned[:1]); !slices.Equal(got, tc.features) {
					t.Errorf("leaned features %v, want %v", got, tc.features)
				}
			}
		})
	}
}

// TestImpute: NaN becomes the reference column's mean, in every set.
func TestImpute(t *testing.T) {
	ref := [][]float64{{1, math.NaN()}, {3, 4}}
	cur := [][]float64{{math.NaN(), math.NaN()}}
	mean := Impute(ref, cur)
	if !slices.Equal(mean, []float64{2, 4}) || !slices.Equal(ref[0], []float64{1, 4}) || !slices.Equal(cur[0], []float64{2, 4}) {
		t.Errorf("means %v, ref %v, cur %v", mean, ref, cur)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate("policy.multivariate"); err != nil {
		t.Errorf("defaults: %v", err)
	}
	bad := Config{Rows: 10, VarianceShare: 1, Chunks: 1, BandStds: 0, ClassifierRows: 5, Folds: 1, Pairs: -1}
	err := bad.Validate("policy.multivariate")
	for _, f := range []string{"rows", "variance_share", "chunks", "band_stds", "classifier_rows", "folds", "pairs"} {
		if err == nil || !containsField(err.Error(), "policy.multivariate."+f) {
			t.Errorf("no error names %s: %v", f, err)
		}
	}
}

func containsField(s, f string) bool {
	for i := 0; i+len(f) <= len(s); i++ {
		if s[i:i+len(f)] == f {
			return true
		}
	}
	return false
}

package model

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"testing"
)

// linearPredict is a fixed model y ≈ 3·x0 + 0·x1 that uses only feature 0.
func linearPredict(cols [][]float64) ([]float64, error) {
	p := make([]float64, len(cols[0]))
	for i := range p {
		p[i] = 3 * cols[0][i]
	}
	return p, nil
}

func TestPermutationImportanceSignalAndNoise(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := 2000
	x0, x1, y := make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range n {
		x0[i] = rng.NormFloat64()
		x1[i] = rng.NormFloat64()
		y[i] = 3*x0[i] + 0.1*rng.NormFloat64()
	}
	cols := [][]float64{x0, x1}
	imp, err := PermutationImportance(RMSE, y, cols, linearPredict, PermutationOptions{Repeats: 5, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	// Shuffling x0 turns the error from 0.1 into about sqrt(2·9) ≈ 4.24.
	if !(imp[0] > 3) {
		t.Errorf("importance of the signal feature %v, want > 3", imp[0])
	}
	// The model ignores x1: shuffling it changes nothing.
	if !(imp[1] >= 0 && imp[1] <= 1e-12) {
		t.Errorf("importance of the feature without signal %v, want ≈ 0", imp[1])
	}
	if &cols[0][0] != &x0[0] || cols[0][0] != x0[0] {
		t.Error("cols modified")
	}
	again, err := PermutationImportance(RMSE, y, cols, linearPredict, PermutationOptions{Repeats: 5, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	if again[0] != imp[0] {
		t.Errorf("same seed gave %v then %v", imp[0], again[0])
	}
	norm := NormaliseImportance(imp)
	if d := norm[0] - 1; !(d <= 1e-12 && d >= -1e-12) {
		t.Errorf("normalised importance %v, want [1 0]", norm)
	}
}

func TestNormaliseImportance(t *testing.T) {
	got := NormaliseImportance([]float64{3, 1, -0.5, 0})
	want := []float64{0.75, 0.25, 0, 0}
	for i := range want {
		if d := got[i] - want[i]; !(d <= 1e-12 && d >= -1e-12) {
			t.Errorf("NormaliseImportance[%d] = %v, want %v", i, got[i], want[i])
		}
	}
	for _, v := range NormaliseImportance([]float64{0, -1}) {
		if v != 0 {
			t.Errorf("all non-positive: got %v, want 0", v)
		}
	}
}

func TestCoefficientImportance(t *testing.T) {
	m := &Model{
		Preprocessor: Preprocessor{
			Numeric: []NumericFeature{
				{Name: "a", Mean: 0, Std: 1, Indicator: true},
				{Name: "b", Mean: 0, Std: 1},
			},
			Categorical: []CategoricalFeature{{Name: "c", Categories: []string{"x"}}},
		},
		// Columns: a, b, a:missing, c=x, c:other.
		Coef: []float64{2, 0, -1, 0.5, -0.5},
	}
	got := m.CoefficientImportance()
	want := map[string]float64{"a": 0.75, "b": 0, "c": 0.25}
	for k, w := range want {
		if d := got[k] - w; !(d <= 1e-12 && d >= -1e-12) {
			t.Errorf("CoefficientImportance[%s] = %v, want %v", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("CoefficientImportance = %v, want keys of %v", got, want)
	}
}

// TestPermutationImportanceAgreesWithScikitLearn compares with
// testdata/importance_reference.json (written by importance_reference.py):
// the same law of data, scikit-learn's permutation_importance on a fitted
// LinearRegression. The shuffles differ, so the tolerance covers their noise
// (scikit-learn's importances_std over 10 repeats is about 0.012).
func TestPermutationImportanceAgreesWithScikitLearn(t *testing.T) {
	b, err := os.ReadFile("testdata/importance_reference.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		N       int       `json:"n"`
		Repeats int       `json:"repeats"`
		Coef    []float64 `json:"coef"`
		Mean    []float64 `json:"importances_mean"`
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(15, 15))
	x0, x1, y := make([]float64, ref.N), make([]float64, ref.N), make([]float64, ref.N)
	for i := range ref.N {
		x0[i] = rng.NormFloat64()
		x1[i] = rng.NormFloat64()
		y[i] = 3*x0[i] + 0.1*rng.NormFloat64()
	}
	predict := func(cols [][]float64) ([]float64, error) {
		p := make([]float64, ref.N)
		for i := range p {
			p[i] = ref.Coef[0]*cols[0][i] + ref.Coef[1]*cols[1][i]
		}
		return p, nil
	}
	imp, err := PermutationImportance(RMSE, y, [][]float64{x0, x1}, predict, PermutationOptions{Repeats: ref.Repeats, Seed: 0})
	if err != nil {
		t.Fatal(err)
	}
	if d := math.Abs(imp[0] - ref.Mean[0]); !(d <= 0.1) {
		t.Errorf("importance of x0 %v, scikit-learn %v", imp[0], ref.Mean[0])
	}
	if d := math.Abs(imp[1] - ref.Mean[1]); !(d <= 1e-4) {
		t.Errorf("importance of x1 %v, scikit-learn %v", imp[1], ref.Mean[1])
	}
}

// TestFeaturePermutationImportance: a logistic model on design rows where
// column 0 (feature a) carries the signal and column 1 (feature b) has a zero
// coefficient; b gets no importance, also on a row subsample.
func TestFeaturePermutationImportance(t *testing.T) {
	m := &Model{Kind: KindLogistic, Preprocessor: Preprocessor{Numeric: []NumericFeature{{Name: "a", Std: 1}, {Name: "b", Std: 1}}}, Coef: []float64{2, 0}}
	rng := rand.New(rand.NewPCG(3, 4))
	n := 4000
	var x, y []float64
	for range n {
		a, b := rng.NormFloat64(), rng.NormFloat64()
		x = append(x, a, b)
		l := 0.0
		if rng.Float64() < sigmoid(2*a) {
			l = 1
		}
		y = append(y, l)
	}
	for _, maxRows := range []int{0, 1000} {
		norm, raw, err := m.FeaturePermutationImportance(AUC, y, x, PermutationOptions{Repeats: 3, Seed: 1, MaxRows: maxRows})
		if err != nil {
			t.Fatal(err)
		}
		if !(raw["a"] > 0.2) || raw["b"] != 0 || norm["a"] != 1 || norm["b"] != 0 {
			t.Errorf("max rows %d: importance %v, normalised %v: want a large, b 0", maxRows, raw, norm)
		}
	}
}

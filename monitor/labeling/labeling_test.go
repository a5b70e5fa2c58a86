package labeling

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/internal/testcheck"
)

func TestNewPlan(t *testing.T) {
	for _, c := range []struct {
		name     string
		st       Strategy
		n        int
		share    float64
		pool     uint64
		want     Plan
		randProb float64
	}{
		{"default share of 200", Uncertainty, 200, 0.2, 10_000, Plan{Random: 40, Targeted: 160, RandomShare: 0.2}, 40.0 / 10_000},
		{"rounds half up", Drift, 5, 0.3, 100, Plan{Random: 2, Targeted: 3, RandomShare: 0.3}, 0.02}, // 1.5 → 2
		{"share 0", Uncertainty, 10, 0, 100, Plan{Random: 0, Targeted: 10, RandomShare: 0}, 0},
		{"strategy random ignores the share", Random, 10, 0.2, 100, Plan{Random: 10, RandomShare: 1}, 0.1},
		{"a pool smaller than n gives all", Uncertainty, 50, 0.2, 7, Plan{Random: 7, RandomShare: 0.2}, 1},
		{"an empty pool", Uncertainty, 50, 0.2, 0, Plan{RandomShare: 0.2}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := NewPlan(c.st, c.n, c.share, c.pool)
			if p != c.want {
				t.Errorf("NewPlan = %+v, want %+v", p, c.want)
			}
			if got := p.RandomProbability(c.pool); !testcheck.Within(got, c.randProb, 1e-15) {
				t.Errorf("random probability %v, want %v", got, c.randProb)
			}
		})
	}
}

// TestInclusionProbability: π = π_r + (1 − π_r)·(1 − exp(−w·τ)),
// computed by hand for a pool of 1000 rows, 20 random and 80 targeted
// rows, the targeted draw's threshold τ = 0.05.
func TestInclusionProbability(t *testing.T) {
	p := Plan{Random: 20, Targeted: 80, RandomShare: 0.2}
	for _, c := range []struct {
		name      string
		weight    float64
		threshold float64
		want      float64
	}{
		{"weight 1", 1, 0.05, 0.02 + 0.98*(1-math.Exp(-0.05))}, // 0.0678
		{"weight 4", 4, 0.05, 0.02 + 0.98*(1-math.Exp(-0.2))},  // 0.1977
		{"the floor", MinUncertainty, 0.05, 0.02 + 0.98*(1-math.Exp(-0.0005))},
		{"a pool drawn whole", 1, math.Inf(1), 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := p.InclusionProbability(1000, c.weight, c.threshold); !testcheck.Within(got, c.want, 1e-12) {
				t.Errorf("π = %v, want %v", got, c.want)
			}
		})
	}
	if got := (Plan{Random: 10, RandomShare: 1}).InclusionProbability(100, 3, math.Inf(1)); !testcheck.Within(got, 0.1, 1e-15) {
		t.Errorf("all random: π = %v, want 0.1", got)
	}
}

// TestEstimate: the Hájek estimate Σ(v/π)/Σ(1/π). Four labelled rows,
// two correct at π = 0.5 and two wrong at π = 0.1: (2·2) / (2·2 + 2·10) =
// 1/6, where the unweighted mean says 1/2.
func TestEstimate(t *testing.T) {
	rows := []Labelled{{1, 0.5}, {1, 0.5}, {0, 0.1}, {0, 0.1}}
	if got := Estimate(rows); !testcheck.Within(got, 1.0/6, 1e-15) {
		t.Errorf("estimate %v, want 1/6", got)
	}
	if got := Estimate([]Labelled{{1, 0.5}, {1, 0}}); !math.IsNaN(got) {
		t.Errorf("a row with π 0: %v, want NaN", got)
	}
	if got := Estimate(nil); !math.IsNaN(got) {
		t.Errorf("no rows: %v, want NaN", got)
	}
}

func TestOverrepresented(t *testing.T) {
	inf := math.Inf(1)
	lower := []float64{-inf, 0, 1, 2}
	upper := []float64{0, 1, 2, inf}
	for _, c := range []struct {
		name     string
		ref, cur []uint64
		want     []Range
	}{
		{"unchanged", []uint64{25, 25, 25, 25}, []uint64{25, 25, 25, 25}, nil},
		// Shares 0.1 0.1 0.4 0.4 against 0.25 each (0.4 ≥ 0.375): the top two bins, merged.
		{"shifted up", []uint64{25, 25, 25, 25}, []uint64{10, 10, 40, 40}, []Range{{"f", 1, inf}}},
		// 0.375 ≥ 1.5·0.25 exactly; 0.3 is not.
		{"at the factor", []uint64{25, 25, 25, 25}, []uint64{375, 300, 200, 125}, []Range{{"f", -inf, 0}}},
		{"two apart", []uint64{25, 25, 25, 25}, []uint64{40, 10, 40, 10}, []Range{{"f", -inf, 0}, {"f", 1, 2}}},
		{"misaligned arrays", []uint64{1, 1}, []uint64{1, 1}, nil},
		{"empty reference", []uint64{0, 0, 0, 0}, []uint64{1, 1, 1, 1}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Overrepresented("f", lower, upper, c.ref, c.cur); !slices.Equal(got, c.want) {
				t.Errorf("Overrepresented = %v, want %v", got, c.want)
			}
		})
	}
	got := OverrepresentedCategories("plan", []string{"free", "pro", "__other"}, []uint64{80, 10, 10}, []uint64{40, 30, 30})
	if !slices.Equal(got, []Category{{"plan", "pro"}}) {
		t.Errorf("categories %v, want pro only (never __other)", got)
	}
}

func TestParseSliceAndStrategy(t *testing.T) {
	for seg, want := range map[string]bool{"region=eu": true, "region=other": false, "": false, "=x": false, "a=b=c": true} {
		if _, ok := ParseSlice(seg); ok != want {
			t.Errorf("ParseSlice(%q) ok = %v, want %v", seg, ok, want)
		}
	}
	if s, _ := ParseSlice("a=b=c"); s != (Slice{"a", "b=c"}) {
		t.Errorf("ParseSlice(a=b=c) = %+v", s)
	}
	for in, want := range map[string]Strategy{"": Uncertainty, "uncertainty": Uncertainty, "drift": Drift, "random": Random} {
		if got, err := ParseStrategy(in); got != want || err != nil {
			t.Errorf("ParseStrategy(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseStrategy("best"); err == nil || !strings.Contains(err.Error(), "uncertainty, drift, random") {
		t.Errorf("ParseStrategy(best): %v", err)
	}
}

// TestSQL checks the expressions' shape: the focus's conditions quote
// what they name, an empty focus is an empty array, and the strategies'
// weights.
func TestSQL(t *testing.T) {
	f := Focus{Slices: []Slice{{"region", "e'u"}}, Ranges: []Range{{"f3", 1.5, math.Inf(1)}}, Categories: []Category{{"plan", "pro"}}}
	got := ReasonsSQL(f)
	for _, want := range []string{`segment['region'] = 'e\'u'`, `features_numeric['f3'] >= toFloat64(1.5)`, `'range f3 [1.5, +inf)'`, `features_categorical['plan'] = 'pro'`} {
		if !strings.Contains(got, want) {
			t.Errorf("ReasonsSQL lacks %s: %s", want, got)
		}
	}
	if strings.Contains(got, "< inf") {
		t.Errorf("ReasonsSQL bounds an open range: %s", got)
	}
	if got := ReasonsSQL(Focus{}); got != "CAST([], 'Array(String)')" {
		t.Errorf("empty focus: %s", got)
	}
	if got := WeightSQL(Uncertainty, 4, "u", "r"); got != "greatest(u, toFloat64(0.01)) * if(notEmpty(r), toFloat64(4), 1)" {
		t.Errorf("uncertainty weight: %s", got)
	}
	if got := WeightSQL(Drift, 4, "u", "r"); got != "if(notEmpty(r), toFloat64(4), 1)" {
		t.Errorf("drift weight: %s", got)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate("labeling"); err != nil {
		t.Errorf("defaults: %v", err)
	}
	bad := Config{RandomShare: math.NaN(), DriftWeight: 0.5, ReissueAfter: -time.Second, Lookback: time.Second, Threshold: 1, MaxRows: 0}
	err := bad.Validate("labeling")
	for _, k := range []string{"labeling.random_share", "labeling.drift_weight", "labeling.reissue_after", "labeling.lookback", "labeling.threshold", "labeling.max_rows"} {
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("Validate: %v, want %s named", err, k)
		}
	}
}

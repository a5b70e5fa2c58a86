package stat

import (
	"errors"
	"math"
	"testing"

	"github.com/driftwatch/driftwatch/internal/testcheck"
)

// Edge cases whose behaviour is a decision of this package rather than a
// number scipy produces (the numeric edge cases — identical, disjoint, one
// row, constant, empty — are in testdata/golden.json).

func TestInvalidSamples(t *testing.T) {
	good := Sample{Values: []float64{1, 2, 3}}
	tests := []struct {
		name string
		s    Sample
	}{
		{"nan", Sample{Values: []float64{1, math.NaN(), 3}}},
		{"inf", Sample{Values: []float64{1, 2, math.Inf(1)}}},
		{"unsorted", Sample{Values: []float64{2, 1, 3}}},
		{"negative_count", Sample{Values: []float64{1, 2}, Counts: []int64{3, -1}}},
		{"count_length", Sample{Values: []float64{1, 2}, Counts: []int64{3}}},
	}
	methods := map[string]func(a, b Sample) (Result, error){
		MethodKS: KS, MethodWasserstein: Wasserstein, MethodWassersteinNorm: WassersteinNorm,
		MethodCramerVonMises:  CramerVonMises,
		MethodAndersonDarling: func(a, b Sample) (Result, error) { return AndersonDarling(a, b) },
	}
	for _, tc := range tests {
		for name, f := range methods {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				if _, err := f(good, tc.s); !errors.Is(err, ErrInvalid) {
					t.Errorf("current %v: error %v, want ErrInvalid", tc.s, err)
				}
				if _, err := f(tc.s, good); !errors.Is(err, ErrInvalid) {
					t.Errorf("reference %v: error %v, want ErrInvalid", tc.s, err)
				}
			})
		}
	}
	if _, err := NewSample([]float64{1, math.NaN()}); !errors.Is(err, ErrInvalid) {
		t.Errorf("NewSample with NaN: %v, want ErrInvalid", err)
	}
}

func TestInvalidCounts(t *testing.T) {
	tests := []struct {
		name string
		c    Counts
		want error
	}{
		{"length", Counts{Reference: []int64{1, 2}, Current: []int64{1}}, ErrInvalid},
		{"labels", Counts{Labels: []string{"a"}, Reference: []int64{1, 2}, Current: []int64{1, 2}}, ErrInvalid},
		{"negative", Counts{Reference: []int64{1, -2}, Current: []int64{1, 2}}, ErrInvalid},
		{"empty_current", Counts{Reference: []int64{1, 2}, Current: []int64{0, 0}}, ErrInsufficient},
		{"empty_reference", Counts{Reference: []int64{0, 0}, Current: []int64{1, 2}}, ErrInsufficient},
		{"no_bins", Counts{}, ErrInsufficient},
	}
	for _, tc := range tests {
		for _, f := range []func(Counts) (Result, error){PSI, JensenShannon, Hellinger, ChiSquare, LInfinity, UnseenShare} {
			if _, err := f(tc.c); !errors.Is(err, tc.want) {
				t.Errorf("%s: error %v, want %v", tc.name, err, tc.want)
			}
		}
	}
}

// Hand-computed values (STYLE.md rule 17) for the categorical distances.
func TestCountsByHand(t *testing.T) {
	// p = (0.5, 0.5, 0), q = (0.25, 0.25, 0.5).
	c := CategoryCounts(map[string]int64{"a": 2, "b": 2}, map[string]int64{"a": 1, "b": 1, "new": 2})
	if got := c.Labels; len(got) != 3 || got[2] != "new" || c.Reference[2] != 0 {
		t.Fatalf("CategoryCounts = %+v", c)
	}
	tests := []struct {
		f    func(Counts) (Result, error)
		want float64
	}{
		{LInfinity, 0.5},
		{UnseenShare, 0.5},
		// H² = 1 − Σ√(pq) = 1 − 2·√(0.125) = 1 − 1/√2.
		{Hellinger, math.Sqrt(1 - 1/math.Sqrt2)},
	}
	for _, tc := range tests {
		r, err := tc.f(c)
		if err != nil || !testcheck.Within(r.Value, tc.want, 1e-15) || r.HasPValue() {
			t.Errorf("%s = %+v, %v; want %v without p-value", r.Method, r, err, tc.want)
		}
	}
}

func TestBenjaminiHochbergInvalid(t *testing.T) {
	for _, ps := range [][]float64{{0.1, math.NaN()}, {-0.1}, {1.5}} {
		if _, _, err := BenjaminiHochberg(ps, 0.05); !errors.Is(err, ErrInvalid) {
			t.Errorf("%v: error %v, want ErrInvalid", ps, err)
		}
	}
	if _, _, err := BenjaminiHochberg([]float64{0.1}, 2); !errors.Is(err, ErrInvalid) {
		t.Errorf("q = 2: error %v, want ErrInvalid", err)
	}
}

func TestAndersonDarlingNeedsTwoSamples(t *testing.T) {
	if _, err := AndersonDarling(Sample{Values: []float64{1, 2, 3, 4}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("one sample: %v, want ErrInvalid", err)
	}
}

func TestQuantileEdges(t *testing.T) {
	// Constant reference: one edge; everything equal to it falls in bin 1.
	e, err := QuantileEdges(Sample{Values: []float64{3}, Counts: []int64{100}}, 10)
	if err != nil || len(e) != 1 || e[0] != 3 {
		t.Fatalf("constant reference edges = %v, %v", e, err)
	}
	if BinIndex(e, 2.9) != 0 || BinIndex(e, 3) != 1 || BinIndex(e, 4) != 1 {
		t.Errorf("bins are not left-closed around %v", e)
	}
	if _, err := QuantileEdges(Sample{}, 10); !errors.Is(err, ErrInsufficient) {
		t.Errorf("empty reference: %v, want ErrInsufficient", err)
	}
	if _, err := QuantileEdges(Sample{Values: []float64{1}}, 1); !errors.Is(err, ErrInvalid) {
		t.Errorf("one bin: %v, want ErrInvalid", err)
	}
}

// Zero counts in a Sample are ignored, not treated as a value.
func TestZeroCountsIgnored(t *testing.T) {
	a := Sample{Values: []float64{1, 2, 3, 100}, Counts: []int64{2, 3, 4, 0}}
	b := Sample{Values: []float64{1, 2, 3}, Counts: []int64{2, 3, 4}}
	c := Sample{Values: []float64{1.5, 2.5, 3.5, 4.5}, Counts: []int64{1, 2, 3, 4}}
	for _, f := range []func(a, b Sample) (Result, error){KS, Wasserstein, WassersteinNorm, CramerVonMises} {
		r1, err1 := f(a, c)
		r2, err2 := f(b, c)
		if err1 != nil || err2 != nil || r1.Value != r2.Value || !(r1.PValue == r2.PValue || (math.IsNaN(r1.PValue) && math.IsNaN(r2.PValue))) {
			t.Errorf("%s: %+v %v vs %+v %v", r1.Method, r1, err1, r2, err2)
		}
	}
}

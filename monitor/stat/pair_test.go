package stat

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// TestPairMatchesMethods checks that a Pair's results are those of the
// methods called one by one — on samples with ties, counts (zeros
// among them), one-sided ranges and rows the size of the exact KS limit —
// and that its errors name the method.
func TestPairMatchesMethods(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 9))
	sample := func(n int, shift float64, counts bool) Sample {
		vals := make([]float64, n)
		for i := range vals {
			vals[i] = float64(int((r.NormFloat64()+shift)*20)) / 20 // ties
		}
		s, _ := NewSample(vals)
		if !counts {
			return s
		}
		var v []float64
		var c []int64
		for _, x := range s.Values {
			if k := len(v); k > 0 && v[k-1] == x {
				c[k-1]++
				continue
			}
			v, c = append(v, x), append(c, 1)
		}
		for i := range c {
			if i%7 == 3 {
				c[i] = 0
			}
		}
		return Sample{Values: v, Counts: c}
	}
	for _, c := range []struct {
		name     string
		ref, cur Sample
	}{
		{"same", sample(500, 0, false), sample(400, 0, false)},
		{"shifted with counts", sample(3000, 0, true), sample(2000, 0.4, true)},
		{"disjoint", sample(200, 0, false), sample(300, 10, true)},
		{"one row each", Sample{Values: []float64{1}}, Sample{Values: []float64{2}}},
		{"at the exact limit", sample(10000, 0, false), sample(9000, 0.05, false)},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := NewPair(c.ref, c.cur)
			for _, m := range []struct {
				name      string
				pair, one func() (Result, error)
			}{
				{"KS", func() (Result, error) { return p.KS(true) }, func() (Result, error) { return KS(c.ref, c.cur) }},
				{"KSAsymptotic", func() (Result, error) { return p.KS(false) }, func() (Result, error) { return KSAsymptotic(c.ref, c.cur) }},
				{"Wasserstein", p.Wasserstein, func() (Result, error) { return Wasserstein(c.ref, c.cur) }},
				{"WassersteinNorm", p.WassersteinNorm, func() (Result, error) { return WassersteinNorm(c.ref, c.cur) }},
			} {
				got, gerr := m.pair()
				want, werr := m.one()
				same := got.Method == want.Method && got.Value == want.Value && got.PValueMethod == want.PValueMethod &&
					got.Reference == want.Reference && got.Current == want.Current &&
					(got.PValue == want.PValue || (math.IsNaN(got.PValue) && math.IsNaN(want.PValue)))
				if !same || (gerr == nil) != (werr == nil) {
					t.Errorf("%s: pair %+v (%v), alone %+v (%v)", m.name, got, gerr, want, werr)
				}
			}
		})
	}
	// An empty window: each method's own error.
	p := NewPair(Sample{Values: []float64{1, 2}}, Sample{})
	_, err := p.KS(false)
	if err == nil || !errors.Is(err, ErrInsufficient) {
		t.Fatalf("KS of an empty window: %v, want ErrInsufficient", err)
	}
	_, err2 := KSAsymptotic(Sample{Values: []float64{1, 2}}, Sample{})
	if err.Error() != err2.Error() {
		t.Errorf("KS of an empty window: %q, alone %q", err, err2)
	}
}

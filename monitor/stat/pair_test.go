package stat

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
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

// TestCompactWalkMatchesGeneral checks that the walk of compact samples
// gives ecdfWalk's figures bit for bit, on samples with and without values
// in common, of one value, and with one sample's values all below the
// other's; and that Pair takes it only for compact samples.
func TestCompactWalkMatchesGeneral(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	gen := func(n int, grid float64) Sample {
		m := map[float64]int64{}
		for range n {
			x := r.NormFloat64()
			if grid > 0 {
				x = math.Round(x/grid) * grid
			}
			m[x] += 1 + int64(r.IntN(3))
		}
		s := Sample{}
		for v := range m {
			s.Values = append(s.Values, v)
		}
		slices.Sort(s.Values)
		for _, v := range s.Values {
			s.Counts = append(s.Counts, m[v])
		}
		return s
	}
	shift := func(s Sample, by float64) Sample {
		out := Sample{Counts: s.Counts}
		for _, v := range s.Values {
			out.Values = append(out.Values, v+by)
		}
		return out
	}
	one := Sample{Values: []float64{0.5}, Counts: []int64{3}}
	for _, c := range []struct {
		name     string
		ref, cur Sample
	}{
		{"continuous", gen(2000, 0), gen(1500, 0)},
		{"ties across samples", gen(2000, 0.25), gen(1500, 0.25)},
		{"disjoint", gen(500, 0), shift(gen(400, 0), 100)},
		{"disjoint reversed", shift(gen(500, 0), 100), gen(400, 0)},
		{"one value", one, gen(50, 0.5)},
		{"both one value", one, one},
	} {
		t.Run(c.name, func(t *testing.T) {
			n1, k1, err1 := c.ref.check("reference")
			n2, k2, err2 := c.cur.check("current")
			if err1 != nil || err2 != nil || !k1 || !k2 {
				t.Fatalf("samples not compact: %v %v %v %v", k1, k2, err1, err2)
			}
			s1, d1, w1 := ecdfWalk(c.ref, c.cur, n1, n2)
			s2, d2, w2 := compactWalk(c.ref, c.cur, n1, n2)
			for _, x := range [][3]float64{{s1, s2, 0}, {d1, d2, 1}, {w1, w2, 2}} {
				if math.Float64bits(x[0]) != math.Float64bits(x[1]) {
					t.Errorf("figure %v: general %v, compact %v", x[2], x[0], x[1])
				}
			}
			if !(w1 >= 0) || !(s1 >= 0) || !(d1 <= 0) {
				t.Errorf("walk out of its range: maxS %v minD %v W %v", s1, d1, w1)
			}
		})
	}
	// A sample with a tie inside it or a zero count is not compact, and
	// Pair walks it the general way.
	for _, s := range []Sample{
		{Values: []float64{1, 1, 2}, Counts: []int64{1, 1, 1}},
		{Values: []float64{1, 2, 3}, Counts: []int64{1, 0, 1}},
		{Values: []float64{1, 2, 3}},
	} {
		if _, compact, err := s.check("s"); err != nil || compact {
			t.Errorf("%+v: compact %v, err %v, want not compact", s, compact, err)
		}
	}
}

// TestPairSummarized checks that a pair with the reference summarised
// beforehand gives NewPair's results and errors, bit for bit, and that a
// summary of other arrays (a stale one) is not used.
func TestPairSummarized(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	sample := func(n int, shift float64) Sample {
		v := make([]float64, n)
		for i := range v {
			v[i] = r.NormFloat64() + shift
		}
		slices.Sort(v)
		return Sample{Values: v}
	}
	compactOf := func(s Sample) Sample {
		out := Sample{}
		for _, x := range s.Values {
			out.Values = append(out.Values, x)
			out.Counts = append(out.Counts, 1+int64(r.IntN(3)))
		}
		return out
	}
	ref, cur := compactOf(sample(3000, 0)), compactOf(sample(2000, 0.2))
	constant := Sample{Values: []float64{2}, Counts: []int64{5}}
	bad := Sample{Values: []float64{1, math.NaN()}, Counts: []int64{1, 1}}
	ties := Sample{Values: []float64{1, 1, 2}}
	type figures struct {
		ks, ksa, w, wn Result
		errs           [4]string
	}
	run := func(p *Pair) figures {
		var f figures
		var errs [4]error
		f.ks, errs[0] = p.KS(true)
		f.ksa, errs[1] = p.KS(false)
		f.w, errs[2] = p.Wasserstein()
		f.wn, errs[3] = p.WassersteinNorm()
		for i, err := range errs {
			if err != nil {
				f.errs[i] = err.Error()
			}
		}
		return f
	}
	same := func(a, b Result) bool {
		return math.Float64bits(a.Value) == math.Float64bits(b.Value) && a.Reference == b.Reference && a.Current == b.Current && math.Float64bits(a.PValue) == math.Float64bits(b.PValue)
	}
	for _, c := range []struct {
		name     string
		ref, cur Sample
	}{
		{"compact", ref, cur},
		{"ties", ties, cur},
		{"constant reference", constant, cur},
		{"invalid reference", bad, cur},
		{"invalid current", ref, bad},
		{"empty current", ref, Sample{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := run(NewPair(c.ref, c.cur))
			rs := Summarize(c.ref)
			for k := range 2 { // the second time from the summary's memo
				got := run(NewPairSummarized(c.ref, rs, c.cur))
				if !same(got.ks, want.ks) || !same(got.ksa, want.ksa) || !same(got.w, want.w) || !same(got.wn, want.wn) || got.errs != want.errs {
					t.Errorf("pass %d: summarised %+v, NewPair %+v", k, got, want)
				}
			}
		})
	}
	// A summary of another sample is ignored.
	other := compactOf(sample(3000, 5))
	want := run(NewPair(ref, cur))
	if got := run(NewPairSummarized(ref, Summarize(other), cur)); !same(got.wn, want.wn) || !same(got.ks, want.ks) {
		t.Errorf("with another sample's summary: %+v, want %+v", got, want)
	}
	if NewPairSummarized(ref, Summarize(other), cur).refSum != nil {
		t.Error("a summary of other arrays was used")
	}
}

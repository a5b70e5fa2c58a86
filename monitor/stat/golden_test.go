package stat

import (
	"errors"
	"flag"
	"math"
	"slices"
	"testing"

	"github.com/driftwatch/driftwatch/internal/testcheck"
)

// -update regenerates testdata/golden.json with the reference script; it
// needs the venv from `bash scripts/deps.sh python`.
var update = flag.Bool("update", false, "regenerate testdata/golden.json with testdata/golden.py (needs .deps/venv)")

// Values are checked to valueRelTol relative; p-values to pvalueAbs
// absolute, which is what a decision at 0.05 needs, and to pvalueRel
// relative, so that a p-value of 1e-50 is checked too. The largest relative
// difference measured is 2.1e-6, the Cramér–von Mises asymptotic p-value of
// 7e-10: 1 − CDF there loses digits to cancellation in scipy and here alike.
const (
	valueRelTol = 1e-9
	pvalueAbs   = 1e-6
	pvalueRel   = 1e-5
)

type goldenSample struct {
	Values []float64 `json:"values"`
	Counts []int64   `json:"counts"`
}

func (g goldenSample) sample() Sample {
	if g.Values == nil {
		g.Values = []float64{}
	}
	return Sample(g)
}

type goldenExpect struct {
	Value        *float64 `json:"value"`
	PValue       *float64 `json:"pvalue"`
	PValueMethod string   `json:"pvalue_method"`
	Error        string   `json:"error"`
}

type golden struct {
	Bins    int `json:"bins"`
	Numeric []struct {
		Name          string                  `json:"name"`
		Reference     goldenSample            `json:"reference"`
		Current       goldenSample            `json:"current"`
		Edges         []float64               `json:"edges"`
		BinsReference []int64                 `json:"bins_reference"`
		BinsCurrent   []int64                 `json:"bins_current"`
		Expected      map[string]goldenExpect `json:"expected"`
	} `json:"numeric"`
	Categorical []struct {
		Name      string                  `json:"name"`
		Reference map[string]int64        `json:"reference"`
		Current   map[string]int64        `json:"current"`
		Expected  map[string]goldenExpect `json:"expected"`
	} `json:"categorical"`
	BH []struct {
		Ps       []float64 `json:"ps"`
		Q        float64   `json:"q"`
		Adjusted []float64 `json:"adjusted"`
		Reject   []bool    `json:"reject"`
	} `json:"benjamini_hochberg"`
	AD3 []struct {
		Samples      []goldenSample `json:"samples"`
		Value        float64        `json:"value"`
		PValue       float64        `json:"pvalue"`
		PValueMethod string         `json:"pvalue_method"`
	} `json:"anderson_darling_k3"`
	KSTwo []struct {
		N  int64   `json:"n"`
		X  float64 `json:"x"`
		SF float64 `json:"sf"`
	} `json:"kstwo_sf"`
	Smirnov []struct {
		N  int64   `json:"n"`
		X  float64 `json:"x"`
		SF float64 `json:"sf"`
	} `json:"smirnov_sf"`
	Chi2 []struct {
		DF float64 `json:"df"`
		X  float64 `json:"x"`
		SF float64 `json:"sf"`
	} `json:"chi2_sf"`
	CvMInf []struct {
		X   float64 `json:"x"`
		CDF float64 `json:"cdf"`
	} `json:"cvm_cdf_inf"`
}

func loadGolden(t testing.TB) golden {
	var g golden
	testcheck.LoadGolden(t, *update, &g)
	return g
}

func closeRel(got, want float64) bool {
	return testcheck.WithinRel(got, want, valueRelTol, 1e-12)
}

// check compares one method's outcome with scipy's.
func check(t *testing.T, method string, res Result, err error, want goldenExpect) {
	t.Helper()
	if want.Error != "" {
		sentinel := map[string]error{"insufficient": ErrInsufficient, "undefined": ErrUndefined, "invalid": ErrInvalid}[want.Error]
		if !errors.Is(err, sentinel) {
			t.Errorf("%s: error %v, want %s (result %+v)", method, err, want.Error, res)
		}
		return
	}
	if err != nil {
		t.Errorf("%s: unexpected error %v", method, err)
		return
	}
	if res.Method != method {
		t.Errorf("Method = %q, want %q", res.Method, method)
	}
	if !closeRel(res.Value, *want.Value) {
		t.Errorf("%s value = %.17g, want %.17g (rel err %.3g)", method, res.Value, *want.Value, math.Abs(res.Value-*want.Value)/math.Abs(*want.Value))
	}
	if want.PValue == nil {
		if res.HasPValue() {
			t.Errorf("%s p-value = %v, want none (NaN)", method, res.PValue)
		}
		return
	}
	if !testcheck.Within(res.PValue, *want.PValue, pvalueAbs) || !testcheck.WithinRel(res.PValue, *want.PValue, pvalueRel, 1e-300) {
		t.Errorf("%s p-value = %.17g, want %.17g (abs err %.3g)", method, res.PValue, *want.PValue, math.Abs(res.PValue-*want.PValue))
	}
	if want.PValueMethod != "" && res.PValueMethod != want.PValueMethod {
		t.Errorf("%s p-value method = %q, want %q", method, res.PValueMethod, want.PValueMethod)
	}
}

func TestGoldenNumeric(t *testing.T) {
	g := loadGolden(t)
	if g.Bins != DefaultBins {
		t.Fatalf("golden file uses %d bins, package default is %d", g.Bins, DefaultBins)
	}
	for _, c := range g.Numeric {
		t.Run(c.Name, func(t *testing.T) {
			ref, cur := c.Reference.sample(), c.Current.sample()
			// Both shapes ClickHouse can hand over must give the same numbers.
			for _, form := range []struct {
				name     string
				ref, cur Sample
			}{{"as_given", ref, cur}, {"reshaped", reshape(ref), reshape(cur)}} {
				t.Run(form.name, func(t *testing.T) {
					r, err := KS(form.ref, form.cur)
					check(t, MethodKS, r, err, c.Expected[MethodKS])
					if e, ok := c.Expected["ks_asymptotic"]; ok {
						r, err = KSAsymptotic(form.ref, form.cur)
						check(t, MethodKS, r, err, e)
					}
					r, err = Wasserstein(form.ref, form.cur)
					check(t, MethodWasserstein, r, err, c.Expected[MethodWasserstein])
					r, err = WassersteinNorm(form.ref, form.cur)
					check(t, MethodWassersteinNorm, r, err, c.Expected[MethodWassersteinNorm])
					r, err = AndersonDarling(form.ref, form.cur)
					check(t, MethodAndersonDarling, r, err, c.Expected[MethodAndersonDarling])
					r, err = CramerVonMises(form.ref, form.cur)
					check(t, MethodCramerVonMises, r, err, c.Expected[MethodCramerVonMises])
				})
			}
			if c.Edges == nil {
				return
			}
			edges, err := QuantileEdges(ref, DefaultBins)
			if err != nil {
				t.Fatalf("QuantileEdges: %v", err)
			}
			if len(edges) != len(c.Edges) {
				t.Fatalf("edges = %v, want %v", edges, c.Edges)
			}
			for i := range edges {
				if !closeRel(edges[i], c.Edges[i]) {
					t.Errorf("edge %d = %.17g, want %.17g", i, edges[i], c.Edges[i])
				}
			}
			br, bc := BinCounts(c.Edges, ref), BinCounts(c.Edges, cur)
			if !slices.Equal(br, c.BinsReference) || !slices.Equal(bc, c.BinsCurrent) {
				t.Errorf("bin counts = %v / %v, want %v / %v", br, bc, c.BinsReference, c.BinsCurrent)
			}
			counts := Counts{Reference: c.BinsReference, Current: c.BinsCurrent}
			r, err := PSI(counts)
			check(t, MethodPSI, r, err, c.Expected[MethodPSI])
			r, err = JensenShannon(counts)
			check(t, MethodJensenShannon, r, err, c.Expected[MethodJensenShannon])
			r, err = Hellinger(counts)
			check(t, MethodHellinger, r, err, c.Expected[MethodHellinger])
		})
	}
}

// reshape turns one row per value into value→count and the other way round.
func reshape(s Sample) Sample {
	if s.Counts != nil {
		var rows []float64
		for i, v := range s.Values {
			for range s.Counts[i] {
				rows = append(rows, v)
			}
		}
		return Sample{Values: rows}
	}
	var out Sample
	out.Values, out.Counts = []float64{}, []int64{}
	for _, v := range s.Values {
		if n := len(out.Values); n > 0 && out.Values[n-1] == v {
			out.Counts[n-1]++
			continue
		}
		out.Values = append(out.Values, v)
		out.Counts = append(out.Counts, 1)
	}
	return out
}

func TestGoldenCategorical(t *testing.T) {
	g := loadGolden(t)
	// The chi-square p-value must be checked at many degrees of freedom
	// too: the cases with 31 to 1001 categories reach df 30 to 1000.
	most := 0
	for _, c := range g.Categorical {
		most = max(most, len(CategoryCounts(c.Reference, c.Current).Reference))
	}
	if most < 1001 {
		t.Errorf("the largest categorical case has %d categories, want one with 1001 (df 1000)", most)
	}
	for _, c := range g.Categorical {
		t.Run(c.Name, func(t *testing.T) {
			counts := CategoryCounts(c.Reference, c.Current)
			for _, m := range []struct {
				name string
				f    func(Counts) (Result, error)
			}{
				{MethodPSI, PSI}, {MethodJensenShannon, JensenShannon}, {MethodHellinger, Hellinger},
				{MethodChiSquare, ChiSquare}, {MethodLInfinity, LInfinity}, {MethodUnseenShare, UnseenShare},
			} {
				r, err := m.f(counts)
				check(t, m.name, r, err, c.Expected[m.name])
			}
		})
	}
}

func TestGoldenBenjaminiHochberg(t *testing.T) {
	g := loadGolden(t)
	for i, c := range g.BH {
		adj, rej, err := BenjaminiHochberg(c.Ps, c.Q)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		for j := range adj {
			if !closeRel(adj[j], c.Adjusted[j]) || rej[j] != c.Reject[j] {
				t.Errorf("case %d p[%d]=%v: adjusted %v reject %v, want %v %v", i, j, c.Ps[j], adj[j], rej[j], c.Adjusted[j], c.Reject[j])
			}
		}
		if len(adj) != len(c.Adjusted) {
			t.Errorf("case %d: %d adjusted, want %d", i, len(adj), len(c.Adjusted))
		}
	}
}

// The distribution functions are checked far tighter than the 1e-6 the
// p-values need, so a drift in one branch shows up before it matters, and
// relatively as well as absolutely, so their far tails (survival functions
// of 1e-100 and below) are checked too. Largest differences measured:
// kstwo 7.2e-10 relative and 2.1e-12 absolute, smirnov 1.9e-11 and 3.3e-13,
// chi2 4.9e-13 and 2.1e-13, the limiting Cramér–von Mises CDF 6e-15 and
// 2.5e-15.
func TestGoldenDistributions(t *testing.T) {
	g := loadGolden(t)
	for _, c := range g.KSTwo {
		if got := kolmogorovSF(c.N, c.X); !testcheck.WithinRel(got, c.SF, 1e-8, 1e-11) {
			t.Errorf("kstwo.sf(%v, %d) = %.17g, want %.17g", c.X, c.N, got, c.SF)
		}
	}
	for _, c := range g.Smirnov {
		if got := smirnovSF(c.N, c.X); !testcheck.Within(got, c.SF, 1e-12+1e-10*c.SF) {
			t.Errorf("smirnov(%d, %v) = %.17g, want %.17g", c.N, c.X, got, c.SF)
		}
	}
	dfs := map[float64]bool{}
	for _, c := range g.Chi2 {
		dfs[c.DF] = true
		if got := chi2SF(c.X, c.DF); !testcheck.Within(got, c.SF, 1e-13+1e-10*c.SF) {
			t.Errorf("chi2.sf(%v, %v) = %.17g, want %.17g", c.X, c.DF, got, c.SF)
		}
	}
	for _, df := range []float64{30, 50, 100, 1000} {
		if !dfs[df] {
			t.Errorf("no chi2.sf case with df %v in the golden file", df)
		}
	}
	for _, c := range g.CvMInf {
		if got := cvmCDFInf(c.X); !testcheck.WithinRel(got, c.CDF, 1e-10, 1e-13) {
			t.Errorf("_cdf_cvm_inf(%v) = %.17g, want %.17g", c.X, got, c.CDF)
		}
	}
}

// TestGoldenAndersonDarlingK3 checks more than two samples (the monitor
// uses two; the function takes any k ≥ 2): k = 3 and k = 4, each with a
// capped, an interpolated and a floored p-value.
func TestGoldenAndersonDarlingK3(t *testing.T) {
	g := loadGolden(t)
	methods := map[int]map[string]bool{}
	for i, c := range g.AD3 {
		samples := make([]Sample, len(c.Samples))
		for j, s := range c.Samples {
			samples[j] = s.sample()
		}
		r, err := AndersonDarling(samples...)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if !closeRel(r.Value, c.Value) || !testcheck.Within(r.PValue, c.PValue, pvalueAbs) || r.PValueMethod != c.PValueMethod {
			t.Errorf("case %d (k = %d): %v, %v (%s); want %v, %v (%s)", i, len(samples), r.Value, r.PValue, r.PValueMethod, c.Value, c.PValue, c.PValueMethod)
		}
		if methods[len(samples)] == nil {
			methods[len(samples)] = map[string]bool{}
		}
		methods[len(samples)][c.PValueMethod] = true
	}
	for _, k := range []int{3, 4} {
		for _, m := range []string{PValueCapped, PValueInterpolate, PValueFloored} {
			if !methods[k][m] {
				t.Errorf("no k = %d case with a %s p-value in the golden file", k, m)
			}
		}
	}
}

// TestKSAsymptoticNearExact checks what KSAsymptotic's doc says: on the
// golden cases with 5,000 rows a side or more and an exact p-value, the
// asymptotic p-value scipy gives (and KSAsymptotic matches, see
// TestGoldenNumeric) is within 1 % of the exact one.
func TestKSAsymptoticNearExact(t *testing.T) {
	g := loadGolden(t)
	seen := 0
	for _, c := range g.Numeric {
		ref, cur := c.Reference.sample(), c.Current.sample()
		if ref.N() < 5000 || cur.N() < 5000 {
			continue
		}
		exact, err := KS(ref, cur)
		if err != nil || exact.PValueMethod != PValueExact {
			continue
		}
		asym, err := KSAsymptotic(ref, cur)
		if err != nil {
			t.Fatalf("%s: KSAsymptotic: %v", c.Name, err)
		}
		seen++
		if !testcheck.WithinRel(asym.PValue, exact.PValue, 0.01, 0) {
			t.Errorf("%s: asymptotic p = %g, exact p = %g: more than 1 %% apart", c.Name, asym.PValue, exact.PValue)
		}
	}
	if seen < 3 {
		t.Fatalf("only %d golden cases with 5,000 rows a side and an exact p-value; want 3", seen)
	}
}

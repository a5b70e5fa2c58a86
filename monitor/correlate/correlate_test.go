package correlate

import (
	"errors"
	"flag"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/internal/testcheck"
)

// -update regenerates testdata/golden.json with the reference script; it
// needs the venv from `bash scripts/deps.sh python`.
var update = flag.Bool("update", false, "regenerate testdata/golden.json with testdata/golden.py (needs .deps/venv)")

const (
	valueRelTol = 1e-9
	pvalueAbs   = 1e-6
)

// series is a JSON array in which null stands for a missing bucket.
type series []*float64

func (s series) floats() []float64 {
	out := make([]float64, len(s))
	for i, v := range s {
		if v == nil {
			out[i] = math.NaN()
		} else {
			out[i] = *v
		}
	}
	return out
}

type expect struct {
	Value  *float64 `json:"value"`
	PValue *float64 `json:"pvalue"`
	N      int      `json:"n"`
	Error  string   `json:"error"`
}

type golden struct {
	Cases []struct {
		Name     string            `json:"name"`
		X        series            `json:"x"`
		Y        series            `json:"y"`
		Expected map[string]expect `json:"expected"`
	} `json:"cases"`
	Lagged []struct {
		Name     string `json:"name"`
		Model    series `json:"model"`
		Business series `json:"business"`
		MaxLag   int    `json:"max_lag"`
		BestLag  int    `json:"best_lag"`
		Lags     []struct {
			Lag      int               `json:"lag"`
			Expected map[string]expect `json:"expected"`
		} `json:"lags"`
	} `json:"lagged"`
	PValues []struct {
		N      int     `json:"n"`
		R      float64 `json:"r"`
		PValue float64 `json:"pvalue"`
	} `json:"pvalues"`
}

func loadGolden(t *testing.T) golden {
	var g golden
	testcheck.LoadGolden(t, *update, &g)
	return g
}

func check(t *testing.T, method string, got Result, err error, want expect) {
	t.Helper()
	if want.Error != "" {
		sentinel := map[string]error{"insufficient": ErrInsufficient, "undefined": ErrUndefined}[want.Error]
		if !errors.Is(err, sentinel) {
			t.Errorf("%s: error %v, want %s (result %+v)", method, err, want.Error, got)
		}
		return
	}
	if err != nil {
		t.Errorf("%s: unexpected error %v", method, err)
		return
	}
	if got.Method != method {
		t.Errorf("Method = %q, want %q", got.Method, method)
	}
	if got.N != want.N {
		t.Errorf("%s n = %d, want %d", method, got.N, want.N)
	}
	if !testcheck.WithinRel(got.Value, *want.Value, valueRelTol, 1e-15) {
		t.Errorf("%s value = %.17g, want %.17g", method, got.Value, *want.Value)
	}
	if !testcheck.Within(got.PValue, *want.PValue, pvalueAbs) {
		t.Errorf("%s p-value = %.17g, want %.17g (abs err %.3g)", method, got.PValue, *want.PValue, math.Abs(got.PValue-*want.PValue))
	}
}

func TestGolden(t *testing.T) {
	g := loadGolden(t)
	if len(g.Cases) == 0 {
		t.Fatal("no golden cases")
	}
	for _, c := range g.Cases {
		t.Run(c.Name, func(t *testing.T) {
			x, y := c.X.floats(), c.Y.floats()
			r, err := Pearson(x, y)
			check(t, MethodPearson, r, err, c.Expected[MethodPearson])
			r, err = Spearman(x, y)
			check(t, MethodSpearman, r, err, c.Expected[MethodSpearman])
		})
	}
}

// TestGoldenLagged is the acceptance case: a business metric made
// to follow accuracy by two buckets (with missing buckets in both series)
// has its strongest correlation at lag 2.
func TestGoldenLagged(t *testing.T) {
	g := loadGolden(t)
	if len(g.Lagged) == 0 {
		t.Fatal("no golden lagged cases")
	}
	for _, c := range g.Lagged {
		t.Run(c.Name, func(t *testing.T) {
			for _, method := range []string{MethodPearson, MethodSpearman} {
				lags, err := Lagged(method, c.Model.floats(), c.Business.floats(), c.MaxLag)
				if err != nil {
					t.Fatal(err)
				}
				if len(lags) != len(c.Lags) {
					t.Fatalf("%s: %d lags, want %d", method, len(lags), len(c.Lags))
				}
				for i, l := range lags {
					if l.Lag != c.Lags[i].Lag {
						t.Errorf("lag %d at index %d", l.Lag, i)
					}
					check(t, method, l.Result, l.Err, c.Lags[i].Expected[method])
				}
				best, err := BestLag(lags)
				if err != nil {
					t.Fatal(err)
				}
				if best.Lag != c.BestLag {
					t.Errorf("%s: best lag %d (r %.4f), want %d", method, best.Lag, best.Value, c.BestLag)
				}
				if !testcheck.AtMost(best.PValue, 1e-6) {
					t.Errorf("%s: best lag p-value %g, want tiny", method, best.PValue)
				}
			}
		})
	}
}

// TestLagTwoFromSimulation builds the lag-2 situation independently of the
// golden file, with bucket times going through Align as ClickHouse rows
// would, and a noisier business series.
func TestLagTwoFromSimulation(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	const n = 120
	var accAt, revAt []time.Time
	var accV, revV []float64
	acc := make([]float64, n)
	for i := range acc {
		acc[i] = 0.9 + 0.03*rng.NormFloat64()
	}
	for i := 0; i < n; i++ {
		ts := start.Add(time.Duration(i) * time.Hour)
		if i != 17 { // a bucket without labels
			accAt, accV = append(accAt, ts), append(accV, acc[i])
		}
		rev := 1000 + 20*rng.NormFloat64()
		if i >= 2 {
			rev += 2000 * (acc[i-2] - 0.9)
		}
		if i != 60 {
			revAt, revV = append(revAt, ts), append(revV, rev)
		}
	}
	model, err := Align(start, time.Hour, n, accAt, accV)
	if err != nil {
		t.Fatal(err)
	}
	business, err := Align(start, time.Hour, n, revAt, revV)
	if err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(model[17]) || !math.IsNaN(business[60]) || model[18] != acc[18] {
		t.Fatalf("Align misplaced buckets")
	}
	for _, method := range []string{MethodPearson, MethodSpearman} {
		lags, err := Lagged(method, model, business, 8)
		if err != nil {
			t.Fatal(err)
		}
		best, err := BestLag(lags)
		if err != nil {
			t.Fatal(err)
		}
		if best.Lag != 2 || best.N != n-2-2 {
			t.Errorf("%s: best lag %d with n %d (r %.3f), want lag 2 with n %d", method, best.Lag, best.N, best.Value, n-4)
		}
		// Independent noise at the other lags: no significant correlation
		// as strong as the true one.
		for _, l := range lags {
			if l.Lag != 2 && !testcheck.Within(l.Value, 0, 0.5) {
				t.Errorf("%s lag %d: |r| = %.3f, want small", method, l.Lag, l.Value)
			}
		}
	}
}

func TestErrors(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name string
		x, y []float64
		want error
	}{
		{"empty", nil, nil, ErrInsufficient},
		{"two", []float64{1, 2}, []float64{3, 4}, ErrInsufficient},
		{"nan_leaves_two", []float64{1, 2, nan, 4}, []float64{1, 2, 3, math.Inf(1)}, ErrInsufficient},
		{"lengths", []float64{1, 2, 3}, []float64{1, 2}, ErrInvalid},
		{"constant_y", []float64{1, 2, 3}, []float64{5, 5, 5}, ErrUndefined},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, m := range []string{MethodPearson, MethodSpearman} {
				if _, err := Correlate(m, tc.x, tc.y); !errors.Is(err, tc.want) {
					t.Errorf("%s: error %v, want %v", m, err, tc.want)
				}
			}
		})
	}
	if _, err := Correlate("kendall", []float64{1, 2, 3}, []float64{1, 2, 3}); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown method: %v", err)
	}
	if _, err := Lagged(MethodPearson, []float64{1, 2, 3}, []float64{1, 2, 3}, -1); !errors.Is(err, ErrInvalid) {
		t.Errorf("negative lag: %v", err)
	}
	// Lags beyond the series length are reported, each insufficient.
	lags, err := Lagged(MethodPearson, []float64{1, 2, 3, 4}, []float64{2, 1, 4, 3}, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(lags) != 6 || lags[0].Err != nil || !errors.Is(lags[2].Err, ErrInsufficient) || !errors.Is(lags[5].Err, ErrInsufficient) {
		t.Errorf("lags = %+v", lags)
	}
	if _, err := BestLag(lags[2:]); !errors.Is(err, ErrInsufficient) {
		t.Errorf("BestLag without a valid lag: %v", err)
	}
}

// TestGoldenPValues checks the p-value function over the range of n and r
// the monitor can ask for, against scipy's Student's t survival function
// (another algorithm), to 1e-10 relative (measured 5.1e-12, the rounding
// of log Γ at 50,000): the golden cases' p-values are checked to 1e-6
// absolute only, which says nothing about a p-value of 1e-50.
func TestGoldenPValues(t *testing.T) {
	g := loadGolden(t)
	if len(g.PValues) < 100 {
		t.Fatalf("%d p-value cases in the golden file, want the full grid", len(g.PValues))
	}
	worst := 0.0
	for _, c := range g.PValues {
		got := pValue(c.R, c.N)
		if !testcheck.WithinRel(got, c.PValue, 1e-10, 1e-300) {
			t.Errorf("p-value of r = %v from %d pairs = %.17g, scipy %.17g", c.R, c.N, got, c.PValue)
		}
		if c.PValue > 0 {
			worst = max(worst, math.Abs(got-c.PValue)/c.PValue)
		}
	}
	t.Logf("largest relative difference %.3g over %d cases", worst, len(g.PValues))
}

// TestRegIncBeta checks the incomplete beta function against values
// written down from closed forms: I_x(1, 1) = x, I_x(a, 1) = x^a and
// I_x(1/2, 1/2) = (2/π)·asin(√x).
func TestRegIncBeta(t *testing.T) {
	for _, x := range []float64{1e-6, 0.1, 0.37, 0.5, 0.9, 0.999999} {
		for _, c := range []struct{ a, b, want float64 }{
			{1, 1, x},
			{3.5, 1, math.Pow(x, 3.5)},
			{0.5, 0.5, 2 / math.Pi * math.Asin(math.Sqrt(x))},
		} {
			if got := regIncBeta(c.a, c.b, x); !testcheck.Within(got, c.want, 1e-13*math.Max(1, c.want)) {
				t.Errorf("I_%g(%g, %g) = %.17g, want %.17g", x, c.a, c.b, got, c.want)
			}
		}
	}
}

func TestRank(t *testing.T) {
	got := Rank([]float64{10, 20, 10, 30, 20, 20})
	want := []float64{1.5, 4, 1.5, 6, 4, 4}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Rank = %v, want %v", got, want)
		}
	}
}

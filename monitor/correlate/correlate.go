// Package correlate measures how a model metric (accuracy, a drift score,
// the mean prediction) moves with a business metric (revenue, conversion):
// Pearson's r, Spearman's ρ and the lagged cross-correlation of two bucketed
// series, each with its sample size and two-sided p-value.
//
// The package is pure computation (STYLE.md rule 4): the monitor asks
// ClickHouse for one value per bucket of each series, lines them up with
// [Align] (a bucket without data is NaN) and hands the slices over.
//
// Missing buckets are handled by pairwise deletion: a pair (x[t], y[t]) is
// used only when both values are finite. Fewer than three usable pairs
// yields an error wrapping [ErrInsufficient] (with two points r is always
// ±1 and says nothing); a series that is constant over the usable pairs
// yields [ErrUndefined] (r is 0/0). Neither is ever reported as a number.
//
// Definitions, each checked against scipy 1.15.3 through
// testdata/golden.py (values to 1e-9 relative, p-values to 1e-6 absolute,
// the p-value function itself to 1e-10 relative):
//
//   - [Pearson]: r = Σ(x−x̄)(y−ȳ) / √(Σ(x−x̄)² Σ(y−ȳ)²); p-value from the
//     exact null distribution of r for bivariate normal data, the
//     Beta(n/2−1, n/2−1) law on [−1, 1], as scipy.stats.pearsonr
//     (equivalently Student's t with n−2 degrees of freedom).
//   - [Spearman]: Pearson's r of the ranks, ties given their average rank;
//     p-value from t = ρ√((n−2)/(1−ρ²)) with n−2 degrees of freedom, as
//     scipy.stats.spearmanr.
//   - [Lagged]: for lag L = 0…maxLag, the correlation of model[t] with
//     business[t+L] — the business metric following the model metric by L
//     buckets — over the overlapping n−L buckets. [BestLag] picks the lag
//     with the largest |r|.
package correlate

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"time"
)

// Method names: stable strings for the method column of
// business_correlations and for Prometheus labels. Do not rename them.
const (
	MethodPearson  = "pearson"
	MethodSpearman = "spearman"
)

// Errors a caller has to tell apart; match them with errors.Is.
var (
	// ErrInsufficient: fewer than three pairs with both values present.
	ErrInsufficient = errors.New("insufficient data")
	// ErrUndefined: one of the series is constant over the usable pairs,
	// so the correlation is 0/0.
	ErrUndefined = errors.New("correlation undefined")
	// ErrInvalid: bad arguments (series of different lengths, a negative
	// lag, an unknown method).
	ErrInvalid = errors.New("invalid input")
)

// MinSamples is the fewest usable pairs a correlation is computed from.
const MinSamples = 3

// Result is one correlation.
type Result struct {
	// Method is MethodPearson or MethodSpearman.
	Method string
	// Value is r (Pearson) or ρ (Spearman), in [−1, 1].
	Value float64
	// PValue is the two-sided p-value of the null hypothesis of no
	// correlation.
	PValue float64
	// N is the number of pairs used (both values finite).
	N int
}

// Pearson returns Pearson's correlation coefficient of x and y and its
// two-sided p-value, as scipy.stats.pearsonr. Pairs where either value is
// NaN or infinite are dropped.
func Pearson(x, y []float64) (Result, error) {
	xs, ys, err := pairs(x, y)
	if err != nil {
		return Result{}, fmt.Errorf("pearson: %w", err)
	}
	r, err := pearsonR(xs, ys)
	if err != nil {
		return Result{}, fmt.Errorf("pearson: %w", err)
	}
	return Result{Method: MethodPearson, Value: r, PValue: pValue(r, len(xs)), N: len(xs)}, nil
}

// Spearman returns Spearman's rank correlation of x and y and its
// two-sided p-value, as scipy.stats.spearmanr: ties get the average of the
// ranks they span. Pairs where either value is NaN or infinite are dropped
// before ranking.
func Spearman(x, y []float64) (Result, error) {
	xs, ys, err := pairs(x, y)
	if err != nil {
		return Result{}, fmt.Errorf("spearman: %w", err)
	}
	r, err := pearsonR(Rank(xs), Rank(ys))
	if err != nil {
		return Result{}, fmt.Errorf("spearman: %w", err)
	}
	return Result{Method: MethodSpearman, Value: r, PValue: pValue(r, len(xs)), N: len(xs)}, nil
}

// Correlate runs the named method (MethodPearson or MethodSpearman).
func Correlate(method string, x, y []float64) (Result, error) {
	switch method {
	case MethodPearson:
		return Pearson(x, y)
	case MethodSpearman:
		return Spearman(x, y)
	}
	return Result{}, fmt.Errorf("correlation method %q: %w", method, ErrInvalid)
}

// Lag is the correlation at one lag of a cross-correlation.
type Lag struct {
	// Lag is L: model[t] was paired with business[t+L].
	Lag int
	// Result is valid when Err is nil.
	Result
	// Err wraps ErrInsufficient or ErrUndefined when this lag has no
	// correlation (too few overlapping pairs, or a constant stretch).
	Err error
}

// Lagged correlates model[t] with business[t+L] for L = 0…maxLag, both
// series bucketed on the same grid (business follows the model by L
// buckets). Every lag is reported, in order; a lag without enough data
// carries its error in Lag.Err. The returned error is only for bad
// arguments (ErrInvalid).
func Lagged(method string, model, business []float64, maxLag int) ([]Lag, error) {
	if len(model) != len(business) {
		return nil, fmt.Errorf("lagged %s: series of %d and %d buckets: %w", method, len(model), len(business), ErrInvalid)
	}
	if maxLag < 0 {
		return nil, fmt.Errorf("lagged %s: max lag %d: %w", method, maxLag, ErrInvalid)
	}
	if method != MethodPearson && method != MethodSpearman {
		return nil, fmt.Errorf("lagged correlation method %q: %w", method, ErrInvalid)
	}
	out := make([]Lag, 0, maxLag+1)
	for l := 0; l <= maxLag; l++ {
		var x, y []float64
		if l < len(model) {
			x, y = model[:len(model)-l], business[l:]
		}
		r, err := Correlate(method, x, y)
		out = append(out, Lag{Lag: l, Result: r, Err: err})
	}
	return out, nil
}

// BestLag returns the lag with the largest |r| among those with a
// correlation; on equal |r| the smaller lag wins. It wraps ErrInsufficient
// when no lag has one.
func BestLag(lags []Lag) (Lag, error) {
	best := -1
	for i, l := range lags {
		if l.Err != nil {
			continue
		}
		if best < 0 || math.Abs(l.Value) > math.Abs(lags[best].Value) ||
			(math.Abs(l.Value) == math.Abs(lags[best].Value) && l.Lag < lags[best].Lag) {
			best = i
		}
	}
	if best < 0 {
		return Lag{}, fmt.Errorf("best lag of %d lags: no lag has a correlation: %w", len(lags), ErrInsufficient)
	}
	return lags[best], nil
}

// Align places timestamped bucket values on the grid start, start+step, …
// (n buckets): the value of the bucket starting at t goes to index
// (t−start)/step. Buckets without a value are NaN; values off the grid or
// outside it are ignored. It is how series read from ClickHouse
// (GROUP BY toStartOfInterval(timestamp, …)) become slices for Lagged.
func Align(start time.Time, step time.Duration, n int, at []time.Time, values []float64) ([]float64, error) {
	if len(at) != len(values) {
		return nil, fmt.Errorf("align: %d times but %d values: %w", len(at), len(values), ErrInvalid)
	}
	if step <= 0 || n < 0 {
		return nil, fmt.Errorf("align: step %v, %d buckets: %w", step, n, ErrInvalid)
	}
	out := make([]float64, n)
	for i := range out {
		out[i] = math.NaN()
	}
	for i, t := range at {
		d := t.Sub(start)
		if d < 0 || d%step != 0 {
			continue
		}
		if k := int(d / step); k < n {
			out[k] = values[i]
		}
	}
	return out, nil
}

// pairs drops pairs with a non-finite member and checks the count.
func pairs(x, y []float64) ([]float64, []float64, error) {
	if len(x) != len(y) {
		return nil, nil, fmt.Errorf("series of %d and %d values: %w", len(x), len(y), ErrInvalid)
	}
	xs := make([]float64, 0, len(x))
	ys := make([]float64, 0, len(y))
	for i := range x {
		if finite(x[i]) && finite(y[i]) {
			xs = append(xs, x[i])
			ys = append(ys, y[i])
		}
	}
	if len(xs) < MinSamples {
		return nil, nil, fmt.Errorf("%d usable pairs, need %d: %w", len(xs), MinSamples, ErrInsufficient)
	}
	return xs, ys, nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// pearsonR is the sample correlation, computed as scipy does: deviations
// from the mean scaled by their largest magnitude (no overflow), then the
// dot product of the normalised deviation vectors, clipped to [−1, 1].
func pearsonR(x, y []float64) (float64, error) {
	dx, okx := deviations(x)
	dy, oky := deviations(y)
	if !okx || !oky {
		return 0, fmt.Errorf("constant series over %d pairs: %w", len(x), ErrUndefined)
	}
	var r float64
	for i := range dx {
		r += dx[i] * dy[i]
	}
	return math.Max(-1, math.Min(1, r)), nil
}

// deviations returns (v−v̄)/‖v−v̄‖, or false when v is constant.
func deviations(v []float64) ([]float64, bool) {
	var mean float64
	for _, x := range v {
		mean += x
	}
	mean /= float64(len(v))
	d := make([]float64, len(v))
	var amax float64
	for i, x := range v {
		d[i] = x - mean
		amax = math.Max(amax, math.Abs(d[i]))
	}
	// scipy treats a series whose values are all equal as constant; a
	// series whose deviations all round to zero is the same thing.
	if amax == 0 || allEqual(v) {
		return nil, false
	}
	var norm float64
	for i := range d {
		d[i] /= amax
		norm += d[i] * d[i]
	}
	norm = math.Sqrt(norm)
	for i := range d {
		d[i] /= norm
	}
	return d, true
}

func allEqual(v []float64) bool {
	for _, x := range v[1:] {
		if x != v[0] {
			return false
		}
	}
	return true
}

// Rank returns the ranks 1…n of v, ties given the average of the ranks
// they span (scipy.stats.rankdata(method="average")).
func Rank(v []float64) []float64 {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return v[idx[a]] < v[idx[b]] })
	ranks := make([]float64, len(v))
	for i := 0; i < len(idx); {
		j := i + 1
		for j < len(idx) && v[idx[j]] == v[idx[i]] {
			j++
		}
		avg := float64(i+j+1) / 2 // ranks i+1 … j
		for k := i; k < j; k++ {
			ranks[idx[k]] = avg
		}
		i = j
	}
	return ranks
}

// pValue is the two-sided p-value of a correlation r from n pairs under
// the null of independence: P(|R| ≥ |r|) for R ~ Beta(n/2−1, n/2−1) on
// [−1, 1], which equals I_{1−r²}((n−2)/2, 1/2), the two-sided tail of
// Student's t with n−2 degrees of freedom at t = r√((n−2)/(1−r²)).
func pValue(r float64, n int) float64 {
	if math.Abs(r) >= 1 {
		return 0
	}
	df := float64(n - 2)
	// 1 − r² as (1−r)(1+r), and r² itself as its complement: 1 − r·r
	// loses the digits of 1 − r² as |r| nears 1, and 1 − (1 − r²) those of
	// r² as r nears 0 (relative errors of 1e-8 in the p-value at
	// r = 1 − 1e-9 and at r = 1e-6 with 100,000 pairs).
	return regIncBetaComp(df/2, 0.5, (1-r)*(1+r), r*r)
}

// regIncBeta is the regularized incomplete beta function I_x(a, b).
func regIncBeta(a, b, x float64) float64 {
	return regIncBetaComp(a, b, x, 1-x)
}

// regIncBetaComp is I_x(a, b) given both x and y = 1 − x (the caller may
// know y more precisely than 1 − x gives it), by the continued fraction
// (modified Lentz), using the symmetry I_x(a, b) = 1 − I_y(b, a) where the
// fraction converges slowly.
func regIncBetaComp(a, b, x, y float64) float64 {
	switch {
	case x <= 0:
		return 0
	case y <= 0:
		return 1
	}
	la, _ := math.Lgamma(a)
	lb, _ := math.Lgamma(b)
	lab, _ := math.Lgamma(a + b)
	front := math.Exp(lab - la - lb + a*logOf(x, y) + b*logOf(y, x))
	if x < (a+1)/(a+b+2) {
		return front * betaCF(a, b, x) / a
	}
	return 1 - front*betaCF(b, a, y)/b
}

// logOf is log(v) for v = 1 − w, from whichever of the two is exact
// enough: log(v) for small v, log1p(−w) for v near 1.
func logOf(v, w float64) float64 {
	if v < 0.5 {
		return math.Log(v)
	}
	return math.Log1p(-w)
}

func betaCF(a, b, x float64) float64 {
	const (
		tiny = 1e-300
		eps  = 1e-16
	)
	qab, qap, qam := a+b, a+1, a-1
	c := 1.0
	d := nonZero(1-qab*x/qap, tiny)
	d = 1 / d
	h := d
	// step applies one coefficient aa of the continued fraction (modified
	// Lentz) and returns the factor it contributes to h.
	step := func(aa float64) float64 {
		d = 1 / nonZero(1+aa*d, tiny)
		c = nonZero(1+aa/c, tiny)
		return d * c
	}
	for m := 1; m < 100000; m++ {
		fm := float64(m)
		m2 := 2 * fm
		h *= step(fm * (b - fm) * x / ((qam + m2) * (a + m2)))
		del := step(-(a + fm) * (qab + fm) * x / ((a + m2) * (qap + m2)))
		h *= del
		if math.Abs(del-1) < eps {
			break
		}
	}
	return h
}

// nonZero is v, or tiny where |v| < tiny: Lentz's guard against dividing
// by zero.
func nonZero(v, tiny float64) float64 {
	if math.Abs(v) < tiny {
		return tiny
	}
	return v
}

package stat

import (
	"fmt"
	"math"
	"slices"
)

// Counts holds the rows of the reference and the current window per bin or
// per category, aligned index by index: Reference[i] and Current[i] count the
// same bin. Labels optionally names the categories (same length) and is
// carried for the caller; no method reads it.
type Counts struct {
	Labels    []string
	Reference []int64
	Current   []int64
}

// PSISmoothing is the pseudo-count PSI adds to every bin before it turns
// counts into proportions (additive, "+0.5 counts" smoothing), so a bin that
// is empty in one window gives a large but finite term instead of +Inf.
const PSISmoothing = 0.5

// DefaultBins is the number of reference-quantile bins used for numeric PSI,
// Jensen–Shannon and Hellinger.
const DefaultBins = 10

// CategoryCounts aligns per-category counts of the two windows over the
// union of their categories, sorted by name. Categories the reference never
// saw get Reference 0, and the other way round.
func CategoryCounts(ref, cur map[string]int64) Counts {
	labels := make([]string, 0, len(ref)+len(cur))
	for k := range ref {
		labels = append(labels, k)
	}
	for k := range cur {
		if _, ok := ref[k]; !ok {
			labels = append(labels, k)
		}
	}
	slices.Sort(labels)
	c := Counts{Labels: labels, Reference: make([]int64, len(labels)), Current: make([]int64, len(labels))}
	for i, k := range labels {
		c.Reference[i] = ref[k]
		c.Current[i] = cur[k]
	}
	return c
}

// QuantileEdges returns the interior bin edges for numeric PSI, Jensen–Shannon
// and Hellinger: the reference quantiles at i/bins for i = 1 … bins−1, by
// linear interpolation between order statistics (numpy.quantile's default
// "linear" method, Hyndman–Fan type 7, ClickHouse quantilesExactInclusive),
// with repeated edges removed. A constant reference gives a single edge.
// The bins are then (−∞, e₁), [e₁, e₂), …, [e_k, +∞); see BinIndex.
func QuantileEdges(ref Sample, bins int) ([]float64, error) {
	n, err := ref.validate("reference")
	if err != nil {
		return nil, fmt.Errorf("quantile edges: %w", err)
	}
	if bins < 2 {
		return nil, fmt.Errorf("quantile edges: %d bins, need at least 2: %w", bins, ErrInvalid)
	}
	if n == 0 {
		return nil, fmt.Errorf("quantile edges of an empty reference: %w", ErrInsufficient)
	}
	// Walk the rows once: the quantile positions increase with i.
	at := rowAt(ref)
	edges := make([]float64, 0, bins-1)
	for i := 1; i < bins; i++ {
		q := float64(i) / float64(bins)
		h := float64(n-1) * q
		lo := math.Floor(h)
		t := h - lo
		a := at(int64(lo))
		b := a
		if int64(lo)+1 < n {
			b = at(int64(lo) + 1)
		}
		// numpy's _lerp: exact at both ends, monotone in t.
		var e float64
		if t >= 0.5 {
			e = b - (b-a)*(1-t)
		} else {
			e = a + (b-a)*t
		}
		if len(edges) == 0 || e != edges[len(edges)-1] {
			edges = append(edges, e)
		}
	}
	return edges, nil
}

// rowAt returns a function giving the value of row k (0-based, ascending) of
// s; successive calls must not decrease k.
func rowAt(s Sample) func(k int64) float64 {
	if s.Counts == nil {
		return func(k int64) float64 { return s.Values[k] }
	}
	i, start := 0, int64(0) // rows [start, start+Counts[i]) hold Values[i]
	return func(k int64) float64 {
		for k >= start+s.Counts[i] {
			start += s.Counts[i]
			i++
		}
		return s.Values[i]
	}
}

// BinIndex returns the bin of x for the given ascending edges: the number of
// edges ≤ x, so bins are left-closed, [e_i, e_{i+1}) (numpy.digitize with
// right=False; ClickHouse arrayCount(e -> e <= x, edges)). There are
// len(edges)+1 bins.
func BinIndex(edges []float64, x float64) int {
	lo, hi := 0, len(edges)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if edges[m] <= x {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// BinCounts counts the rows of s per bin of edges (see BinIndex). It is what
// ClickHouse computes for the monitor; tests and small callers use it here.
func BinCounts(edges []float64, s Sample) []int64 {
	out := make([]int64, len(edges)+1)
	for i, x := range s.Values {
		c := int64(1)
		if s.Counts != nil {
			c = s.Counts[i]
		}
		out[BinIndex(edges, x)] += c
	}
	return out
}

// totals validates c and returns the two window sizes; both must be > 0.
func (c Counts) totals(method string) (int64, int64, error) {
	if len(c.Reference) != len(c.Current) {
		return 0, 0, fmt.Errorf("%s: %d reference bins but %d current bins: %w", method, len(c.Reference), len(c.Current), ErrInvalid)
	}
	if c.Labels != nil && len(c.Labels) != len(c.Reference) {
		return 0, 0, fmt.Errorf("%s: %d labels for %d bins: %w", method, len(c.Labels), len(c.Reference), ErrInvalid)
	}
	var r, k int64
	for i := range c.Reference {
		if c.Reference[i] < 0 || c.Current[i] < 0 {
			return 0, 0, fmt.Errorf("%s: negative count in bin %d: %w", method, i, ErrInvalid)
		}
		r += c.Reference[i]
		k += c.Current[i]
	}
	if r == 0 || k == 0 {
		return r, k, fmt.Errorf("%s needs rows in both windows, have reference %d, current %d: %w", method, r, k, ErrInsufficient)
	}
	return r, k, nil
}

func noP(method string, v float64, r, k int64) Result {
	return Result{Method: method, Value: v, PValue: math.NaN(), Reference: r, Current: k}
}

// PSI returns the population stability index of the current window against
// the reference over shared bins or categories:
//
//	PSI = Σ_i (q_i − p_i) · ln(q_i / p_i)
//	p_i = (R_i + α) / (R + α·K),  q_i = (C_i + α) / (C + α·K)
//
// with α = PSISmoothing = 0.5 pseudo-counts, R_i and C_i the reference and
// current counts, R and C their totals, and K the number of bins that hold at
// least one row in either window (bins empty in both are dropped, so that
// empty bins do not add a term only because the totals differ). No p-value.
// Customary reading: < 0.1 stable, 0.1–0.2 moderate, > 0.2 drifted.
func PSI(c Counts) (Result, error) {
	r, k, err := c.totals(MethodPSI)
	if err != nil {
		return Result{}, err
	}
	var nb int64
	for i := range c.Reference {
		if c.Reference[i]+c.Current[i] > 0 {
			nb++
		}
	}
	dr := float64(r) + PSISmoothing*float64(nb)
	dc := float64(k) + PSISmoothing*float64(nb)
	var s float64
	for i := range c.Reference {
		if c.Reference[i]+c.Current[i] == 0 {
			continue
		}
		p := (float64(c.Reference[i]) + PSISmoothing) / dr
		q := (float64(c.Current[i]) + PSISmoothing) / dc
		s += (q - p) * math.Log(q/p)
	}
	return noP(MethodPSI, s, r, k), nil
}

// JensenShannon returns the Jensen–Shannon distance with base-2 logarithms,
// in [0, 1], over shared bins or categories (scipy.spatial.distance.
// jensenshannon(p, q, base=2)):
//
//	p_i = R_i/R, q_i = C_i/C, m = (p+q)/2
//	JS = sqrt( (KL(p‖m) + KL(q‖m)) / (2·ln 2) ),  KL(a‖b) = Σ a_i ln(a_i/b_i)
//
// with 0·ln 0 = 0; no smoothing is needed. It is the square root of the
// Jensen–Shannon divergence. No p-value.
func JensenShannon(c Counts) (Result, error) {
	r, k, err := c.totals(MethodJensenShannon)
	if err != nil {
		return Result{}, err
	}
	var left, right float64
	for i := range c.Reference {
		p := float64(c.Reference[i]) / float64(r)
		q := float64(c.Current[i]) / float64(k)
		m := (p + q) / 2
		if p > 0 {
			left += p * math.Log(p/m)
		}
		if q > 0 {
			right += q * math.Log(q/m)
		}
	}
	js := (left + right) / math.Ln2
	return noP(MethodJensenShannon, math.Sqrt(math.Max(js/2, 0)), r, k), nil
}

// Hellinger returns the Hellinger distance, in [0, 1], over shared bins or
// categories, with p_i = R_i/R and q_i = C_i/C:
//
//	H = (1/√2) · sqrt( Σ_i (√p_i − √q_i)² )  =  sqrt( 1 − Σ_i √(p_i·q_i) )
//
// The two forms are equal because Σp = Σq = 1; the first is computed since
// it does not cancel catastrophically when the distributions are close.
// No p-value.
func Hellinger(c Counts) (Result, error) {
	r, k, err := c.totals(MethodHellinger)
	if err != nil {
		return Result{}, err
	}
	var s float64
	for i := range c.Reference {
		d := math.Sqrt(float64(c.Reference[i])/float64(r)) - math.Sqrt(float64(c.Current[i])/float64(k))
		s += d * d
	}
	return noP(MethodHellinger, math.Sqrt(s)/math.Sqrt2, r, k), nil
}

// LInfinity returns max_i |p_i − q_i| with p_i = R_i/R and q_i = C_i/C, the
// largest change of any category's share. No p-value.
func LInfinity(c Counts) (Result, error) {
	r, k, err := c.totals(MethodLInfinity)
	if err != nil {
		return Result{}, err
	}
	var m float64
	for i := range c.Reference {
		m = math.Max(m, math.Abs(float64(c.Reference[i])/float64(r)-float64(c.Current[i])/float64(k)))
	}
	return noP(MethodLInfinity, m, r, k), nil
}

// UnseenShare returns the share of current rows whose category never occurs
// in the reference: Σ_{i: R_i = 0} C_i / C. No p-value.
func UnseenShare(c Counts) (Result, error) {
	r, k, err := c.totals(MethodUnseenShare)
	if err != nil {
		return Result{}, err
	}
	var u int64
	for i := range c.Reference {
		if c.Reference[i] == 0 {
			u += c.Current[i]
		}
	}
	return noP(MethodUnseenShare, float64(u)/float64(k), r, k), nil
}

// ChiSquare returns Pearson's chi-square test of homogeneity on the 2×K
// contingency table whose rows are the reference and the current counts
// (scipy.stats.chi2_contingency(table, correction=False)). A contingency
// table, rather than a goodness-of-fit test against reference proportions,
// is used because the reference is a sample too, and because categories the
// reference never saw then have a finite expected count:
//
//	E_wi = n_w · T_i / N,  X² = Σ_w Σ_i (O_wi − E_wi)² / E_wi
//	p = Q((K'−1)/2, X²/2)  (chi-square survival function, K'−1 degrees of freedom)
//
// Columns empty in both windows are dropped first (scipy rejects them);
// K' is the number of remaining columns. With K' < 2 there are no degrees of
// freedom and, like scipy, the result is X² = 0, p = 1.
func ChiSquare(c Counts) (Result, error) {
	r, k, err := c.totals(MethodChiSquare)
	if err != nil {
		return Result{}, err
	}
	n := float64(r + k)
	var x2 float64
	cols := 0
	for i := range c.Reference {
		t := c.Reference[i] + c.Current[i]
		if t == 0 {
			continue
		}
		cols++
		er := float64(r) * float64(t) / n
		ec := float64(k) * float64(t) / n
		dr := float64(c.Reference[i]) - er
		dc := float64(c.Current[i]) - ec
		x2 += dr*dr/er + dc*dc/ec
	}
	res := Result{Method: MethodChiSquare, Reference: r, Current: k, PValueMethod: PValueAsymptotic}
	if cols < 2 {
		res.Value, res.PValue = 0, 1
		return res, nil
	}
	res.Value = x2
	res.PValue = chi2SF(x2, float64(cols-1))
	return res, nil
}

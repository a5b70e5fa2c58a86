// Package stat computes the drift statistics driftwatch reports: distances
// and two-sample tests between a reference window and a current window of
// one feature or of the prediction.
//
// The package is pure computation. It imports no Kafka, ClickHouse or
// Prometheus client (STYLE.md rule 4): the monitor pushes the aggregation
// down to ClickHouse as SQL and hands the results over in one of two shapes.
//
//   - [Counts]: per-bin or per-category row counts of the reference and the
//     current window, aligned index by index. PSI, Jensen–Shannon, Hellinger,
//     L-infinity, chi-square and the unseen share take Counts. Numeric bins
//     come from [QuantileEdges] over the reference (ClickHouse:
//     quantilesExactInclusive, which is the same "linear" definition) and
//     [BinIndex] (ClickHouse: arrayCount(e -> e <= x, edges)).
//   - [Sample]: the ascending values of a window, either one entry per row or
//     one entry per distinct value with its count (GROUP BY value ORDER BY
//     value); both may be mixed and ties are allowed. Kolmogorov–Smirnov,
//     Anderson–Darling, Cramér–von Mises and Wasserstein take Samples.
//
// Every method returns a [Result] whose Method is a stable string used as the
// method column of drift_results and as the method label of Prometheus
// series. A test with no p-value reports PValue = NaN. A window that is too
// small for a method yields an error wrapping [ErrInsufficient], never a
// made-up number; malformed input (NaN, ±Inf, unsorted values, negative
// counts, mismatched lengths) yields [ErrInvalid]; a statistic that is not
// defined for the data (for example Anderson–Darling on a constant column)
// yields [ErrUndefined].
//
// Every number is checked against scipy 1.15.3 / numpy 2.2.6 through
// testdata/golden.py, which writes testdata/golden.json; the tests read it.
package stat

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Method names: stable strings for the drift_results method column and the
// Prometheus method label. Do not rename them.
const (
	MethodPSI             = "psi"
	MethodKS              = "ks"
	MethodWasserstein     = "wasserstein"
	MethodWassersteinNorm = "wasserstein_norm"
	MethodJensenShannon   = "jensen_shannon"
	MethodHellinger       = "hellinger"
	MethodAndersonDarling = "anderson_darling"
	MethodCramerVonMises  = "cramer_von_mises"
	MethodChiSquare       = "chi_square"
	MethodLInfinity       = "l_infinity"
	MethodUnseenShare     = "unseen_share"
)

// How a p-value was obtained, reported in Result.PValueMethod.
const (
	PValueNone        = ""             // the method has no p-value
	PValueExact       = "exact"        // exact null distribution
	PValueAsymptotic  = "asymptotic"   // limiting or large-sample distribution
	PValueInterpolate = "interpolated" // interpolated in a table of critical values
	PValueCapped      = "capped"       // beyond a table: the p-value is at least PValue
	PValueFloored     = "floored"      // beyond a table: the p-value is at most PValue
)

// Errors a caller has to tell apart; match them with errors.Is.
var (
	// ErrInsufficient: a window has too few rows for the method (for example
	// an empty current window). The monitor records "insufficient data"
	// rather than a value.
	ErrInsufficient = errors.New("insufficient data")
	// ErrInvalid: the input is malformed (NaN or infinite values, values not
	// ascending, negative counts, slices of different lengths).
	ErrInvalid = errors.New("invalid input")
	// ErrUndefined: the statistic is not defined for this data, for example
	// Anderson–Darling when every pooled value is equal, or the normalised
	// Wasserstein distance when the reference is constant.
	ErrUndefined = errors.New("statistic undefined")
)

// Result is the outcome of one method on one reference/current pair.
type Result struct {
	// Method is one of the Method* constants.
	Method string
	// Value is the statistic or distance.
	Value float64
	// PValue is the p-value of the test, or NaN for methods without one.
	PValue float64
	// PValueMethod says how PValue was computed (PValue* constants).
	PValueMethod string
	// Reference and Current are the row counts of the two windows that went
	// into the statistic; Current is what drift_results stores as samples.
	Reference, Current int64
}

// HasPValue reports whether r carries a p-value.
func (r Result) HasPValue() bool { return !math.IsNaN(r.PValue) }

// Sample is one window of a numeric column as ClickHouse returns it: Values
// ascending (equal neighbours allowed: they are ties), and optionally Counts,
// the number of rows that carry each value. Counts == nil means one row per
// value. A zero count is allowed and ignored.
type Sample struct {
	Values []float64
	Counts []int64
}

// NewSample returns a Sample of the given rows, one count each. It sorts a
// copy; the caller's slice is not modified.
func NewSample(rows []float64) (Sample, error) {
	v := make([]float64, len(rows))
	copy(v, rows)
	for _, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return Sample{}, fmt.Errorf("sample value %v: %w", x, ErrInvalid)
		}
	}
	slices.Sort(v)
	return Sample{Values: v}, nil
}

// N returns the number of rows in s (the sum of its counts).
func (s Sample) N() int64 {
	if s.Counts == nil {
		return int64(len(s.Values))
	}
	var n int64
	for _, c := range s.Counts {
		n += c
	}
	return n
}

// validate checks the invariants and returns the row count.
func (s Sample) validate(name string) (int64, error) {
	n, _, err := s.check(name)
	return n, err
}

// check is validate, and says whether s is compact: counted, its values
// strictly ascending and its counts positive (compress's form), which
// ecdfWalk walks faster.
func (s Sample) check(name string) (int64, bool, error) {
	if s.Counts != nil && len(s.Counts) != len(s.Values) {
		return 0, false, fmt.Errorf("%s sample: %d values but %d counts: %w", name, len(s.Values), len(s.Counts), ErrInvalid)
	}
	var n int64
	prev := math.Inf(-1)
	compact := s.Counts != nil
	for i, x := range s.Values {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, false, fmt.Errorf("%s sample value %d is %v: %w", name, i, x, ErrInvalid)
		}
		if x < prev {
			return 0, false, fmt.Errorf("%s sample values not ascending at %d: %w", name, i, ErrInvalid)
		}
		if x == prev {
			compact = false
		}
		prev = x
		if s.Counts != nil {
			c := s.Counts[i]
			if c < 0 {
				return 0, false, fmt.Errorf("%s sample count %d is negative: %w", name, i, ErrInvalid)
			}
			if c == 0 {
				compact = false
			}
			n += c
		}
	}
	if s.Counts == nil {
		n = int64(len(s.Values))
	}
	return n, compact, nil
}

// cursor walks the distinct values of a Sample in ascending order, merging
// equal neighbours and skipping zero counts.
type cursor struct {
	s Sample
	i int
}

// peek returns the next distinct value without consuming it.
func (c *cursor) peek() (float64, bool) {
	for c.i < len(c.s.Values) {
		if c.s.Counts == nil || c.s.Counts[c.i] > 0 {
			return c.s.Values[c.i], true
		}
		c.i++
	}
	return 0, false
}

// take consumes every entry equal to v and returns their total count.
func (c *cursor) take(v float64) int64 {
	var n int64
	for c.i < len(c.s.Values) && c.s.Values[c.i] == v {
		if c.s.Counts == nil {
			n++
		} else {
			n += c.s.Counts[c.i]
		}
		c.i++
	}
	return n
}

// step is one distinct value of the pooled reference and current samples
// with the number of rows each window has there.
type step struct {
	v    float64
	a, b int64
}

// merge calls f for every distinct value of the union of a and b, in
// ascending order.
func merge(a, b Sample, f func(step)) {
	ca, cb := cursor{s: a}, cursor{s: b}
	for {
		va, oka := ca.peek()
		vb, okb := cb.peek()
		switch {
		case !oka && !okb:
			return
		case oka && (!okb || va < vb):
			f(step{v: va, a: ca.take(va)})
		case okb && (!oka || vb < va):
			f(step{v: vb, b: cb.take(vb)})
		default:
			f(step{v: va, a: ca.take(va), b: cb.take(vb)})
		}
	}
}

// twoSamples validates a reference and a current sample and requires at
// least minRows rows in each.
func twoSamples(method string, ref, cur Sample, minRows int64) (int64, int64, error) {
	n1, n2, _, err := twoChecked(method, ref, cur, minRows)
	return n1, n2, err
}

// twoChecked is twoSamples, and says whether both samples are compact
// (see Sample.check).
func twoChecked(method string, ref, cur Sample, minRows int64) (int64, int64, bool, error) {
	n1, c1, err := ref.check("reference")
	return twoCheckedRef(method, n1, c1, err, cur, minRows)
}

// twoCheckedRef is twoChecked with the reference's check already done:
// its rows n1, whether it is compact and the error of Sample.check.
func twoCheckedRef(method string, n1 int64, c1 bool, err error, cur Sample, minRows int64) (int64, int64, bool, error) {
	if err != nil {
		return 0, 0, false, fmt.Errorf("%s: %w", method, err)
	}
	n2, c2, err := cur.check("current")
	if err != nil {
		return 0, 0, false, fmt.Errorf("%s: %w", method, err)
	}
	if n1 < minRows || n2 < minRows {
		return n1, n2, false, fmt.Errorf("%s needs at least %d rows per window, have reference %d, current %d: %w",
			method, minRows, n1, n2, ErrInsufficient)
	}
	return n1, n2, c1 && c2, nil
}

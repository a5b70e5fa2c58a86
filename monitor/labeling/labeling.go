// Package labeling is the labeling queue's strategy (docs/labeling.md):
// which of a model's unlabelled inferences a person should label first,
// and with what probability each was chosen, so that a performance
// estimate from the labelled rows can be re-weighted.
//
// A request for n rows draws from the pool of candidates (inferences of
// the lookback without an outcome, not shadow, not handed out within
// reissue_after) in two strata:
//
//   - random: round(random_share·n) rows drawn uniformly, inclusion
//     probability n_r / P for a pool of P rows;
//   - targeted: the other n_t rows drawn without replacement with
//     probability proportional to a weight (Efraimidis–Spirakis keys
//     −ln(U)/w, the n_t smallest), from the pool less the random rows.
//
// A row's weight is its uncertainty (floored at MinUncertainty, so that
// every row can be drawn) times DriftWeight when the row lies in a slice or
// a feature range that drifted in the newest window, else 1 (strategy
// drift: the drift factor alone). Its inclusion probability is
// π = π_r + (1 − π_r)·(1 − exp(−w·τ)), τ the (n_t+1)-th smallest key of
// the targeted draw (see Plan.InclusionProbability).
//
// The package builds the SQL expressions the monitor's store pushes down to
// ClickHouse (the uncertainty, the weight, the reasons) and does the
// arithmetic on counts; it imports no ClickHouse client.
package labeling

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/driftwatch/driftwatch/internal/chsql"
)

// Strategy is how a request chooses the targeted rows.
type Strategy string

const (
	// Uncertainty weighs rows by uncertainty times the drift factor (the
	// default).
	Uncertainty Strategy = "uncertainty"
	// Drift weighs rows by the drift factor alone.
	Drift Strategy = "drift"
	// Random draws every row uniformly (random share 1).
	Random Strategy = "random"
)

// Strategies lists the strategies, the default first.
var Strategies = []Strategy{Uncertainty, Drift, Random}

// ParseStrategy reads a strategy's name; "" is Uncertainty.
func ParseStrategy(s string) (Strategy, error) {
	if s == "" {
		return Uncertainty, nil
	}
	for _, st := range Strategies {
		if string(st) == s {
			return st, nil
		}
	}
	return "", fmt.Errorf("strategy %q: want one of uncertainty, drift, random", s)
}

// Stratum is the draw a row came from.
type Stratum string

const (
	// StratumRandom rows were drawn uniformly from the pool.
	StratumRandom Stratum = "random"
	// StratumTargeted rows were drawn with probability proportional to
	// their weight.
	StratumTargeted Stratum = "targeted"
)

// MinUncertainty floors a row's uncertainty in its weight: a row the model
// is sure of can still be drawn, so that every row of the pool has an
// inclusion probability above 0 and re-weighting reaches all of them.
const MinUncertainty = 0.01

// Config is the queue's settings (the monitor's labeling: block).
type Config struct {
	// RandomShare of each request's rows is drawn uniformly.
	RandomShare float64 `yaml:"random_share"`
	// DriftWeight multiplies the weight of a row in a drifted slice or
	// feature range.
	DriftWeight float64 `yaml:"drift_weight"`
	// ReissueAfter: a row handed out is not handed out again within it.
	ReissueAfter time.Duration `yaml:"reissue_after"`
	// Lookback: candidates are the inferences of this period before now.
	Lookback time.Duration `yaml:"lookback"`
	// Threshold is the binary decision threshold on prediction_score.
	Threshold float64 `yaml:"threshold"`
	// MaxRows is the most rows one request may ask for.
	MaxRows int `yaml:"max_rows"`
}

// DefaultConfig is a fifth of the rows at random, drifted rows four
// times as likely, no row twice within 7 days, candidates of the last 7
// days, threshold 0.5, at most 1000 rows a request.
func DefaultConfig() Config {
	return Config{RandomShare: 0.2, DriftWeight: 4, ReissueAfter: 7 * 24 * time.Hour, Lookback: 7 * 24 * time.Hour, Threshold: 0.5, MaxRows: 1000}
}

// Validate reports every invalid setting under prefix (labeling).
func (c Config) Validate(prefix string) error {
	var errs []error
	if !(c.RandomShare >= 0 && c.RandomShare <= 1) {
		errs = append(errs, fmt.Errorf("%s.random_share: must be from 0 to 1, got %v", prefix, c.RandomShare))
	}
	if !(c.DriftWeight >= 1 && c.DriftWeight <= 1000) {
		errs = append(errs, fmt.Errorf("%s.drift_weight: must be from 1 to 1000, got %v", prefix, c.DriftWeight))
	}
	if c.ReissueAfter < 0 {
		errs = append(errs, fmt.Errorf("%s.reissue_after: must not be negative, got %s", prefix, c.ReissueAfter))
	}
	if c.Lookback < time.Minute {
		errs = append(errs, fmt.Errorf("%s.lookback: must be at least 1m, got %s", prefix, c.Lookback))
	}
	if !(c.Threshold > 0 && c.Threshold < 1) {
		errs = append(errs, fmt.Errorf("%s.threshold: must be between 0 and 1, got %v", prefix, c.Threshold))
	}
	if c.MaxRows < 1 || c.MaxRows > 100_000 {
		errs = append(errs, fmt.Errorf("%s.max_rows: must be from 1 to 100000, got %d", prefix, c.MaxRows))
	}
	return errors.Join(errs...)
}

// Plan is how a request's rows split between the strata.
type Plan struct {
	Random, Targeted int
	// RandomShare is the share drawn uniformly (1 for strategy random).
	RandomShare float64
}

// NewPlan splits n rows of a pool of pool rows: round(share·n) random
// (all of them for strategy random), the rest targeted; a pool smaller
// than n gives every row, as random rows of probability 1.
func NewPlan(st Strategy, n int, share float64, pool uint64) Plan {
	if st == Random {
		share = 1
	}
	if uint64(n) >= pool {
		return Plan{Random: int(pool), RandomShare: share}
	}
	r := int(math.Round(share * float64(n)))
	return Plan{Random: r, Targeted: n - r, RandomShare: share}
}

// RandomProbability is a random row's inclusion probability, n_r / P.
func (p Plan) RandomProbability(pool uint64) float64 {
	if pool == 0 {
		return 0
	}
	return math.Min(1, float64(p.Random)/float64(pool))
}

// InclusionProbability is a row's probability of being in the request,
// π = π_r + (1 − π_r)·(1 − exp(−w·τ)), with τ the targeted draw's
// threshold: the (n_t+1)-th smallest key −ln(U)/w of its pool
// (+Inf when the pool held no more than n_t rows, so every one was
// drawn). A key is exponential with rate w, so given the other rows' keys
// a row is drawn exactly when its key is below the n_t-th smallest of
// theirs, which is τ for a drawn row: 1 − exp(−w·τ) is its inclusion
// probability given the others (order sampling; Rosén 1997, Cohen and
// Kaplan's bottom-k sketches), and the Horvitz–Thompson sum over the
// targeted rows is unbiased for the targeted draw's pool.
func (p Plan) InclusionProbability(pool uint64, weight, threshold float64) float64 {
	pr := p.RandomProbability(pool)
	if p.Targeted == 0 {
		return pr
	}
	return pr + (1-pr)*(-math.Expm1(-weight*threshold))
}

// Labelled is a labelled row of the queue for Estimate: its metric value
// (1 or 0 for accuracy, an error for MAE) and its inclusion probability.
type Labelled struct {
	Value, InclusionProbability float64
}

// Estimate is the Hájek estimate of a population mean from labelled rows:
// Σ(v/π) / Σ(1/π). Rows with π ≤ 0 cannot be re-weighted and make it NaN.
func Estimate(rows []Labelled) float64 {
	var num, den float64
	for _, r := range rows {
		if !(r.InclusionProbability > 0) {
			return math.NaN()
		}
		num += r.Value / r.InclusionProbability
		den += 1 / r.InclusionProbability
	}
	if den == 0 {
		return math.NaN()
	}
	return num / den
}

// Focus is what drifted in a model's newest window: the slices and the
// feature ranges whose rows the targeted draw over-weights.
type Focus struct {
	Slices     []Slice
	Ranges     []Range
	Categories []Category
}

// Slice is a drifted slice key=value: a key of the inferences' segment
// map or a segment_by (categorical) feature.
type Slice struct{ Key, Value string }

// Range is an over-represented range [Lower, Upper) of a drifted numeric
// feature.
type Range struct {
	Feature      string
	Lower, Upper float64
}

// Category is an over-represented category of a drifted categorical
// feature.
type Category struct{ Feature, Value string }

// Empty reports whether nothing drifted.
func (f Focus) Empty() bool { return len(f.Slices)+len(f.Ranges)+len(f.Categories) == 0 }

// ParseSlice reads a drift_results segment, "key=value"; ok is false for
// the population ("") and for the folded slice KEY=other, whose rows are
// not named by one value.
func ParseSlice(segment string) (Slice, bool) {
	k, v, ok := strings.Cut(segment, "=")
	if !ok || k == "" || v == "other" {
		return Slice{}, false
	}
	return Slice{Key: k, Value: v}, true
}

// Overrepresented returns the bins of a numeric feature whose current
// share is at least 1.5 times the reference share (and at least 1 %),
// adjacent ones merged: where the drifted feature's new rows are. The
// arrays are aligned as in drift_distributions.
func Overrepresented(feature string, lower, upper []float64, ref, cur []uint64) []Range {
	rn, cn := sum(ref), sum(cur)
	if rn == 0 || cn == 0 || len(lower) != len(ref) || len(upper) != len(ref) || len(cur) != len(ref) {
		return nil
	}
	var out []Range
	for i := range ref {
		if !over(ref[i], cur[i], rn, cn) {
			continue
		}
		if n := len(out); n > 0 && out[n-1].Upper == lower[i] {
			out[n-1].Upper = upper[i]
			continue
		}
		out = append(out, Range{Feature: feature, Lower: lower[i], Upper: upper[i]})
	}
	return out
}

// OverrepresentedCategories is Overrepresented for a categorical feature
// (never the folded __other).
func OverrepresentedCategories(feature string, cats []string, ref, cur []uint64) []Category {
	rn, cn := sum(ref), sum(cur)
	if rn == 0 || cn == 0 || len(cats) != len(ref) || len(cur) != len(ref) {
		return nil
	}
	var out []Category
	for i, c := range cats {
		if c != "__other" && over(ref[i], cur[i], rn, cn) {
			out = append(out, Category{Feature: feature, Value: c})
		}
	}
	return out
}

func over(r, c, rn, cn uint64) bool {
	rs, cs := float64(r)/float64(rn), float64(c)/float64(cn)
	return cs >= 0.01 && cs >= 1.5*rs
}

func sum(xs []uint64) uint64 {
	var s uint64
	for _, x := range xs {
		s += x
	}
	return s
}

// UncertaintySQL is the ClickHouse expression of a row of inferences'
// uncertainty, from 0 to 1:
//
//   - more than two class probabilities (multiclass): the entropy of the
//     probabilities (normalised by their sum) over log K;
//   - a score (binary): 1 − |score − threshold| / max(threshold, 1 − threshold),
//     1 at the threshold, 0 at the far end;
//   - two class probabilities without a score: 1 − |p₁ − p₂| (the score
//     rule at 0.5);
//   - otherwise (a regressor's value, a bare label): 1, every row alike —
//     a point prediction says nothing of its own uncertainty, so the drift
//     factor and the random share decide.
func UncertaintySQL(threshold float64) string {
	t := Float(threshold)
	return fmt.Sprintf(`multiIf(
	length(prediction_probabilities) > 2 AND arraySum(mapValues(prediction_probabilities)) > 0,
		least(1, greatest(0, (log(arraySum(mapValues(prediction_probabilities))) - arraySum(p -> if(p > 0, p * log(p), 0), mapValues(prediction_probabilities)) / arraySum(mapValues(prediction_probabilities))) / log(length(prediction_probabilities)))),
	isNotNull(prediction_score) AND isFinite(assumeNotNull(prediction_score)),
		greatest(0, 1 - abs(assumeNotNull(prediction_score) - %[1]s) / greatest(%[1]s, 1 - %[1]s)),
	length(prediction_probabilities) = 2 AND arraySum(mapValues(prediction_probabilities)) > 0,
		greatest(0, 1 - abs(arrayMax(mapValues(prediction_probabilities)) - arrayMin(mapValues(prediction_probabilities))) / arraySum(mapValues(prediction_probabilities))),
	1)`, t)
}

// ReasonsSQL is the ClickHouse expression of the focus a row of
// inferences lies in, as an array of reasons ("slice region=eu",
// "range f3 [1.28, +inf)", "category plan=pro"); empty outside the focus.
func ReasonsSQL(f Focus) string {
	var parts []string
	for _, s := range f.Slices {
		k, v := chsql.String(s.Key), chsql.String(s.Value)
		parts = append(parts, fmt.Sprintf("if(segment[%s] = %s OR features_categorical[%s] = %s, %s, '')", k, v, k, v, chsql.String("slice "+s.Key+"="+s.Value)))
	}
	for _, r := range f.Ranges {
		k := chsql.String(r.Feature)
		cond := fmt.Sprintf("mapContains(features_numeric, %s)", k)
		if !math.IsInf(r.Lower, -1) {
			cond += fmt.Sprintf(" AND features_numeric[%s] >= %s", k, Float(r.Lower))
		}
		if !math.IsInf(r.Upper, 1) {
			cond += fmt.Sprintf(" AND features_numeric[%s] < %s", k, Float(r.Upper))
		}
		parts = append(parts, fmt.Sprintf("if(%s, %s, '')", cond, chsql.String(r.String())))
	}
	for _, c := range f.Categories {
		k, v := chsql.String(c.Feature), chsql.String(c.Value)
		parts = append(parts, fmt.Sprintf("if(features_categorical[%s] = %s, %s, '')", k, v, chsql.String("category "+c.Feature+"="+c.Value)))
	}
	if len(parts) == 0 {
		return "CAST([], 'Array(String)')"
	}
	return "arrayFilter(x -> x != '', [" + strings.Join(parts, ", ") + "])"
}

// WeightSQL is the ClickHouse expression of a row's weight in the targeted
// draw, given the names of its uncertainty and reasons columns.
func WeightSQL(st Strategy, driftWeight float64, uncertainty, reasons string) string {
	factor := fmt.Sprintf("if(notEmpty(%s), %s, 1)", reasons, Float(driftWeight))
	if st == Drift || st == Random {
		return factor
	}
	return fmt.Sprintf("greatest(%s, %s) * %s", uncertainty, Float(MinUncertainty), factor)
}

// String is the range as a reason: "range f3 [1.28, +inf)".
func (r Range) String() string {
	return fmt.Sprintf("range %s [%s, %s)", r.Feature, edge(r.Lower), edge(r.Upper))
}

func edge(x float64) string {
	switch {
	case math.IsInf(x, 1):
		return "+inf"
	case math.IsInf(x, -1):
		return "-inf"
	}
	return strconv.FormatFloat(x, 'g', 6, 64)
}

// Float returns a finite x as a ClickHouse Float64 literal (NaN and ±Inf
// as the functions that make them).
func Float(x float64) string {
	switch {
	case math.IsNaN(x):
		return "nan"
	case math.IsInf(x, 1):
		return "inf"
	case math.IsInf(x, -1):
		return "-inf"
	}
	return "toFloat64(" + strconv.FormatFloat(x, 'g', -1, 64) + ")"
}

package multivariate

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// Config is the multivariate drift policy (policy.multivariate).
type Config struct {
	// Enabled computes both methods on every window of the model (off by
	// default: see docs/multivariate.md, "Why opt-in").
	Enabled bool `yaml:"enabled"`
	// Rows is about the most rows per window of the joint sample both
	// methods run on (hash-keyed, as the per-feature samples).
	Rows int `yaml:"rows"`
	// VarianceShare is the share of the reference's variance the PCA's
	// components keep (NannyML's default 0.65).
	VarianceShare float64 `yaml:"variance_share"`
	// Chunks and BandStds form the reconstruction error's band: the
	// reference sample in Chunks chunks, their mean errors' mean ± BandStds
	// standard deviations (NannyML's default 3).
	Chunks   int     `yaml:"chunks"`
	BandStds float64 `yaml:"band_stds"`
	// ClassifierRows is the most rows per window the domain classifier
	// trains and validates on, Folds its cross-validation folds.
	ClassifierRows int `yaml:"classifier_rows"`
	Folds          int `yaml:"folds"`
	// Pairs is the pair budget: the classifier adds the products of the
	// Pairs feature pairs whose correlation changed most between the
	// windows (measured on joint rows the classifier does not see).
	Pairs int `yaml:"pairs"`
	// Categorical adds the categorical features' top categories as one-hot
	// columns to both methods (off by default: with many categories the
	// columns dilute the reconstruction error of numeric changes and cost
	// more; docs/multivariate.md, "Categorical features").
	Categorical bool `yaml:"categorical"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Rows: 5000, VarianceShare: 0.65, Chunks: 10, BandStds: 3, ClassifierRows: 1000, Folds: 5, Pairs: 20}
}

// Validate names every bad setting under prefix (policy.multivariate).
func (c Config) Validate(prefix string) error {
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf(prefix+"."+f, a...)) }
	if c.Rows < 100 {
		bad("rows: must be at least 100, got %d", c.Rows)
	}
	if !(c.VarianceShare > 0 && c.VarianceShare < 1) {
		bad("variance_share: must be in (0, 1), got %g", c.VarianceShare)
	}
	if c.Chunks < 2 {
		bad("chunks: must be at least 2, got %d", c.Chunks)
	}
	if !(c.BandStds > 0) {
		bad("band_stds: must be positive, got %g", c.BandStds)
	}
	if c.Folds < 2 {
		bad("folds: must be at least 2, got %d", c.Folds)
	}
	if c.ClassifierRows < 10*c.Folds {
		bad("classifier_rows: must be at least 10 per fold (%d), got %d", 10*c.Folds, c.ClassifierRows)
	}
	if c.Pairs < 0 || c.Pairs > 200 {
		bad("pairs: must be in [0, 200], got %d", c.Pairs)
	}
	return errors.Join(errs...)
}

// Names of the multivariate pseudo-features in drift_results and of their
// methods.
const (
	ReconstructionFeature = "__multivariate_reconstruction"
	ClassifierFeature     = "__multivariate_classifier"
	MethodReconstruction  = "reconstruction_error"
	MethodClassifier      = "domain_classifier"
)

// IsFeature reports whether f is one of the multivariate pseudo-features.
func IsFeature(f string) bool { return f == ReconstructionFeature || f == ClassifierFeature }

// Leaning is one column the domain classifier leaned on: a feature or a
// product "a*b", with its absolute standardised coefficient.
type Leaning struct {
	Column string
	Weight float64
	// Features are the input features of the column (two for a product).
	Features []string
}

// Reconstruction is one window's reconstruction error against the
// reference's band.
type Reconstruction struct {
	Error      float64
	Band       Band
	Components int
	Drifted    bool
}

// Classifier is one window's domain classifier: its cross-validated AUC,
// the AUC chance stays below (Threshold) and what it leaned on.
type Classifier struct {
	AUC, Threshold float64
	Drifted        bool
	Leaned         []Leaning
	Pairs          int
}

// ClassifierQuantile is the quantile of the independent-folds null that
// Classify's threshold is (see Classify).
const ClassifierQuantile = 0.99

// LeanedCount is how many columns a classifier's explanation names.
const LeanedCount = 3

// Impute replaces every NaN of rows (in place) with the column's mean over
// ref (NannyML's default SimpleImputer strategy), 0 where the reference has
// none; it returns the means.
func Impute(ref [][]float64, rows ...[][]float64) []float64 {
	if len(ref) == 0 {
		return nil
	}
	d := len(ref[0])
	mean := make([]float64, d)
	n := make([]float64, d)
	for _, r := range ref {
		for j, v := range r {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				mean[j] += v
				n[j]++
			}
		}
	}
	for j := range mean {
		if n[j] > 0 {
			mean[j] /= n[j]
		}
	}
	for _, set := range append([][][]float64{ref}, rows...) {
		for _, r := range set {
			for j, v := range r {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					r[j] = mean[j]
				}
			}
		}
	}
	return mean
}

// Reconstruct fits the PCA on the first half of ref (rows already
// imputed, in hash order), forms the band from the chunks of the other half
// and measures cur's mean reconstruction error.
//
// Not NannyML's way, which fits on the whole reference and forms the band
// on the same rows: their errors are then in-sample, lower than any new
// window's. With 60 independent features and 5,000 rows the gap (4.49
// against 4.76 in TestClassifyAndReconstructWide) is fourteen of the
// chunks' standard deviations, so every window of a wide model would
// drift. On held-out rows the band and the window are both out of sample.
func Reconstruct(ref, cur [][]float64, c Config) (Reconstruction, error) {
	fit, held := ref[:len(ref)/2], ref[len(ref)/2:]
	p, err := FitPCA(fit, c.VarianceShare)
	if err != nil {
		return Reconstruction{}, err
	}
	b, err := ReferenceBand(p, held, c.Chunks, c.BandStds)
	if err != nil {
		return Reconstruction{}, err
	}
	e := p.MeanError(cur)
	return Reconstruction{Error: e, Band: b, Components: len(p.Comps), Drifted: b.Outside(e)}, nil
}

// Classify trains the domain classifier on the last ClassifierRows rows of
// each window (at most half of either; rows already imputed, in hash
// order). The rows before them choose the pairs, so the choice, made
// knowing which window a row came from, does not leak into the
// cross-validated AUC.
//
// The threshold stands in for the permutation threshold (PermutationThreshold,
// a cross-validation per round: ten rounds would cost ten times the
// classifier). When the windows do not differ, each fold's validation
// scores are independent of its labels whatever the fitted model, so each
// fold's AUC is a Mann–Whitney statistic with mean ½ and variance
// (n₀+n₁+1)/(12·n₀·n₁); taking the folds as independent, the mean over k
// folds has variance Σ var_f / k². They are not quite (each fold's
// validation rows train the others), which makes that variance too small:
// its 0.95 quantile is 0.01 below the permutation null's. Its
// ClassifierQuantile (0.99) quantile lies between the permutation null's
// 0.95 and 0.99 quantiles (TestAnalyticThresholdMatchesPermutation), a
// chance of a false alarm per window between 1 and 5 %.
func Classify(ref, cur [][]float64, names []string, c Config) (Classifier, error) {
	return ClassifyColumns(ref, cur, names, names, c)
}

// ClassifyColumns is Classify where column i is of feature origins[i] (a
// one-hot column "color=red" of feature "color"): the leaned-on columns
// name their features, and no pair is of two columns of one feature (the
// product of two one-hot columns of a feature is always 0).
func ClassifyColumns(ref, cur [][]float64, names, origins []string, c Config) (Classifier, error) {
	nc := min(c.ClassifierRows, len(ref)/2, len(cur)/2)
	if nc < 2*c.Folds {
		return Classifier{}, ErrInsufficient
	}
	train := func(rows [][]float64) [][]float64 { return rows[len(rows)-nc:] }
	choose := func(rows [][]float64) [][]float64 { return rows[:len(rows)-nc] }
	pairs := changedPairs(choose(ref), choose(cur), c.Pairs, origins)
	tr, tc := train(ref), train(cur)
	x := make([][]float64, 0, 2*nc)
	y := make([]float64, 0, 2*nc)
	// Reference rows then current ones: the folds (row i in fold i mod k)
	// get nc/k of each, ± 1, whatever k.
	for i := range nc {
		x, y = append(x, tr[i]), append(y, 0)
	}
	for i := range nc {
		x, y = append(x, tc[i]), append(y, 1)
	}
	x, cols := ExpandPairs(x, names, pairs)
	auc, err := CrossValidatedAUC(x, y, c.Folds, 1)
	if err != nil {
		return Classifier{}, err
	}
	m, err := FitLogistic(x, y, 1)
	if err != nil {
		return Classifier{}, err
	}
	thr := AnalyticThreshold(y, c.Folds, ClassifierQuantile)
	out := Classifier{AUC: auc, Threshold: thr, Drifted: auc > thr, Pairs: len(pairs)}
	for _, col := range m.Leaned(cols, LeanedCount) {
		i := slices.Index(cols, col)
		l := Leaning{Column: col, Weight: math.Abs(m.Coef[i])}
		if i < len(names) {
			l.Features = []string{origins[i]}
		} else {
			p := pairs[i-len(names)]
			l.Features = []string{origins[p[0]], origins[p[1]]}
		}
		out.Leaned = append(out.Leaned, l)
	}
	return out, nil
}

// AnalyticThreshold is the q quantile of the mean fold AUC (row i in fold
// i mod folds) when labels and scores are independent; see Classify.
func AnalyticThreshold(y []float64, folds int, q float64) float64 {
	v := 0.0
	for f := range folds {
		var n0, n1 float64
		for i := f; i < len(y); i += folds {
			if y[i] == 1 {
				n1++
			} else {
				n0++
			}
		}
		if n0 == 0 || n1 == 0 {
			return math.NaN()
		}
		v += (n0 + n1 + 1) / (12 * n0 * n1)
	}
	return 0.5 + normalQuantile(q)*math.Sqrt(v)/float64(folds)
}

// normalQuantile is the standard normal's quantile, by bisection on the
// CDF (math.Erfc); 100 halvings of [-10, 10] reach float64 precision.
func normalQuantile(p float64) float64 {
	lo, hi := -10.0, 10.0
	for range 100 {
		mid := (lo + hi) / 2
		if 0.5*math.Erfc(-mid/math.Sqrt2) < p {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

// ChangedPairs returns at most budget pairs (a < b) of columns whose
// Pearson correlation differs most between ref and cur, largest change
// first (pairs with a constant column have none and are left out).
//
// Why by change of correlation and not among the features of the largest
// marginal drift: drift that only a pair shows leaves every marginal, and
// so every per-feature score, alone; the product a·b separates the windows
// exactly when the pair's covariance changed.
func ChangedPairs(ref, cur [][]float64, budget int) [][2]int {
	return changedPairs(ref, cur, budget, nil)
}

// changedPairs is ChangedPairs leaving out the pairs of two columns of one
// feature (origins names each column's feature; nil: every column its own).
func changedPairs(ref, cur [][]float64, budget int, origins []string) [][2]int {
	if budget == 0 || len(ref) < 3 || len(cur) < 3 {
		return nil
	}
	cr, cc := correlations(ref), correlations(cur)
	d := len(ref[0])
	type pair struct {
		a, b  int
		delta float64
	}
	var ps []pair
	for a := 0; a < d; a++ {
		for b := a + 1; b < d; b++ {
			if origins != nil && origins[a] == origins[b] {
				continue
			}
			if dl := math.Abs(cr[a][b] - cc[a][b]); !math.IsNaN(dl) {
				ps = append(ps, pair{a, b, dl})
			}
		}
	}
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].delta > ps[j].delta })
	out := make([][2]int, 0, min(budget, len(ps)))
	for _, p := range ps[:min(budget, len(ps))] {
		out = append(out, [2]int{p.a, p.b})
	}
	return out
}

// correlations is the Pearson correlation matrix of rows' columns (NaN
// for a constant column).
func correlations(rows [][]float64) [][]float64 {
	d := len(rows[0])
	n := float64(len(rows))
	mean := make([]float64, d)
	for _, r := range rows {
		for j, v := range r {
			mean[j] += v
		}
	}
	for j := range mean {
		mean[j] /= n
	}
	cov := make([][]float64, d)
	for i := range cov {
		cov[i] = make([]float64, d)
	}
	z := make([]float64, d)
	for _, r := range rows {
		for j, v := range r {
			z[j] = v - mean[j]
		}
		for a := 0; a < d; a++ {
			for b := a; b < d; b++ {
				cov[a][b] += z[a] * z[b]
			}
		}
	}
	for a := 0; a < d; a++ {
		for b := a + 1; b < d; b++ {
			cov[a][b] /= math.Sqrt(cov[a][a] * cov[b][b])
			cov[b][a] = cov[a][b]
		}
	}
	return cov
}

// ExpandPairs appends to every row the products of the given pairs of its
// centred columns (column means over all rows), named "a*b"; Expand is
// ExpandPairs with every pair.
func ExpandPairs(rows [][]float64, names []string, pairs [][2]int) ([][]float64, []string) {
	if len(rows) == 0 {
		return nil, names
	}
	d := len(rows[0])
	mean := make([]float64, d)
	for _, r := range rows {
		for j, v := range r {
			mean[j] += v
		}
	}
	for j := range mean {
		mean[j] /= float64(len(rows))
	}
	out := make([][]float64, len(rows))
	for i, r := range rows {
		e := append(make([]float64, 0, d+len(pairs)), r...)
		for _, p := range pairs {
			e = append(e, (r[p[0]]-mean[p[0]])*(r[p[1]]-mean[p[1]]))
		}
		out[i] = e
	}
	en := append([]string(nil), names...)
	for _, p := range pairs {
		en = append(en, names[p[0]]+"*"+names[p[1]])
	}
	return out, en
}

// LeanedNote is the note of a classifier's row: the columns it leaned on.
func LeanedNote(l []Leaning) string {
	parts := make([]string, len(l))
	for i, x := range l {
		parts[i] = fmt.Sprintf("%s (%.3g)", x.Column, x.Weight)
	}
	return "leaned on " + strings.Join(parts, ", ")
}

// LeanedFeatures are the input features behind the columns l names (a
// product names both of its features), in order, once each.
func LeanedFeatures(l []Leaning) []string {
	var out []string
	for _, x := range l {
		for _, f := range x.Features {
			if !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	return out
}

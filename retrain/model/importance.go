package model

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/apache/arrow/go/v15/arrow"
)

// PermutationOptions configures PermutationImportance.
type PermutationOptions struct {
	// Repeats is how many shuffles are averaged per feature (default 5).
	Repeats int
	// Seed makes the shuffles reproducible.
	Seed uint64
	// MaxRows, when positive, bounds the rows FeaturePermutationImportance
	// uses (every k-th row), since its cost is rows × columns × features ×
	// repeats.
	MaxRows int
}

// PermutationImportance returns, per feature, the drop in metric m when that
// feature's column is shuffled, averaged over opts.Repeats shuffles with a
// fixed seed (scikit-learn's permutation_importance, importances_mean). cols
// holds one column per feature (all of len(y)); predict maps columns to
// predictions. A drop is signed so that a positive value always means the
// model got worse, whichever direction m improves in. cols is left as given.
func PermutationImportance(m Metric, y []float64, cols [][]float64, predict func(cols [][]float64) ([]float64, error), opts PermutationOptions) ([]float64, error) {
	if opts.Repeats <= 0 {
		opts.Repeats = 5
	}
	for j, c := range cols {
		if len(c) != len(y) {
			return nil, fmt.Errorf("%w: feature %d has %d rows, y has %d", ErrInput, j, len(c), len(y))
		}
	}
	p, err := predict(cols)
	if err != nil {
		return nil, err
	}
	base, err := m.Compute(y, p)
	if err != nil {
		return nil, err
	}
	sign := 1.0
	if !m.HigherIsBetter() {
		sign = -1
	}
	out := make([]float64, len(cols))
	work := make([][]float64, len(cols))
	copy(work, cols)
	shuffled := make([]float64, len(y))
	for j := range cols {
		rng := rand.New(rand.NewPCG(opts.Seed, uint64(j)))
		var sum float64
		for range opts.Repeats {
			copy(shuffled, cols[j])
			rng.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
			work[j] = shuffled
			p, err := predict(work)
			if err != nil {
				return nil, err
			}
			s, err := m.Compute(y, p)
			if err != nil {
				return nil, err
			}
			sum += sign * (base - s)
		}
		work[j] = cols[j]
		out[j] = sum / float64(opts.Repeats)
	}
	return out, nil
}

// NormaliseImportance clips negative importances (a shuffle that helped by
// chance is noise, not a negative use) to zero and scales the rest to sum to
// one, so importances compare across models and metrics. All zeros stay zero;
// NaN counts as zero.
func NormaliseImportance(imp []float64) []float64 {
	out := make([]float64, len(imp))
	var sum float64
	for i, v := range imp {
		if v > 0 && !math.IsInf(v, 0) {
			out[i] = v
			sum += v
		}
	}
	if sum == 0 {
		return out
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}

// columnFeatures returns the input features in order and, per output
// column of the preprocessor, the index of its feature: a numeric feature
// owns its column and its missing indicator, a categorical feature its
// one-hot and "other" columns.
func (p *Preprocessor) columnFeatures() (names []string, of []int) {
	idx := map[string]int{}
	add := func(name string) {
		i, ok := idx[name]
		if !ok {
			i = len(names)
			idx[name] = i
			names = append(names, name)
		}
		of = append(of, i)
	}
	for _, f := range p.Numeric {
		add(f.Name)
	}
	for _, f := range p.Numeric {
		if f.Indicator {
			add(f.Name)
		}
	}
	for _, f := range p.Categorical {
		for range len(f.Categories) + 1 {
			add(f.Name)
		}
	}
	return names, of
}

// CoefficientImportance returns each input feature's share of the model's
// absolute standardised coefficients: numeric features are standardised by
// the preprocessor, so a coefficient is the change in the linear predictor
// per standard deviation. A feature sums the absolute coefficients of its
// columns (its missing indicator; a categorical feature's one-hot and "other"
// columns). The shares are normalised with NormaliseImportance.
func (m *Model) CoefficientImportance() map[string]float64 {
	names, of := m.Preprocessor.columnFeatures()
	raw := make([]float64, len(names))
	for c, f := range of {
		if c < len(m.Coef) {
			raw[f] += math.Abs(m.Coef[c])
		}
	}
	norm := NormaliseImportance(raw)
	out := make(map[string]float64, len(names))
	for i, n := range names {
		out[n] = norm[i]
	}
	return out
}

// Design appends the preprocessed rows of rec (row-major, one row of
// len(Columns) values each) to dst.
func (m *Model) Design(rec arrow.Record, dst []float64) ([]float64, error) {
	c, err := featureColumns(rec)
	if err != nil {
		return nil, err
	}
	enc := m.encoder()
	n, p := int(rec.NumRows()), enc.ncols
	start := len(dst)
	dst = append(dst, make([]float64, n*p)...)
	if n > 0 {
		enc.encode(c, 0, n, dst[start:], p)
	}
	return dst, nil
}

// FeaturePermutationImportance is the normalised permutation importance of
// each input feature on design rows x (from Design) with labels y: shuffling
// a feature moves all its columns together, as shuffling its raw values
// would. Unnormalised values are returned too.
func (m *Model) FeaturePermutationImportance(metric Metric, y, x []float64, opts PermutationOptions) (norm, raw map[string]float64, err error) {
	names, of := m.Preprocessor.columnFeatures()
	p := len(of)
	n := len(y)
	if len(x) != n*p {
		return nil, nil, fmt.Errorf("%w: %d design values for %d rows of %d columns", ErrInput, len(x), n, p)
	}
	if opts.MaxRows > 0 && n > opts.MaxRows {
		k := (n + opts.MaxRows - 1) / opts.MaxRows
		var ys, xs []float64
		for i := 0; i < n; i += k {
			ys, xs = append(ys, y[i]), append(xs, x[i*p:(i+1)*p]...)
		}
		y, x, n = ys, xs, len(ys)
	}
	// Each feature's "column" is a row index: shuffling it permutes the
	// rows that feature's columns are read from.
	idx := make([][]float64, len(names))
	for j := range idx {
		idx[j] = make([]float64, n)
		for i := range n {
			idx[j][i] = float64(i)
		}
	}
	out := make([]float64, n)
	predict := func(cols [][]float64) ([]float64, error) {
		for i := range n {
			z := m.Intercept
			for c, f := range of {
				z += x[int(cols[f][i])*p+c] * m.Coef[c]
			}
			if m.Kind == KindLogistic {
				out[i] = sigmoid(z)
			} else {
				out[i] = z
			}
		}
		return out, nil
	}
	imp, err := PermutationImportance(metric, y, idx, predict, opts)
	if err != nil {
		return nil, nil, err
	}
	nv := NormaliseImportance(imp)
	norm, raw = make(map[string]float64, len(names)), make(map[string]float64, len(names))
	for j, name := range names {
		norm[name], raw[name] = nv[j], imp[j]
	}
	return norm, raw, nil
}

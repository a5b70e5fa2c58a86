package model

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// PermutationOptions configures PermutationImportance.
type PermutationOptions struct {
	// Repeats is how many shuffles are averaged per feature (default 5).
	Repeats int
	// Seed makes the shuffles reproducible.
	Seed uint64
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

// CoefficientImportance returns each input feature's share of the model's
// absolute standardised coefficients: numeric features are standardised by
// the preprocessor, so a coefficient is the change in the linear predictor
// per standard deviation. A feature sums the absolute coefficients of its
// columns (its missing indicator; a categorical feature's one-hot and "other"
// columns). The shares are normalised with NormaliseImportance.
func (m *Model) CoefficientImportance() map[string]float64 {
	var names []string
	var raw []float64
	col := 0
	take := func() float64 {
		v := 0.0
		if col < len(m.Coef) {
			v = math.Abs(m.Coef[col])
		}
		col++
		return v
	}
	idx := map[string]int{}
	add := func(name string, v float64) {
		i, ok := idx[name]
		if !ok {
			i = len(names)
			idx[name] = i
			names = append(names, name)
			raw = append(raw, 0)
		}
		raw[i] += v
	}
	for _, f := range m.Preprocessor.Numeric {
		add(f.Name, take())
	}
	for _, f := range m.Preprocessor.Numeric {
		if f.Indicator {
			add(f.Name, take())
		}
	}
	for _, f := range m.Preprocessor.Categorical {
		for range len(f.Categories) + 1 {
			add(f.Name, take())
		}
	}
	norm := NormaliseImportance(raw)
	out := make(map[string]float64, len(names))
	for i, n := range names {
		out[n] = norm[i]
	}
	return out
}

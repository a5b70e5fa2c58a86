package multivariate

import (
	"errors"
	"math"
	"math/rand/v2"
	"sort"
)

// Band is the reference's range of mean reconstruction error: the mean of
// chunk errors ± k standard deviations (ddof 0), NannyML's default
// StandardDeviationThreshold with k = 3.
type Band struct {
	Mean, Std, Lower, Upper float64
}

// ReferenceBand splits the reference sample into chunks (row i in chunk
// i % chunks: the hash-keyed sample is in hash order, so the chunks are
// random subsets, standing in for NannyML's time-ordered reference chunks)
// and forms the band from the chunks' mean errors.
func ReferenceBand(p *PCA, rows [][]float64, chunks int, k float64) (Band, error) {
	if chunks < 2 || len(rows) < chunks {
		return Band{}, ErrInsufficient
	}
	parts := make([][][]float64, chunks)
	for i, r := range rows {
		parts[i%chunks] = append(parts[i%chunks], r)
	}
	errs := make([]float64, chunks)
	var b Band
	for i, part := range parts {
		errs[i] = p.MeanError(part)
		b.Mean += errs[i]
	}
	b.Mean /= float64(chunks)
	for _, e := range errs {
		b.Std += (e - b.Mean) * (e - b.Mean)
	}
	b.Std = math.Sqrt(b.Std / float64(chunks))
	b.Lower, b.Upper = b.Mean-k*b.Std, b.Mean+k*b.Std
	return b, nil
}

// Outside reports whether a window's mean error leaves the band (false for NaN).
func (b Band) Outside(e float64) bool { return e > b.Upper || e < b.Lower }

// PermutationThreshold is the q-quantile of the cross-validated AUC with the
// labels shuffled (rounds times, seeded): the AUC a classifier reaches by
// chance on these rows, above which the windows are told apart.
func PermutationThreshold(x [][]float64, y []float64, folds int, c float64, rounds int, q float64, seed uint64) (float64, error) {
	if rounds < 1 || !(q > 0 && q < 1) {
		return math.NaN(), errors.New("multivariate: permutation needs rounds ≥ 1 and 0 < q < 1")
	}
	rng := rand.New(rand.NewPCG(seed, 18))
	perm := append([]float64(nil), y...)
	aucs := make([]float64, rounds)
	for r := range aucs {
		rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		a, err := CrossValidatedAUC(x, perm, folds, c)
		if err != nil {
			return math.NaN(), err
		}
		aucs[r] = a
	}
	sort.Float64s(aucs)
	// numpy.quantile "linear".
	pos := q * float64(rounds-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, rounds-1)
	return aucs[lo] + (pos-float64(lo))*(aucs[hi]-aucs[lo]), nil
}

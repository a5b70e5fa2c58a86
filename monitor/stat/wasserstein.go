package stat

import (
	"fmt"
	"math"
)

// Wasserstein returns the first Wasserstein (earth mover's) distance between
// the reference and the current empirical distributions, in the units of the
// column (scipy.stats.wasserstein_distance(ref, cur)):
//
//	W₁ = ∫ |F_ref(x) − F_cur(x)| dx = Σ_j |F_ref(z_j) − F_cur(z_j)|·(z_{j+1} − z_j)
//
// over the ascending distinct pooled values z_j. No p-value. Needs at least
// one row in each window.
func Wasserstein(ref, cur Sample) (Result, error) {
	n1, n2, err := twoSamples(MethodWasserstein, ref, cur, 1)
	if err != nil {
		return Result{}, err
	}
	return noP(MethodWasserstein, wasserstein(ref, cur, n1, n2), n1, n2), nil
}

func wasserstein(ref, cur Sample, n1, n2 int64) float64 {
	_, _, w := ecdfWalk(ref, cur, n1, n2)
	return w
}

// WassersteinNorm returns Wasserstein(ref, cur) divided by the population
// standard deviation of the reference (ddof = 0, numpy.std's default:
// σ² = Σ(x − x̄)²/n), which makes the distance unit-free and comparable
// across features: 0.1 means the mass moved a tenth of a reference standard
// deviation on average. A constant reference (σ = 0) yields ErrUndefined;
// use the raw distance for such a column. No p-value.
func WassersteinNorm(ref, cur Sample) (Result, error) {
	n1, n2, err := twoSamples(MethodWassersteinNorm, ref, cur, 1)
	if err != nil {
		return Result{}, err
	}
	sd := stddev(ref, n1)
	if sd == 0 {
		return Result{}, fmt.Errorf("%s: reference is constant: %w", MethodWassersteinNorm, ErrUndefined)
	}
	return noP(MethodWassersteinNorm, wasserstein(ref, cur, n1, n2)/sd, n1, n2), nil
}

// stddev is the two-pass population standard deviation (ddof = 0).
func stddev(s Sample, n int64) float64 {
	var sum float64
	for i, v := range s.Values {
		sum += v * float64(count(s, i))
	}
	mean := sum / float64(n)
	var ss float64
	for i, v := range s.Values {
		d := v - mean
		ss += d * d * float64(count(s, i))
	}
	return math.Sqrt(ss / float64(n))
}

func count(s Sample, i int) int64 {
	if s.Counts == nil {
		return 1
	}
	return s.Counts[i]
}

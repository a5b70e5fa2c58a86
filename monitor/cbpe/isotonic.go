package cbpe

import (
	"math"
	"sort"
)

// Isotonic is a fitted increasing isotonic regression, scikit-learn 1.6.1's
// IsotonicRegression(out_of_bounds="clip", increasing=True) (NannyML's
// IsotonicCalibrator): knots X (strictly increasing) and Y, predictions
// interpolated linearly between knots and clipped to the end knots outside.
type Isotonic struct {
	X, Y []float64
}

// resolution is numpy's float64 resolution (1e-15), the distance under
// which sklearn's _make_unique merges two x values.
const resolution = 1e-15

// FitIsotonic fits y (0/1 or any values) against x by pool-adjacent-
// violators, as sklearn does: rows sorted by (x, y); equal x merged into
// one point with the mean y and the count as weight; PAVA on the weighted
// points; then the interior points of each constant run dropped, keeping a
// run's two ends.
func FitIsotonic(x, y []float64) Isotonic {
	idx := make([]int, len(x))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		if x[idx[a]] != x[idx[b]] {
			return x[idx[a]] < x[idx[b]]
		}
		return y[idx[a]] < y[idx[b]]
	})
	// _make_unique: weighted means of y per unique x.
	var ux, uy, uw []float64
	for k, i := range idx {
		if k == 0 || x[i]-ux[len(ux)-1] >= resolution {
			ux, uy, uw = append(ux, x[i]), append(uy, 0), append(uw, 0)
		}
		uy[len(uy)-1] += y[i]
		uw[len(uw)-1]++
	}
	for i := range uy {
		uy[i] /= uw[i]
	}
	fit := pava(uy, uw)
	if len(fit) <= 2 {
		return Isotonic{X: ux, Y: fit}
	}
	keep := make([]bool, len(fit))
	keep[0], keep[len(fit)-1] = true, true
	for i := 1; i < len(fit)-1; i++ {
		keep[i] = fit[i-1] != fit[i] || fit[i] != fit[i+1]
	}
	var iso Isotonic
	for i, k := range keep {
		if k {
			iso.X = append(iso.X, ux[i])
			iso.Y = append(iso.Y, fit[i])
		}
	}
	return iso
}

// pava is the weighted pool-adjacent-violators algorithm for an increasing
// fit: each block's value is the weighted mean of its points.
func pava(y, w []float64) []float64 {
	type block struct{ sum, weight float64 }
	var bs []block
	var ends []int // index one past each block's last point
	for i := range y {
		bs = append(bs, block{y[i] * w[i], w[i]})
		ends = append(ends, i+1)
		for len(bs) > 1 {
			a, b := bs[len(bs)-2], bs[len(bs)-1]
			if a.sum/a.weight < b.sum/b.weight {
				break
			}
			bs = bs[:len(bs)-1]
			ends = ends[:len(ends)-1]
			bs[len(bs)-1] = block{a.sum + b.sum, a.weight + b.weight}
			ends[len(ends)-1] = i + 1
		}
	}
	out := make([]float64, len(y))
	start := 0
	for k, b := range bs {
		v := b.sum / b.weight
		for i := start; i < ends[k]; i++ {
			out[i] = v
		}
		start = ends[k]
	}
	return out
}

// Predict returns the fitted value at s: linear between the knots around
// it, the end knot's value outside them.
func (f Isotonic) Predict(s float64) float64 {
	n := len(f.X)
	switch {
	case n == 0 || math.IsNaN(s):
		return math.NaN()
	case n == 1 || s <= f.X[0]:
		return f.Y[0]
	case s >= f.X[n-1]:
		return f.Y[n-1]
	}
	i := sort.SearchFloat64s(f.X, s) // f.X[i-1] < s ≤ f.X[i]
	lo, hi := i-1, i
	return f.Y[lo] + (f.Y[hi]-f.Y[lo])*(s-f.X[lo])/(f.X[hi]-f.X[lo])
}

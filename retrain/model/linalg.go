package model

import (
	"errors"
	"math"
)

// ErrNotPositiveDefinite is returned when a system the solver builds is
// singular, which the L2 penalty rules out unless the data hold NaN or
// infinities.
var ErrNotPositiveDefinite = errors.New("matrix is not positive definite")

// cholesky factors the symmetric matrix a (n×n, row-major, upper triangle
// read) in place into its lower Cholesky factor L with a = L Lᵀ.
func cholesky(a []float64, n int) error {
	for j := range n {
		d := a[j*n+j]
		for k := range j {
			d -= a[j*n+k] * a[j*n+k]
		}
		if !(d > 0) || math.IsInf(d, 0) {
			return ErrNotPositiveDefinite
		}
		d = math.Sqrt(d)
		a[j*n+j] = d
		for i := j + 1; i < n; i++ {
			s := a[j*n+i] // upper triangle holds a[j][i] = a[i][j]
			for k := range j {
				s -= a[i*n+k] * a[j*n+k]
			}
			a[i*n+j] = s / d
		}
	}
	return nil
}

// choleskySolve solves L Lᵀ x = b in place in b, given the factor from
// cholesky.
func choleskySolve(l []float64, n int, b []float64) {
	for i := range n {
		s := b[i]
		for k := range i {
			s -= l[i*n+k] * b[k]
		}
		b[i] = s / l[i*n+i]
	}
	for i := n - 1; i >= 0; i-- {
		s := b[i]
		for k := i + 1; k < n; k++ {
			s -= l[k*n+i] * b[k]
		}
		b[i] = s / l[i*n+i]
	}
}

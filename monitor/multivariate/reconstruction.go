// Package multivariate computes drift that no single feature shows: the data
// reconstruction error of NannyML (a PCA fitted on the standardised
// reference; rows of a window that no longer follow the reference's
// correlations reconstruct worse), and a domain classifier (a logistic
// regression on the columns and their pairwise products telling reference
// rows from current rows; its cross-validated ROC AUC).
//
// This package holds the numerical core and its settings (Config,
// policy.multivariate); package policy runs it on the windows' joint
// samples (window.Joint) and writes the features
// __multivariate_reconstruction and __multivariate_classifier
// (docs/multivariate.md).
package multivariate

import (
	"errors"
	"math"
	"sort"
)

// ErrInsufficient is returned when the reference is too small or has no
// variance to fit a PCA on.
var ErrInsufficient = errors.New("multivariate: insufficient reference data")

// PCA is a principal component analysis fitted on the standardised reference,
// as scikit-learn's StandardScaler (ddof 0) followed by PCA(n_components=share).
type PCA struct {
	Mean  []float64   // per-column mean of the reference
	Scale []float64   // per-column standard deviation (ddof 0); 1 where it is 0, as StandardScaler
	Comps [][]float64 // kept components (unit vectors in the standardised space)
	// Ratio is the explained variance ratio of every component, largest first.
	Ratio []float64
}

// FitPCA standardises rows (n × d) and keeps the smallest number of components
// whose cumulative explained variance ratio exceeds share (scikit-learn's
// rule for a float n_components: searchsorted(cumsum, share, "right") + 1).
func FitPCA(rows [][]float64, share float64) (*PCA, error) {
	n := len(rows)
	if n < 2 || len(rows[0]) == 0 || !(share > 0 && share < 1) {
		return nil, ErrInsufficient
	}
	d := len(rows[0])
	p := &PCA{Mean: make([]float64, d), Scale: make([]float64, d)}
	for _, r := range rows {
		for j, v := range r {
			p.Mean[j] += v
		}
	}
	for j := range p.Mean {
		p.Mean[j] /= float64(n)
	}
	for _, r := range rows {
		for j, v := range r {
			p.Scale[j] += (v - p.Mean[j]) * (v - p.Mean[j])
		}
	}
	for j := range p.Scale {
		p.Scale[j] = math.Sqrt(p.Scale[j] / float64(n))
		if p.Scale[j] == 0 {
			p.Scale[j] = 1
		}
	}
	// Covariance of the standardised data (its mean is 0).
	cov := make([][]float64, d)
	for i := range cov {
		cov[i] = make([]float64, d)
	}
	z := make([]float64, d)
	for _, r := range rows {
		p.standardise(r, z)
		for i := 0; i < d; i++ {
			for k := i; k < d; k++ {
				cov[i][k] += z[i] * z[k]
			}
		}
	}
	for i := 0; i < d; i++ {
		for k := i; k < d; k++ {
			cov[i][k] /= float64(n - 1)
			cov[k][i] = cov[i][k]
		}
	}
	vals, vecs := jacobiEigen(cov)
	total := 0.0
	for _, v := range vals {
		total += math.Max(v, 0)
	}
	if !(total > 0) {
		return nil, ErrInsufficient
	}
	order := make([]int, d)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return vals[order[a]] > vals[order[b]] })
	cum := 0.0
	for _, i := range order {
		r := math.Max(vals[i], 0) / total
		p.Ratio = append(p.Ratio, r)
		if cum <= share {
			comp := make([]float64, d)
			for j := 0; j < d; j++ {
				comp[j] = vecs[j][i]
			}
			p.Comps = append(p.Comps, comp)
		}
		cum += r
	}
	return p, nil
}

func (p *PCA) standardise(r, z []float64) {
	for j, v := range r {
		z[j] = (v - p.Mean[j]) / p.Scale[j]
	}
}

// RowError is the Euclidean distance, in the standardised space, between a
// row and its reconstruction from the kept components (NannyML's per-row
// reconstruction error).
func (p *PCA) RowError(r []float64) float64 {
	d := len(p.Mean)
	z := make([]float64, d)
	p.standardise(r, z)
	rec := make([]float64, d)
	for _, c := range p.Comps {
		s := 0.0
		for j := 0; j < d; j++ {
			s += z[j] * c[j]
		}
		for j := 0; j < d; j++ {
			rec[j] += s * c[j]
		}
	}
	e := 0.0
	for j := 0; j < d; j++ {
		e += (z[j] - rec[j]) * (z[j] - rec[j])
	}
	return math.Sqrt(e)
}

// MeanError is the mean RowError over rows (NaN for no rows).
func (p *PCA) MeanError(rows [][]float64) float64 {
	if len(rows) == 0 {
		return math.NaN()
	}
	s := 0.0
	for _, r := range rows {
		s += p.RowError(r)
	}
	return s / float64(len(rows))
}

// jacobiEigen diagonalises a symmetric matrix with cyclic Jacobi rotations;
// it returns the eigenvalues and the eigenvectors as the columns of vecs.
func jacobiEigen(m [][]float64) ([]float64, [][]float64) {
	d := len(m)
	a := make([][]float64, d)
	v := make([][]float64, d)
	for i := range a {
		a[i] = append([]float64(nil), m[i]...)
		v[i] = make([]float64, d)
		v[i][i] = 1
	}
	for sweep := 0; sweep < 100; sweep++ {
		off := 0.0
		for i := 0; i < d; i++ {
			for k := i + 1; k < d; k++ {
				off += a[i][k] * a[i][k]
			}
		}
		if off < 1e-30 {
			break
		}
		for pi := 0; pi < d; pi++ {
			for q := pi + 1; q < d; q++ {
				if a[pi][q] == 0 {
					continue
				}
				theta := (a[q][q] - a[pi][pi]) / (2 * a[pi][q])
				t := math.Copysign(1, theta) / (math.Abs(theta) + math.Sqrt(theta*theta+1))
				c := 1 / math.Sqrt(t*t+1)
				s := t * c
				for k := 0; k < d; k++ {
					akp, akq := a[k][pi], a[k][q]
					a[k][pi] = c*akp - s*akq
					a[k][q] = s*akp + c*akq
				}
				for k := 0; k < d; k++ {
					apk, aqk := a[pi][k], a[q][k]
					a[pi][k] = c*apk - s*aqk
					a[q][k] = s*apk + c*aqk
				}
				for k := 0; k < d; k++ {
					vkp, vkq := v[k][pi], v[k][q]
					v[k][pi] = c*vkp - s*vkq
					v[k][q] = s*vkp + c*vkq
				}
			}
		}
	}
	vals := make([]float64, d)
	for i := range vals {
		vals[i] = a[i][i]
	}
	return vals, v
}

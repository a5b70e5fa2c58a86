package multivariate

import (
	"errors"
	"math"
	"sort"
)

// Logistic is an L2-penalised logistic regression fitted by Newton's method
// on standardised features, with the objective of scikit-learn's
// LogisticRegression(C): sum of log losses + ||w||²/(2C), intercept not
// penalised. (monitor may not import retrain/model, see internal/layering.)
type Logistic struct {
	Mean, Scale []float64 // standardisation of the training rows (ddof 0)
	Coef        []float64 // coefficients on the standardised features
	Intercept   float64
}

// FitLogistic fits rows x with labels y (0 or 1).
func FitLogistic(x [][]float64, y []float64, c float64) (*Logistic, error) {
	n := len(x)
	if n < 2 || len(y) != n || !(c > 0) {
		return nil, errors.New("multivariate: logistic regression needs rows, matching labels and C > 0")
	}
	d := len(x[0])
	m := &Logistic{Mean: make([]float64, d), Scale: make([]float64, d), Coef: make([]float64, d)}
	for _, r := range x {
		for j, v := range r {
			m.Mean[j] += v
		}
	}
	for j := range m.Mean {
		m.Mean[j] /= float64(n)
	}
	for _, r := range x {
		for j, v := range r {
			m.Scale[j] += (v - m.Mean[j]) * (v - m.Mean[j])
		}
	}
	for j := range m.Scale {
		m.Scale[j] = math.Sqrt(m.Scale[j] / float64(n))
		if m.Scale[j] == 0 {
			m.Scale[j] = 1
		}
	}
	z := make([][]float64, n)
	for i, r := range x {
		z[i] = make([]float64, d+1)
		for j, v := range r {
			z[i][j] = (v - m.Mean[j]) / m.Scale[j]
		}
		z[i][d] = 1
	}
	w := make([]float64, d+1)
	k := d + 1
	for iter := 0; iter < 100; iter++ {
		g := make([]float64, k)
		h := make([]float64, k*k)
		for j := 0; j < d; j++ {
			g[j] = w[j] / c
			h[j*k+j] = 1 / c
		}
		for i := range z {
			s := 0.0
			for j := 0; j < k; j++ {
				s += w[j] * z[i][j]
			}
			p := 1 / (1 + math.Exp(-s))
			wi := p * (1 - p)
			zi := z[i]
			for j := 0; j < k; j++ {
				g[j] += (p - y[i]) * zi[j]
				// The upper triangle; the lower is mirrored below.
				a, row := wi*zi[j], h[j*k:j*k+k]
				for l := j; l < k; l++ {
					row[l] += a * zi[l]
				}
			}
		}
		for j := 0; j < k; j++ {
			for l := 0; l < j; l++ {
				h[j*k+l] = h[l*k+j]
			}
		}
		step, err := solve(h, g, k)
		if err != nil {
			return nil, err
		}
		mx := 0.0
		for j := range w {
			w[j] -= step[j]
			mx = math.Max(mx, math.Abs(step[j]))
		}
		if mx < 1e-12 {
			break
		}
	}
	copy(m.Coef, w[:d])
	m.Intercept = w[d]
	return m, nil
}

// Score is the predicted probability of class 1.
func (m *Logistic) Score(r []float64) float64 {
	s := m.Intercept
	for j, v := range r {
		s += m.Coef[j] * (v - m.Mean[j]) / m.Scale[j]
	}
	return 1 / (1 + math.Exp(-s))
}

// solve solves h·x = g by Gaussian elimination with partial pivoting.
func solve(h, g []float64, k int) ([]float64, error) {
	a := append([]float64(nil), h...)
	b := append([]float64(nil), g...)
	for col := 0; col < k; col++ {
		piv := col
		for r := col + 1; r < k; r++ {
			if math.Abs(a[r*k+col]) > math.Abs(a[piv*k+col]) {
				piv = r
			}
		}
		if a[piv*k+col] == 0 {
			return nil, errors.New("multivariate: singular Hessian")
		}
		for j := 0; j < k; j++ {
			a[col*k+j], a[piv*k+j] = a[piv*k+j], a[col*k+j]
		}
		b[col], b[piv] = b[piv], b[col]
		for r := col + 1; r < k; r++ {
			f := a[r*k+col] / a[col*k+col]
			for j := col; j < k; j++ {
				a[r*k+j] -= f * a[col*k+j]
			}
			b[r] -= f * b[col]
		}
	}
	x := make([]float64, k)
	for r := k - 1; r >= 0; r-- {
		s := b[r]
		for j := r + 1; j < k; j++ {
			s -= a[r*k+j] * x[j]
		}
		x[r] = s / a[r*k+r]
	}
	return x, nil
}

// AUC is the ROC AUC of scores against labels (Mann-Whitney, ties counted
// one half, as scikit-learn's roc_auc_score); NaN with one class only.
func AUC(y, s []float64) float64 {
	idx := make([]int, len(s))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return s[idx[a]] < s[idx[b]] })
	var pos, neg, rankSum float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && s[idx[j]] == s[idx[i]] {
			j++
		}
		rank := float64(i+j+1) / 2
		for k := i; k < j; k++ {
			if y[idx[k]] == 1 {
				rankSum += rank
				pos++
			} else {
				neg++
			}
		}
		i = j
	}
	if pos == 0 || neg == 0 {
		return math.NaN()
	}
	return (rankSum - pos*(pos+1)/2) / (pos * neg)
}

// CrossValidatedAUC is the mean ROC AUC over folds folds, row i being in
// fold i % folds (the caller shuffles; hash-keyed samples already are).
func CrossValidatedAUC(x [][]float64, y []float64, folds int, c float64) (float64, error) {
	if folds < 2 {
		return math.NaN(), errors.New("multivariate: at least 2 folds")
	}
	sum := 0.0
	for f := 0; f < folds; f++ {
		var tx, vx [][]float64
		var ty, vy []float64
		for i := range x {
			if i%folds == f {
				vx, vy = append(vx, x[i]), append(vy, y[i])
			} else {
				tx, ty = append(tx, x[i]), append(ty, y[i])
			}
		}
		m, err := FitLogistic(tx, ty, c)
		if err != nil {
			return math.NaN(), err
		}
		s := make([]float64, len(vx))
		for i, r := range vx {
			s[i] = m.Score(r)
		}
		sum += AUC(vy, s)
	}
	return sum / float64(folds), nil
}

// Expand appends to every row the pairwise products of its centred columns
// (column means over all rows), so that a linear classifier sees a change of
// correlation, which leaves every marginal and so every linear term alone.
// names gives the column names; the products are named "a*b".
func Expand(rows [][]float64, names []string) ([][]float64, []string) {
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
		e := append(make([]float64, 0, d+d*(d-1)/2), r...)
		for a := 0; a < d; a++ {
			for b := a + 1; b < d; b++ {
				e = append(e, (r[a]-mean[a])*(r[b]-mean[b]))
			}
		}
		out[i] = e
	}
	en := append([]string(nil), names...)
	for a := 0; a < d; a++ {
		for b := a + 1; b < d; b++ {
			en = append(en, names[a]+"*"+names[b])
		}
	}
	return out, en
}

// Leaned returns the names of the k features with the largest absolute
// standardised coefficients, largest first (the classifier's explanation).
func (m *Logistic) Leaned(names []string, k int) []string {
	idx := make([]int, len(m.Coef))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return math.Abs(m.Coef[idx[a]]) > math.Abs(m.Coef[idx[b]]) })
	var out []string
	for _, i := range idx[:min(k, len(idx))] {
		out = append(out, names[i])
	}
	return out
}

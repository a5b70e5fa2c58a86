// Package dle estimates a regressor's MAE and RMSE before its labels
// arrive: direct loss estimation (DLE, NannyML's method). On the labelled
// reference two models are fitted, features and prediction in, the
// absolute error and the squared error out; per window the mean of the
// predicted absolute errors (clipped at 0, as NannyML) is the estimated
// MAE and the square root of the mean predicted squared error the
// estimated RMSE, with NannyML's sampling errors (std(|e|)/√n;
// √(std(e²)² / (4·n·mean(e²)))) and a band of ±3 of them, floored at 0.
//
// # The learner
//
// NannyML fits LightGBM. Here it is ridge regression (α = 1, unpenalised
// intercept) on the standardised numeric features (a missing value counts
// as the reference mean), the standardised prediction and its square:
// closed-form and deterministic (no seeds, no tuning), cheap to refit, and
// a linear model is a SQL expression, so the window's rows are scored in
// ClickHouse and Go receives two sums (package perf's EstimateRegression).
// The price is that it sees no interactions beyond prediction²: errors that
// depend on a combination of features are averaged out, and the estimate
// differs from NannyML's by the difference of the learners (see
// docs/monitor.md for the tolerance). The package is pure.
package dle

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// ErrInsufficient reports a reference DLE cannot be fitted on.
var ErrInsufficient = errors.New("reference too small for loss estimation")

// MinReference is the fewest labelled reference rows Fit accepts.
const MinReference = 20

// Alpha is the ridge penalty, sklearn's Ridge default.
const Alpha = 1.0

// MaxFeatures caps the numeric features the models use (the most often
// present, then by name): each is a term of the SQL expression.
const MaxFeatures = 100

// Metric names without the "estimated_" prefix.
const (
	MAE  = "mae"
	RMSE = "rmse"
)

// Row is one labelled reference row.
type Row struct {
	Features   map[string]float64
	Prediction float64
	Truth      float64
}

// Term is one standardised input: (x − Mean) / Scale.
type Term struct {
	// Feature is the numeric feature's name; empty for the prediction
	// terms (Power 1 or 2).
	Feature     string
	Power       int
	Mean, Scale float64
}

// Linear is a fitted ridge model over Terms.
type Linear struct {
	Intercept float64
	Coef      []float64
}

// Model is DLE fitted on a reference.
type Model struct {
	Terms []Term
	// Abs predicts |y − ŷ|, Sq (y − ŷ)².
	Abs, Sq Linear
	// NannyML's sampling-error components from the reference's errors.
	absStd, sqStd, sqMean float64
	Rows                  int
}

// Fit fits DLE on the labelled reference rows.
func Fit(rows []Row) (Model, error) {
	if len(rows) < MinReference {
		return Model{}, fmt.Errorf("%d labelled reference rows (need %d): %w", len(rows), MinReference, ErrInsufficient)
	}
	count := map[string]int{}
	for _, r := range rows {
		for k, v := range r.Features {
			if !math.IsNaN(v) {
				count[k]++
			}
		}
	}
	names := make([]string, 0, len(count))
	for k := range count {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		if count[names[i]] != count[names[j]] {
			return count[names[i]] > count[names[j]]
		}
		return names[i] < names[j]
	})
	if len(names) > MaxFeatures {
		names = names[:MaxFeatures]
	}
	sort.Strings(names)
	m := Model{Rows: len(rows)}
	for _, k := range names {
		m.Terms = append(m.Terms, Term{Feature: k, Power: 1})
	}
	m.Terms = append(m.Terms, Term{Power: 1}, Term{Power: 2})
	n := float64(len(rows))
	raw := make([][]float64, len(rows))
	for i, r := range rows {
		raw[i] = make([]float64, len(m.Terms))
		for j, t := range m.Terms {
			raw[i][j] = t.raw(r.Features, r.Prediction)
		}
	}
	// Means over the present values; missing values then take the mean.
	for j := range m.Terms {
		var s, c float64
		for i := range raw {
			if !math.IsNaN(raw[i][j]) {
				s += raw[i][j]
				c++
			}
		}
		m.Terms[j].Mean = s / max(c, 1)
		var v float64
		for i := range raw {
			if math.IsNaN(raw[i][j]) {
				raw[i][j] = m.Terms[j].Mean
			}
			d := raw[i][j] - m.Terms[j].Mean
			v += d * d
		}
		sd := math.Sqrt(v / n)
		if sd == 0 {
			sd = 1 // sklearn's StandardScaler for a constant column
		}
		m.Terms[j].Scale = sd
		for i := range raw {
			raw[i][j] = (raw[i][j] - m.Terms[j].Mean) / sd
		}
	}
	abs, sq := make([]float64, len(rows)), make([]float64, len(rows))
	for i, r := range rows {
		e := r.Truth - r.Prediction
		abs[i], sq[i] = math.Abs(e), e*e
	}
	var err error
	if m.Abs, err = ridge(raw, abs); err != nil {
		return Model{}, err
	}
	if m.Sq, err = ridge(raw, sq); err != nil {
		return Model{}, err
	}
	_, m.absStd = meanStd(abs)
	m.sqMean, m.sqStd = meanStd(sq)
	return m, nil
}

// raw is the term's unstandardised value for a row, NaN when missing.
func (t Term) raw(features map[string]float64, prediction float64) float64 {
	if t.Feature == "" {
		return math.Pow(prediction, float64(t.Power))
	}
	v, ok := features[t.Feature]
	if !ok {
		return math.NaN()
	}
	return v
}

func meanStd(x []float64) (mean, std float64) {
	for _, v := range x {
		mean += v
	}
	mean /= float64(len(x))
	for _, v := range x {
		std += (v - mean) * (v - mean)
	}
	return mean, math.Sqrt(std / float64(len(x)))
}

// ridge solves (XᵀX + αI) w = Xᵀ(y − ȳ) for X with centred columns (the
// standardised terms), intercept ȳ: sklearn's Ridge(alpha) with
// fit_intercept on such X.
func ridge(x [][]float64, y []float64) (Linear, error) {
	d := 0
	if len(x) > 0 {
		d = len(x[0])
	}
	ym, _ := meanStd(y)
	a := make([][]float64, d)
	b := make([]float64, d)
	for j := range a {
		a[j] = make([]float64, d)
	}
	for i, row := range x {
		for j := range d {
			b[j] += row[j] * (y[i] - ym)
			for k := j; k < d; k++ {
				a[j][k] += row[j] * row[k]
			}
		}
	}
	for j := range d {
		a[j][j] += Alpha
		for k := range j {
			a[j][k] = a[k][j]
		}
	}
	w, err := cholSolve(a, b)
	if err != nil {
		return Linear{}, err
	}
	return Linear{Intercept: ym, Coef: w}, nil
}

// cholSolve solves a·x = b for symmetric positive definite a.
func cholSolve(a [][]float64, b []float64) ([]float64, error) {
	n := len(a)
	l := make([][]float64, n)
	for i := range l {
		l[i] = make([]float64, n)
		for j := 0; j <= i; j++ {
			s := a[i][j]
			for k := range j {
				s -= l[i][k] * l[j][k]
			}
			if i == j {
				if !(s > 0) {
					return nil, fmt.Errorf("ridge system not positive definite: %w", ErrInsufficient)
				}
				l[i][i] = math.Sqrt(s)
			} else {
				l[i][j] = s / l[j][j]
			}
		}
	}
	z := make([]float64, n)
	for i := range n {
		s := b[i]
		for k := range i {
			s -= l[i][k] * z[k]
		}
		z[i] = s / l[i][i]
	}
	x := make([]float64, n)
	for i := n - 1; i >= 0; i-- {
		s := z[i]
		for k := i + 1; k < n; k++ {
			s -= l[k][i] * x[k]
		}
		x[i] = s / l[i][i]
	}
	return x, nil
}

// Predict returns the linear model's value for a row (unclipped).
func (m Model) Predict(f Linear, features map[string]float64, prediction float64) float64 {
	v := f.Intercept
	for j, t := range m.Terms {
		x := t.raw(features, prediction)
		if math.IsNaN(x) {
			continue // the mean: 0 once standardised
		}
		v += f.Coef[j] * (x - t.Mean) / t.Scale
	}
	return v
}

// Sums are a window's sums of the clipped predicted losses over its rows
// with a prediction.
type Sums struct {
	N, Abs, Sq float64
}

// SumsOf computes Sums in Go: what package perf computes in ClickHouse.
func (m Model) SumsOf(features []map[string]float64, predictions []float64) Sums {
	var s Sums
	for i, p := range predictions {
		s.N++
		s.Abs += math.Max(0, m.Predict(m.Abs, features[i], p))
		s.Sq += math.Max(0, m.Predict(m.Sq, features[i], p))
	}
	return s
}

// Estimate is one estimated metric of a window.
type Estimate struct {
	Name                               string
	Value, SamplingError, Lower, Upper float64
}

// Estimate returns the estimated MAE and RMSE of a window.
func (m Model) Estimate(s Sums) []Estimate {
	mae, rmse := math.NaN(), math.NaN()
	if s.N > 0 {
		mae, rmse = s.Abs/s.N, math.Sqrt(s.Sq/s.N)
	}
	out := []Estimate{
		{Name: MAE, Value: mae, SamplingError: m.absStd / math.Sqrt(s.N)},
		{Name: RMSE, Value: rmse, SamplingError: math.Sqrt(m.sqStd * m.sqStd / (4 * s.N * m.sqMean))},
	}
	for i := range out {
		e := &out[i]
		e.Lower, e.Upper = math.Max(0, e.Value-3*e.SamplingError), e.Value+3*e.SamplingError
		if math.IsNaN(e.Value) || math.IsNaN(e.SamplingError) {
			e.Lower, e.Upper = math.NaN(), math.NaN()
		}
	}
	return out
}

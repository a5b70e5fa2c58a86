package model

import "math"

// PredictRow predicts one row given as feature maps, with the same
// preprocessing as Predict: a numeric feature absent from num (or NaN) is
// missing, a category absent from the training categories goes to the
// feature's "other" column, features the model does not know are ignored.
// It allocates only the row's columns; it is safe for concurrent use.
func (m *Model) PredictRow(num map[string]float64, cat map[string]string) float64 {
	e := m.encoder()
	var small [64]float64
	var x []float64
	if e.ncols <= len(small) {
		x = small[:e.ncols]
	} else {
		x = make([]float64, e.ncols)
	}
	for _, col := range e.ind {
		if col >= 0 {
			x[col] = 1
		}
	}
	for k, v := range num {
		f, ok := e.num[k]
		if !ok || math.IsNaN(v) {
			continue
		}
		x[f] = (v - e.mean[f]) * e.inv[f]
		if col := e.ind[f]; col >= 0 {
			x[col] = 0
		}
	}
	for k, v := range cat {
		f, ok := e.cat[k]
		if !ok {
			continue
		}
		if l, ok := e.level[f][v]; ok {
			x[e.base[f]+l] = 1
		} else {
			x[e.other[f]] = 1
		}
	}
	z := m.Intercept
	for j, v := range x {
		z += v * m.Coef[j]
	}
	if m.Kind == KindLogistic {
		return sigmoid(z)
	}
	return z
}

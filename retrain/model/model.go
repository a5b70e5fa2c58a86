package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"

	"github.com/apache/arrow/go/v15/arrow"
)

// FormatV1 names the JSON artifact format of a Model.
const FormatV1 = "driftwatch.linear-model.v1"

// Kinds of built-in model.
const (
	KindLogistic = "logistic_regression_l2"
	KindRidge    = "ridge_regression"
)

// ErrFormat is returned (wrapped) when a model artifact cannot be read.
var ErrFormat = errors.New("model artifact")

// Model is a trained linear model with its preprocessing. It marshals to a
// self-contained JSON artifact; Predict is safe for concurrent use.
type Model struct {
	Format       string       `json:"format"`
	Kind         string       `json:"kind"`
	Target       Target       `json:"target"`
	C            float64      `json:"c,omitempty"`
	Alpha        float64      `json:"alpha,omitempty"`
	Preprocessor Preprocessor `json:"preprocessor"`
	// Columns names the coefficients, the preprocessor's output columns.
	Columns   []string  `json:"columns"`
	Coef      []float64 `json:"coef"`
	Intercept float64   `json:"intercept"`

	once sync.Once
	enc  *encoder
}

func (m *Model) encoder() *encoder {
	m.once.Do(func() { m.enc = newEncoder(&m.Preprocessor) })
	return m.enc
}

// Save writes the model as indented JSON.
func (m *Model) Save(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return fmt.Errorf("write model artifact: %w", err)
	}
	return nil
}

// Load reads a model written by Save and checks that it is consistent.
func Load(r io.Reader) (*Model, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	m := &Model{}
	if err := dec.Decode(m); err != nil {
		return nil, fmt.Errorf("%w: decode: %v", ErrFormat, err)
	}
	if m.Format != FormatV1 {
		return nil, fmt.Errorf("%w: format %q, want %q", ErrFormat, m.Format, FormatV1)
	}
	if m.Kind != KindLogistic && m.Kind != KindRidge {
		return nil, fmt.Errorf("%w: unknown kind %q", ErrFormat, m.Kind)
	}
	if err := m.Target.validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if (m.Kind == KindLogistic) != (m.Target.Task == Classification) {
		return nil, fmt.Errorf("%w: kind %s does not fit task %s", ErrFormat, m.Kind, m.Target.Task)
	}
	for _, f := range m.Preprocessor.Numeric {
		if !(f.Std > 0) || math.IsInf(f.Std, 0) || math.IsNaN(f.Mean) || math.IsInf(f.Mean, 0) {
			return nil, fmt.Errorf("%w: numeric feature %q has mean %v, std %v", ErrFormat, f.Name, f.Mean, f.Std)
		}
	}
	if n := m.encoder().ncols; len(m.Coef) != n {
		return nil, fmt.Errorf("%w: %d coefficients for %d columns", ErrFormat, len(m.Coef), n)
	}
	return m, nil
}

// Predict returns one prediction per row of rec, appended to dst[:0]: the
// probability of the positive class for logistic regression, the value for
// ridge regression.
func (m *Model) Predict(rec arrow.Record, dst []float64) ([]float64, error) {
	c, err := featureColumns(rec)
	if err != nil {
		return nil, err
	}
	enc := m.encoder()
	n, p := int(rec.NumRows()), enc.ncols
	dst = grow(dst, n)
	const chunk = 1024
	x := make([]float64, min(n, chunk)*p)
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		enc.encode(c, lo, hi, x, p)
		for i := lo; i < hi; i++ {
			xi := x[(i-lo)*p : (i-lo+1)*p]
			z := m.Intercept
			for j, v := range xi {
				z += v * m.Coef[j]
			}
			if m.Kind == KindLogistic {
				dst[i] = sigmoid(z)
			} else {
				dst[i] = z
			}
		}
	}
	return dst, nil
}

// sigmoid is 1/(1+exp(−z)) without overflow.
func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

package model

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
)

// Column names of the dataset the trainers read.
const (
	ColumnNumeric     = "features_numeric"
	ColumnCategorical = "features_categorical"
	ColumnLabel       = "actual_label"
	ColumnValue       = "actual_value"
)

// Batches streams a dataset as Arrow record batches. Training reads the data
// more than once (one pass to fit the preprocessor, then one per solver
// iteration), so every call must start again at the first batch and yield
// the same rows in the same order. A record is used only during the yield
// call that hands it over (a trainer that keeps it longer retains it); the
// function releases it afterwards if it owns it. An error ends the pass.
type Batches func(ctx context.Context) iter.Seq2[arrow.Record, error]

// Records returns Batches over records already in memory. It does not take
// ownership: the caller keeps them alive while training and releases them.
func Records(recs ...arrow.Record) Batches {
	return func(context.Context) iter.Seq2[arrow.Record, error] {
		return func(yield func(arrow.Record, error) bool) {
			for _, r := range recs {
				if !yield(r, nil) {
					return
				}
			}
		}
	}
}

// ErrSchema is returned (wrapped) when a record lacks a column the model
// needs or has it with the wrong type.
var ErrSchema = errors.New("dataset schema")

// columns are the typed columns of one record a model reads.
type columns struct {
	numeric     *array.Map
	numKeys     *array.String
	numItems    *array.Float64
	categorical *array.Map
	catKeys     *array.String
	catItems    *array.String
}

// column returns the named column of rec, or nil when it is absent.
func column(rec arrow.Record, name string) arrow.Array {
	idx := rec.Schema().FieldIndices(name)
	if len(idx) == 0 {
		return nil
	}
	return rec.Column(idx[0])
}

// featureColumns finds the feature maps of rec. Either may be absent (a
// model without categorical features reads records without that column).
func featureColumns(rec arrow.Record) (c columns, err error) {
	c.numeric, c.numKeys, c.numItems, err = mapColumn[*array.Float64](rec, ColumnNumeric, "map<utf8, float64>")
	if err != nil {
		return c, err
	}
	c.categorical, c.catKeys, c.catItems, err = mapColumn[*array.String](rec, ColumnCategorical, "map<utf8, utf8>")
	return c, err
}

// mapColumn finds the map column name of rec with string keys and items of
// type V (want describes that type for the error); all nil when rec has no
// such column.
func mapColumn[V arrow.Array](rec arrow.Record, name, want string) (m *array.Map, keys *array.String, items V, err error) {
	a := column(rec, name)
	if a == nil {
		return nil, nil, items, nil
	}
	m, ok := a.(*array.Map)
	if ok {
		keys, ok = m.Keys().(*array.String)
	}
	if ok {
		items, ok = m.Items().(V)
	}
	if !ok {
		var zero V
		return nil, nil, zero, fmt.Errorf("%w: %s is %s, want %s", ErrSchema, name, a.DataType(), want)
	}
	return m, keys, items, nil
}

// Task says what a model predicts.
type Task string

// Tasks.
const (
	// Classification is binary classification; predictions are the
	// probability of the positive class.
	Classification Task = "binary_classification"
	// Regression predicts a real value.
	Regression Task = "regression"
)

// Target says which column holds the label and how to read it.
type Target struct {
	Task Task `json:"task"`
	// Column defaults to actual_label for classification and actual_value
	// for regression.
	Column string `json:"column"`
	// PositiveClass is the label value that counts as 1 in classification;
	// every other non-null label counts as 0.
	PositiveClass string `json:"positive_class,omitempty"`
}

func (t Target) column() string {
	if t.Column != "" {
		return t.Column
	}
	if t.Task == Regression {
		return ColumnValue
	}
	return ColumnLabel
}

func (t Target) validate() error {
	switch t.Task {
	case Classification:
		if t.PositiveClass == "" {
			return errors.New("target.positive_class: required for binary classification")
		}
	case Regression:
	default:
		return fmt.Errorf("target.task: %q is neither %q nor %q", t.Task, Classification, Regression)
	}
	return nil
}

// Labels reads the target of every row of rec: 1 or 0 for classification,
// the value for regression, NaN where the label is null.
func (t Target) Labels(rec arrow.Record, dst []float64) ([]float64, error) {
	n := int(rec.NumRows())
	dst = grow(dst, n)
	a := column(rec, t.column())
	if a == nil {
		return nil, fmt.Errorf("%w: no label column %s", ErrSchema, t.column())
	}
	switch t.Task {
	case Classification:
		s, ok := a.(*array.String)
		if !ok {
			return nil, fmt.Errorf("%w: label column %s is %s, want utf8", ErrSchema, t.column(), a.DataType())
		}
		for i := range n {
			switch {
			case s.IsNull(i):
				dst[i] = math.NaN()
			case s.Value(i) == t.PositiveClass:
				dst[i] = 1
			default:
				dst[i] = 0
			}
		}
	case Regression:
		f, ok := a.(*array.Float64)
		if !ok {
			return nil, fmt.Errorf("%w: label column %s is %s, want float64", ErrSchema, t.column(), a.DataType())
		}
		vals := f.Float64Values()
		for i := range n {
			if f.IsNull(i) {
				dst[i] = math.NaN()
			} else {
				dst[i] = vals[i]
			}
		}
	default:
		return nil, fmt.Errorf("target.task: %q is neither %q nor %q", t.Task, Classification, Regression)
	}
	return dst, nil
}

// grow returns s resized to n, reusing its storage when it is large enough.
func grow(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	return s[:n]
}

package model

import (
	"math"
	"slices"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
)

// row is one labelled example for tests.
type row struct {
	num   map[string]float64
	cat   map[string]string
	label *string  // nil: null
	value *float64 // nil: null
}

var testSchema = arrow.NewSchema([]arrow.Field{
	{Name: ColumnNumeric, Type: arrow.MapOf(arrow.BinaryTypes.String, arrow.PrimitiveTypes.Float64)},
	{Name: ColumnCategorical, Type: arrow.MapOf(arrow.BinaryTypes.String, arrow.BinaryTypes.String)},
	{Name: ColumnLabel, Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: ColumnValue, Type: arrow.PrimitiveTypes.Float64, Nullable: true},
}, nil)

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// buildRecords turns rows into records of at most batch rows; they are
// released when the test ends.
func buildRecords(t testing.TB, mem memory.Allocator, rows []row, batch int) []arrow.Record {
	t.Helper()
	var recs []arrow.Record
	for lo := 0; lo < len(rows); lo += batch {
		b := array.NewRecordBuilder(mem, testSchema)
		nm := b.Field(0).(*array.MapBuilder)
		cm := b.Field(1).(*array.MapBuilder)
		lb := b.Field(2).(*array.StringBuilder)
		vb := b.Field(3).(*array.Float64Builder)
		for _, r := range rows[lo:min(lo+batch, len(rows))] {
			nm.Append(true)
			for _, k := range sortedKeys(r.num) {
				nm.KeyBuilder().(*array.StringBuilder).Append(k)
				nm.ItemBuilder().(*array.Float64Builder).Append(r.num[k])
			}
			cm.Append(true)
			for _, k := range sortedKeys(r.cat) {
				cm.KeyBuilder().(*array.StringBuilder).Append(k)
				cm.ItemBuilder().(*array.StringBuilder).Append(r.cat[k])
			}
			if r.label != nil {
				lb.Append(*r.label)
			} else {
				lb.AppendNull()
			}
			if r.value != nil {
				vb.Append(*r.value)
			} else {
				vb.AppendNull()
			}
		}
		rec := b.NewRecord()
		b.Release()
		recs = append(recs, rec)
	}
	t.Cleanup(func() {
		for _, r := range recs {
			r.Release()
		}
	})
	return recs
}

func ptr[T any](v T) *T { return &v }

// splitMix64 mirrors SplitMix64 in testdata/reference.py.
type splitMix64 struct{ state uint64 }

func (s *splitMix64) next() uint64 {
	s.state += 0x9E3779B97F4A7C15
	z := s.state
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

func (s *splitMix64) uniform() float64 { return float64(s.next()>>11) * (1.0 / 9007199254740992.0) }

func (s *splitMix64) normal() float64 {
	u1, u2 := s.uniform(), s.uniform()
	return math.Sqrt(-2.0*math.Log(1.0-u1)) * math.Cos(2.0*math.Pi*u2)
}

// generateReference mirrors generate() in testdata/reference.py draw for
// draw.
func generateReference(seed uint64, n int) []row {
	colors := []string{"red", "green", "blue", "black", "white"}
	colorEffect := []float64{0.5, -0.3, 0.0, 0.2, -0.4}
	beta := []float64{0.8, -0.5, 0.3, 0.0, 0.2, 0.4, -0.3, 0.1, 0.5, -0.2}
	missing := []float64{0, 0, 0, 0, 0, 0.1, 0.1, 0.1, 0.3, 0.3}
	names := []string{"x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9"}
	rng := &splitMix64{seed}
	rows := make([]row, n)
	for i := range rows {
		r := row{num: map[string]float64{}, cat: map[string]string{}}
		z := -0.3
		for j := range 10 {
			s := rng.normal()
			miss := rng.uniform() < missing[j]
			z += beta[j] * s
			if !miss {
				r.num[names[j]] = float64(j-3) + (1+0.5*float64(j))*s
			}
		}
		c := int(rng.uniform() * 5)
		if !(rng.uniform() < 0.05) {
			r.cat["color"] = colors[c]
		}
		z += colorEffect[c]
		u := rng.uniform()
		k := int(30 * u * u)
		if !(rng.uniform() < 0.05) {
			r.cat["city"] = "c" + string(rune('0'+k/10)) + string(rune('0'+k%10))
		}
		z += 0.6 * math.Cos(float64(k))
		if rng.uniform() < 1.0/(1.0+math.Exp(-z)) {
			r.label = ptr("yes")
		} else {
			r.label = ptr("no")
		}
		r.value = ptr(2.0*z + 1.0 + 0.5*rng.normal())
		rows[i] = r
	}
	return rows
}

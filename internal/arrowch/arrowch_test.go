package arrowch

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
)

func ptr[T any](v T) *T { return &v }

func TestColumnValues(t *testing.T) {
	mem := memory.NewGoAllocator()
	build := func(dt arrow.DataType, fill func(array.Builder)) arrow.Array {
		b := array.NewBuilder(mem, dt)
		defer b.Release()
		fill(b)
		return b.NewArray()
	}
	for _, tc := range []struct {
		name     string
		arr      arrow.Array
		nullable bool
		want     any
	}{
		{
			name: "float64",
			arr: build(arrow.PrimitiveTypes.Float64, func(b array.Builder) {
				b.(*array.Float64Builder).AppendValues([]float64{1.5, -2, 0}, nil)
			}),
			want: []float64{1.5, -2, 0},
		},
		{
			name: "nullable float64",
			arr: build(arrow.PrimitiveTypes.Float64, func(b array.Builder) {
				b.(*array.Float64Builder).AppendValues([]float64{1.5, 0, 3}, []bool{true, false, true})
			}),
			nullable: true,
			want:     []*float64{ptr(1.5), nil, ptr(3.0)},
		},
		{
			name: "string",
			arr: build(arrow.BinaryTypes.String, func(b array.Builder) {
				b.(*array.StringBuilder).AppendValues([]string{"a", "", "ünï"}, nil)
			}),
			want: []string{"a", "", "ünï"},
		},
		{
			name: "nullable string",
			arr: build(arrow.BinaryTypes.String, func(b array.Builder) {
				b.(*array.StringBuilder).AppendValues([]string{"a", "", "c"}, []bool{true, false, true})
			}),
			nullable: true,
			want:     []*string{ptr("a"), nil, ptr("c")},
		},
		{
			name: "int32",
			arr: build(arrow.PrimitiveTypes.Int32, func(b array.Builder) {
				b.(*array.Int32Builder).AppendValues([]int32{7, -1}, nil)
			}),
			want: []int32{7, -1},
		},
		{
			name: "int64",
			arr: build(arrow.PrimitiveTypes.Int64, func(b array.Builder) {
				b.(*array.Int64Builder).AppendValues([]int64{1 << 40}, nil)
			}),
			want: []int64{1 << 40},
		},
		{
			// 1700000000123 ms is 2023-11-14T22:13:20.123Z.
			name: "timestamp ms",
			arr: build(&arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}, func(b array.Builder) {
				b.(*array.TimestampBuilder).Append(1700000000123)
			}),
			want: []time.Time{time.Date(2023, 11, 14, 22, 13, 20, 123e6, time.UTC)},
		},
		{
			name: "timestamp us",
			arr: build(&arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, func(b array.Builder) {
				b.(*array.TimestampBuilder).Append(1700000000123456)
			}),
			want: []time.Time{time.Date(2023, 11, 14, 22, 13, 20, 123456e3, time.UTC)},
		},
		{
			name: "list of string",
			arr: build(arrow.ListOf(arrow.BinaryTypes.String), func(b array.Builder) {
				lb := b.(*array.ListBuilder)
				vb := lb.ValueBuilder().(*array.StringBuilder)
				lb.Append(true)
				vb.AppendValues([]string{"x", "y"}, nil)
				lb.Append(true)
				lb.Append(true)
				vb.Append("z")
			}),
			want: [][]string{{"x", "y"}, {}, {"z"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.arr.Release()
			got, err := columnValues(tc.arr, tc.nullable)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

// TestListSliced checks that list rows of a sliced array start at the
// slice, not at the beginning of the values.
func TestListSliced(t *testing.T) {
	lb := array.NewListBuilder(memory.NewGoAllocator(), arrow.BinaryTypes.String)
	defer lb.Release()
	vb := lb.ValueBuilder().(*array.StringBuilder)
	for _, row := range [][]string{{"a"}, {"b", "c"}, {"d"}} {
		lb.Append(true)
		vb.AppendValues(row, nil)
	}
	full := lb.NewArray()
	defer full.Release()
	sl := array.NewSlice(full, 1, 3)
	defer sl.Release()
	got, err := columnValues(sl, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := [][]string{{"b", "c"}, {"d"}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v, want %#v", got, want)
	}
}

// appendMap appends an Arrow map array to a clickhouse-go column of type
// chType, as batch.Column(i).Append does, and reads every row back.
func appendMap(t *testing.T, arr arrow.Array, chType string) []any {
	t.Helper()
	v, err := columnValues(arr, false)
	if err != nil {
		t.Fatal(err)
	}
	col, err := column.Type(chType).Column("m", &column.ServerContext{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := col.Append(v); err != nil {
		t.Fatalf("append to %s: %v", chType, err)
	}
	out := make([]any, col.Rows())
	for i := range out {
		out[i] = col.Row(i, false)
	}
	return out
}

func TestMapFloat64(t *testing.T) {
	mb := array.NewMapBuilder(memory.NewGoAllocator(), arrow.BinaryTypes.String, arrow.PrimitiveTypes.Float64, false)
	defer mb.Release()
	kb := mb.KeyBuilder().(*array.StringBuilder)
	ib := mb.ItemBuilder().(*array.Float64Builder)
	mb.Append(true)
	kb.AppendValues([]string{"age", "income"}, nil)
	ib.AppendValues([]float64{41, 5200.5}, nil)
	mb.Append(true) // empty map
	mb.Append(true)
	kb.AppendValues([]string{"age", "score"}, nil)
	ib.AppendValues([]float64{0, -1}, []bool{false, true}) // a null item is stored as 0
	arr := mb.NewArray()
	defer arr.Release()

	got := appendMap(t, arr, "Map(String, Float64)")
	want := []any{
		map[string]float64{"age": 41, "income": 5200.5},
		map[string]float64{},
		map[string]float64{"age": 0, "score": -1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}

	// A slice of the array keeps its own rows.
	sl := array.NewSlice(arr, 2, 3)
	defer sl.Release()
	if got := appendMap(t, sl, "Map(String, Float64)"); !reflect.DeepEqual(got, want[2:]) {
		t.Fatalf("sliced: got %v, want %v", got, want[2:])
	}
}

func TestMapString(t *testing.T) {
	mb := array.NewMapBuilder(memory.NewGoAllocator(), arrow.BinaryTypes.String, arrow.BinaryTypes.String, false)
	defer mb.Release()
	kb := mb.KeyBuilder().(*array.StringBuilder)
	ib := mb.ItemBuilder().(*array.StringBuilder)
	mb.Append(true)
	kb.AppendValues([]string{"country", "device"}, nil)
	ib.AppendValues([]string{"DE", "iOS"}, nil)
	mb.Append(true)
	kb.AppendValues([]string{"country"}, nil)
	ib.AppendValues([]string{"Ελλάδα"}, nil)
	arr := mb.NewArray()
	defer arr.Release()

	got := appendMap(t, arr, "Map(String, String)")
	want := []any{
		map[string]string{"country": "DE", "device": "iOS"},
		map[string]string{"country": "Ελλάδα"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestUnsupported(t *testing.T) {
	mb := array.NewMapBuilder(memory.NewGoAllocator(), arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Float64, false)
	defer mb.Release()
	arr := mb.NewArray()
	defer arr.Release()
	if _, err := columnValues(arr, false); err == nil {
		t.Fatal("map with Int32 keys: no error")
	}
	b := array.NewUint8Builder(memory.NewGoAllocator())
	defer b.Release()
	uarr := b.NewArray()
	defer uarr.Release()
	if _, err := columnValues(uarr, false); err == nil {
		t.Fatal("uint8 column: no error")
	}
}

// TestBoolColumn: a boolean column (inferences.shadow) becomes []bool.
func TestBoolColumn(t *testing.T) {
	b := array.NewBooleanBuilder(memory.NewGoAllocator())
	defer b.Release()
	b.AppendValues([]bool{true, false, true}, nil)
	arr := b.NewArray()
	defer arr.Release()
	got, err := columnValues(arr, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, false, true}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// benchMap builds rows maps of features sorted keys each.
func benchMap(rows, features int) arrow.Array {
	mb := array.NewMapBuilder(memory.NewGoAllocator(), arrow.BinaryTypes.String, arrow.PrimitiveTypes.Float64, true)
	defer mb.Release()
	kb := mb.KeyBuilder().(*array.StringBuilder)
	ib := mb.ItemBuilder().(*array.Float64Builder)
	names := make([]string, features)
	for k := range names {
		names[k] = fmt.Sprintf("feature_%02d", k)
	}
	for i := range rows {
		mb.Append(true)
		for k, name := range names {
			kb.Append(name)
			ib.Append(float64(i%1000) + float64(k)/10)
		}
	}
	return mb.NewArray()
}

// TestMapAppendAllocs checks that appending map rows does not allocate
// per entry or per row; what is left is the column buffers growing.
func TestMapAppendAllocs(t *testing.T) {
	const rows = 1000
	arr := benchMap(rows, 20)
	defer arr.Release()
	col, err := column.Type("Map(String, Float64)").Column("m", &column.ServerContext{})
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(5, func() {
		col.Reset()
		v, err := columnValues(arr, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := col.Append(v); err != nil {
			t.Fatal(err)
		}
	})
	if !(allocs <= rows/10) {
		t.Fatalf("%v allocations to append %d rows of 20 entries", allocs, rows)
	}
}

// BenchmarkMapAppend reports the cost of handing 100,000 rows of 20
// features to a clickhouse-go Map(String, Float64) column.
func BenchmarkMapAppend(b *testing.B) {
	const rows = 100_000
	arr := benchMap(rows, 20)
	defer arr.Release()
	col, err := column.Type("Map(String, Float64)").Column("m", &column.ServerContext{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		col.Reset()
		v, err := columnValues(arr, false)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := col.Append(v); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

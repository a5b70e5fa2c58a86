// Package arrowch hands Arrow records to clickhouse-go/v2's columnar batch
// API: each Arrow column becomes one Append on the matching batch column.
// Ingest batches events as Arrow records and inserts them with Insert; the
// clickhouse-embedded benchmark measures the same path.
package arrowch

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
)

// Insert inserts an Arrow record into table with clickhouse-go's
// columnar batch API: each Arrow column is handed to the matching batch
// column in one Append. Map columns are passed as iterators over the Arrow
// key and item arrays, so no Go map is built per row.
func Insert(ctx context.Context, conn driver.Conn, table string, rec arrow.Record, token string) error {
	schema := rec.Schema()
	cols := make([]string, schema.NumFields())
	for i, f := range schema.Fields() {
		cols[i] = f.Name
	}
	// token is the insert_deduplication_token: ClickHouse drops a block it
	// has already seen under the same token, so a retried insert of the same
	// Kafka offsets is not stored twice.
	if token != "" {
		ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_deduplication_token": token}))
	}
	batch, err := conn.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO %s (%s)", table, strings.Join(cols, ", ")))
	if err != nil {
		return fmt.Errorf("prepare insert into %s: %w", table, err)
	}
	defer batch.Abort() //nolint:errcheck // a no-op after Send
	for i, col := range rec.Columns() {
		v, err := columnValues(col, schema.Field(i).Nullable)
		if err != nil {
			return fmt.Errorf("column %s of %s: %w", cols[i], table, err)
		}
		if err := batch.Column(i).Append(v); err != nil {
			return fmt.Errorf("append column %s of %s: %w", cols[i], table, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d rows into %s: %w", rec.NumRows(), table, err)
	}
	return nil
}

// columnValues converts one Arrow array to a slice clickhouse-go appends.
func columnValues(col arrow.Array, nullable bool) (any, error) {
	n := col.Len()
	switch a := col.(type) {
	case *array.String:
		if nullable {
			out := make([]*string, n)
			vals := make([]string, n)
			for i := range n {
				if a.IsValid(i) {
					vals[i] = a.Value(i)
					out[i] = &vals[i]
				}
			}
			return out, nil
		}
		out := make([]string, n)
		for i := range n {
			out[i] = a.Value(i)
		}
		return out, nil
	case *array.Float64:
		if nullable {
			out := make([]*float64, n)
			vals := a.Float64Values()
			for i := range n {
				if a.IsValid(i) {
					out[i] = &vals[i]
				}
			}
			return out, nil
		}
		return a.Float64Values(), nil
	case *array.Boolean:
		out := make([]bool, n)
		for i := range n {
			out[i] = a.Value(i)
		}
		return out, nil
	case *array.Int32:
		return a.Int32Values(), nil
	case *array.Int64:
		return a.Int64Values(), nil
	case *array.Timestamp:
		unit := a.DataType().(*arrow.TimestampType).Unit
		out := make([]time.Time, n)
		for i := range n {
			out[i] = a.Value(i).ToTime(unit)
		}
		return out, nil
	case *array.List:
		vals, ok := a.ListValues().(*array.String)
		if !ok {
			return nil, fmt.Errorf("list of %s is not supported", a.ListValues().DataType())
		}
		// Offsets is the whole offsets buffer, not the slice's part.
		offs := a.Offsets()[a.Offset():]
		out := make([][]string, n)
		if n == 0 {
			return out, nil
		}
		// One backing array for every row: the rows are its sub-slices.
		first := int(offs[0])
		flat := make([]string, int(offs[n])-first)
		for j := range flat {
			flat[j] = vals.Value(first + j)
		}
		for i := range n {
			lo, hi := int(offs[i])-first, int(offs[i+1])-first
			out[i] = flat[lo:hi:hi]
		}
		return out, nil
	case *array.Map:
		return mapValues(a)
	}
	return nil, fmt.Errorf("arrow type %s is not supported", col.DataType())
}

// mapValues converts a map array into one mapRow per row. clickhouse-go's
// Map column appends each row through reflection and then entry by entry
// through interfaces, so everything on that path is shaped not to
// allocate: the rows are pointers into one backing array (a pointer in an
// interface is stored as is), each row is its own iterator, and keys and
// values are returned as *string and *float64 pointing at the row's
// scratch field or straight into the Arrow buffer.
func mapValues(a *array.Map) (any, error) {
	keys, ok := a.Keys().(*array.String)
	if !ok {
		return nil, fmt.Errorf("map with %s keys is not supported", a.Keys().DataType())
	}
	col := &mapColumn{keys: keys}
	switch items := a.Items().(type) {
	case *array.Float64:
		col.floats = items
		col.floatVals = items.Float64Values()
	case *array.String:
		col.strings = items
	default:
		return nil, fmt.Errorf("map with %s items is not supported", a.Items().DataType())
	}
	n := a.Len()
	// Offsets is the whole offsets buffer, not the slice's part; they
	// index the entries struct, whose own offset Keys and Items ignore.
	offs := a.Offsets()[a.Offset():]
	base := a.ListValues().Data().Offset()
	rows := make([]mapRow, n)
	out := make([]*mapRow, n)
	for i := range n {
		rows[i] = mapRow{col: col, start: base + int(offs[i]), end: base + int(offs[i+1])}
		out[i] = &rows[i]
	}
	return out, nil
}

// mapColumn is what the rows of one map array share.
type mapColumn struct {
	keys      *array.String
	floats    *array.Float64 // items, when they are Float64
	floatVals []float64      // floats' values, indexed like floats
	strings   *array.String  // items, when they are String
}

// mapRow is one row of an Arrow map array seen as clickhouse-go's
// IterableOrderedMap, which Map columns append entry by entry. A row is
// its own MapIterator: clickhouse-go drains one row's iterator before it
// asks for the next row's, so no iterator is allocated per row. Key and
// Value return pointers that stay valid until the next call to Next; the
// column copies what they point at at once.
type mapRow struct {
	col        *mapColumn
	start, end int
	i          int
	key, str   string // scratch for Key and for String items
}

// Put exists to satisfy column.IterableOrderedMap; rows are read-only.
func (m *mapRow) Put(any, any) { panic("BUG: mapRow is read-only") }

// Iterator rewinds the row and returns it.
func (m *mapRow) Iterator() column.MapIterator {
	m.i = m.start - 1
	return m
}

// Next advances to the row's next entry.
func (m *mapRow) Next() bool { m.i++; return m.i < m.end }

// Key returns the current entry's key as a *string.
func (m *mapRow) Key() any {
	m.key = m.col.keys.Value(m.i)
	return &m.key
}

// Value returns the current entry's value as a *float64 into the Arrow
// buffer or a *string, or nil for a null item (which clickhouse-go stores
// as the type's zero value).
func (m *mapRow) Value() any {
	if c := m.col; c.floats != nil {
		if c.floats.IsNull(m.i) {
			return nil
		}
		return &c.floatVals[m.i]
	}
	if m.col.strings.IsNull(m.i) {
		return nil
	}
	m.str = m.col.strings.Value(m.i)
	return &m.str
}

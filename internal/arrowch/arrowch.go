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

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
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
		offs := a.Offsets()
		out := make([][]string, n)
		for i := range n {
			row := make([]string, 0, offs[i+1]-offs[i])
			for j := offs[i]; j < offs[i+1]; j++ {
				row = append(row, vals.Value(int(j)))
			}
			out[i] = row
		}
		return out, nil
	case *array.Map:
		keys, ok := a.Keys().(*array.String)
		if !ok {
			return nil, fmt.Errorf("map with %s keys is not supported", a.Keys().DataType())
		}
		offs := a.Offsets()
		out := make([]mapRow, n)
		for i := range n {
			out[i] = mapRow{keys: keys, items: a.Items(), start: int(offs[i]), end: int(offs[i+1])}
		}
		return out, nil
	}
	return nil, fmt.Errorf("arrow type %s is not supported", col.DataType())
}

// mapRow is one row of an Arrow map array seen as clickhouse-go's
// IterableOrderedMap, which Map columns append entry by entry.
type mapRow struct {
	keys       *array.String
	items      arrow.Array
	start, end int
}

// Put exists to satisfy column.IterableOrderedMap; rows are read-only.
func (m mapRow) Put(any, any) { panic("BUG: mapRow is read-only") }

// Iterator walks the row's entries in order.
func (m mapRow) Iterator() column.MapIterator {
	return &mapIter{row: m, i: m.start - 1}
}

type mapIter struct {
	row mapRow
	i   int
}

func (it *mapIter) Next() bool { it.i++; return it.i < it.row.end }
func (it *mapIter) Key() any   { return it.row.keys.Value(it.i) }
func (it *mapIter) Value() any {
	switch v := it.row.items.(type) {
	case *array.Float64:
		return v.Value(it.i)
	case *array.String:
		return v.Value(it.i)
	}
	panic(fmt.Sprintf("BUG: map items of type %s", it.row.items.DataType()))
}

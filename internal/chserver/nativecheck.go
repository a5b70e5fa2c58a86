package chserver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// errUnknownType stops checkNative at a ClickHouse type it cannot size
// (see unsizedTypes); the stream is then trusted as the engine's own
// output. A type name ClickHouse does not have is an error instead:
// clickhouse-go's decoder reads such names loosely ("Float64000" as
// Float64) and would trust the sizes that follow.
var errUnknownType = errors.New("type not sized by checkNative")

// unsizedTypes are the ClickHouse types checkNative leaves to the decoder.
var unsizedTypes = map[string]bool{
	"JSON": true, "Object": true, "Dynamic": true, "Variant": true, "AggregateFunction": true,
	"SimpleAggregateFunction": true, "Nested": true, "Time": true,
}

// geoTypes are the geometry types, as the Native layout they share.
var geoTypes = map[string]string{
	"Point":           "Tuple(Float64, Float64)",
	"Ring":            "Array(Tuple(Float64, Float64))",
	"LineString":      "Array(Tuple(Float64, Float64))",
	"MultiLineString": "Array(Array(Tuple(Float64, Float64)))",
	"Polygon":         "Array(Array(Tuple(Float64, Float64)))",
	"MultiPolygon":    "Array(Array(Array(Tuple(Float64, Float64))))",
}

// unknown is the error for a type checkNative does not size: errUnknownType
// for a real ClickHouse type, an error naming it otherwise.
func unknown(typ string) error {
	if name, _ := splitType(typ); unsizedTypes[name] {
		return errUnknownType
	}
	return fmt.Errorf("unknown type %q", typ)
}

// checkNative walks a revision-0 Native stream and verifies that every
// declared size (rows, string lengths, array offsets, dictionary sizes)
// fits in the bytes that remain. clickhouse-go's decoder allocates what the
// stream declares before reading it, so this check stands between a
// malformed stream and an out-of-memory crash.
func checkNative(in []byte) error {
	pos := 0
	for block := 0; pos < len(in); block++ {
		cols, n := binary.Uvarint(in[pos:])
		if n <= 0 {
			return fmt.Errorf("block %d: bad column count", block)
		}
		pos += n
		rows, n := binary.Uvarint(in[pos:])
		if n <= 0 {
			return fmt.Errorf("block %d: bad row count", block)
		}
		pos += n
		if cols > uint64(len(in)-pos) || rows > uint64(len(in)-pos) {
			return fmt.Errorf("block %d: %d columns of %d rows do not fit in %d bytes", block, cols, rows, len(in)-pos)
		}
		for c := uint64(0); c < cols; c++ {
			var typ string
			for range 2 { // name, then type
				l, n := binary.Uvarint(in[pos:])
				if n <= 0 || l > uint64(len(in)-pos-n) {
					return fmt.Errorf("block %d column %d: bad name or type", block, c)
				}
				typ = string(in[pos+n : pos+n+int(l)])
				pos += n + int(l)
			}
			if rows == 0 {
				continue
			}
			w := &nativeWalker{in: in, pos: pos}
			if err := w.prefix(typ); err != nil {
				return unknownOK(err, block, c)
			}
			if err := w.data(typ, rows); err != nil {
				return unknownOK(err, block, c)
			}
			pos = w.pos
		}
		if cols == 0 && rows > 0 {
			return fmt.Errorf("block %d: %d rows without columns", block, rows)
		}
	}
	return nil
}

func unknownOK(err error, block int, col uint64) error {
	if errors.Is(err, errUnknownType) {
		return errUnknownType
	}
	return fmt.Errorf("block %d column %d: %w", block, col, err)
}

type nativeWalker struct {
	in  []byte
	pos int
}

func (w *nativeWalker) left() uint64 { return uint64(len(w.in) - w.pos) }

func (w *nativeWalker) skip(n uint64) error {
	if n > w.left() {
		return fmt.Errorf("%d bytes declared, %d left", n, w.left())
	}
	w.pos += int(n)
	return nil
}

func (w *nativeWalker) u64() (uint64, error) {
	if w.left() < 8 {
		return 0, errors.New("truncated UInt64")
	}
	v := binary.LittleEndian.Uint64(w.in[w.pos:])
	w.pos += 8
	return v, nil
}

// prefix skips the serialization state prefixes of typ's LowCardinality
// parts, which precede the column's data.
func (w *nativeWalker) prefix(typ string) error {
	name, args := splitType(typ)
	switch name {
	case "LowCardinality":
		_, err := w.u64()
		return err
	case "Nullable", "Array":
		if len(args) != 1 {
			return fmt.Errorf("malformed type %q", typ)
		}
		return w.prefix(args[0])
	case "Map", "Tuple":
		for _, a := range args {
			if err := w.prefix(elemType(a)); err != nil {
				return err
			}
		}
	case "JSON", "Object", "Dynamic", "Variant", "AggregateFunction", "SimpleAggregateFunction", "Nested":
		return errUnknownType
	}
	return nil
}

func (w *nativeWalker) data(typ string, rows uint64) error {
	if rows > w.left() {
		return fmt.Errorf("%d rows declared, %d bytes left", rows, w.left())
	}
	if g, ok := geoTypes[typ]; ok {
		typ = g
	}
	name, args := splitType(typ)
	if width := fixedWidth(name, args); width > 0 {
		return w.skip(rows * width)
	}
	switch name {
	case "String":
		for i := uint64(0); i < rows; i++ {
			l, n := binary.Uvarint(w.in[w.pos:])
			if n <= 0 {
				return errors.New("bad string length")
			}
			w.pos += n
			if err := w.skip(l); err != nil {
				return err
			}
		}
		return nil
	case "FixedString":
		if len(args) != 1 {
			return fmt.Errorf("malformed type %q", typ)
		}
		size, err := strconv.ParseUint(args[0], 10, 32)
		if err != nil {
			return fmt.Errorf("malformed type %q", typ)
		}
		return w.skip(rows * size)
	case "Nullable":
		if len(args) != 1 {
			return fmt.Errorf("malformed type %q", typ)
		}
		if err := w.skip(rows); err != nil {
			return err
		}
		return w.data(args[0], rows)
	case "Array", "Map":
		if err := w.skip(8 * (rows - 1)); err != nil {
			return err
		}
		total, err := w.u64()
		if err != nil {
			return err
		}
		if name == "Array" {
			if len(args) != 1 {
				return fmt.Errorf("malformed type %q", typ)
			}
			return w.data(args[0], total)
		}
		for _, a := range args {
			if err := w.data(elemType(a), total); err != nil {
				return err
			}
		}
		return nil
	case "Tuple":
		for _, a := range args {
			if err := w.data(elemType(a), rows); err != nil {
				return err
			}
		}
		return nil
	case "LowCardinality":
		if len(args) != 1 {
			return fmt.Errorf("malformed type %q", typ)
		}
		dict := args[0]
		if n, a := splitType(dict); n == "Nullable" && len(a) == 1 {
			dict = a[0]
		}
		for done := uint64(0); done < rows; {
			flags, err := w.u64()
			if err != nil {
				return err
			}
			idxWidth := uint64(1) << (flags & 0xff)
			if flags&0xff > 3 {
				return fmt.Errorf("bad LowCardinality index type %d", flags&0xff)
			}
			if flags&(1<<9) != 0 {
				keys, err := w.u64()
				if err != nil {
					return err
				}
				if err := w.data(dict, keys); err != nil {
					return err
				}
			}
			n, err := w.u64()
			if err != nil {
				return err
			}
			if n == 0 || n > rows-done {
				return fmt.Errorf("LowCardinality granule of %d rows in %d", n, rows-done)
			}
			if err := w.skip(n * idxWidth); err != nil {
				return err
			}
			done += n
		}
		return nil
	case "Nothing":
		return w.skip(rows)
	}
	return unknown(typ)
}

func fixedWidth(name string, args []string) uint64 {
	switch name {
	case "UInt8", "Int8", "Bool", "Enum8":
		return 1
	case "UInt16", "Int16", "Date", "Enum16", "BFloat16":
		return 2
	case "UInt32", "Int32", "Float32", "Date32", "DateTime", "IPv4", "Decimal32":
		return 4
	case "UInt64", "Int64", "Float64", "DateTime64", "Decimal64", "Time64",
		"IntervalNanosecond", "IntervalMicrosecond", "IntervalMillisecond", "IntervalSecond", "IntervalMinute",
		"IntervalHour", "IntervalDay", "IntervalWeek", "IntervalMonth", "IntervalQuarter", "IntervalYear":
		return 8
	case "UInt128", "Int128", "UUID", "IPv6", "Decimal128":
		return 16
	case "UInt256", "Int256", "Decimal256":
		return 32
	case "Decimal":
		if len(args) == 0 {
			return 0
		}
		p, err := strconv.Atoi(args[0])
		switch {
		case err != nil:
			return 0
		case p <= 9:
			return 4
		case p <= 18:
			return 8
		case p <= 38:
			return 16
		}
		return 32
	}
	return 0
}

// splitType splits "Name(a, b)" into Name and its top-level arguments.
func splitType(typ string) (string, []string) {
	typ = strings.TrimSpace(typ)
	open := strings.IndexByte(typ, '(')
	if open < 0 || !strings.HasSuffix(typ, ")") {
		return typ, nil
	}
	name, inner := typ[:open], typ[open+1:len(typ)-1]
	var args []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(inner); i++ {
		c := inner[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '`' || c == '"':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == ',' && depth == 0:
			args = append(args, strings.TrimSpace(inner[start:i]))
			start = i + 1
		}
	}
	args = append(args, strings.TrimSpace(inner[start:]))
	return name, args
}

// elemType strips the element name of a named Tuple element ("a Float64").
func elemType(a string) string {
	if i := strings.IndexAny(a, " ("); i > 0 && a[i] == ' ' {
		return strings.TrimSpace(a[i+1:])
	}
	return a
}

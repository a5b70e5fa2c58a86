package window

import (
	"encoding/binary"
	"math"
	"reflect"
	"testing"
)

// state serialises xs as ClickHouse's groupArray state: a varint count,
// then the values little-endian.
func state[T uint16 | uint32](xs ...T) string {
	b := binary.AppendUvarint(nil, uint64(len(xs)))
	for _, x := range xs {
		b, _ = binary.Append(b, binary.LittleEndian, x)
	}
	return string(b)
}

func TestDecodeUints(t *testing.T) {
	if got, err := decodeUints[uint16](state[uint16](1, 2, 65535)); err != nil || !reflect.DeepEqual(got, []uint16{1, 2, 65535}) {
		t.Errorf("uint16: %v, %v", got, err)
	}
	if got, err := decodeUints[uint32](state[uint32](7, 1<<31)); err != nil || !reflect.DeepEqual(got, []uint32{7, 1 << 31}) {
		t.Errorf("uint32: %v, %v", got, err)
	}
	if got, err := decodeUints[uint32](state[uint32]()); err != nil || len(got) != 0 {
		t.Errorf("empty: %v, %v", got, err)
	}
	for name, s := range map[string]string{
		"empty string":        "",
		"short by a byte":     state[uint16](1, 2)[:4],
		"wider than declared": state[uint32](1, 2),
		"bad varint":          "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
	} {
		if got, err := decodeUints[uint16](s); err == nil {
			t.Errorf("%s: decoded %v, want an error", name, got)
		}
	}
}

func FuzzDecodeUints(f *testing.F) {
	f.Add(state[uint16](1, 2, 3))
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		if xs, err := decodeUints[uint16](s); err == nil && len(xs) > len(s) {
			t.Fatalf("%d values from %d bytes", len(xs), len(s))
		}
		_, _ = decodeUints[uint32](s)
	})
}

// TestSortByValue: ascending, NaN last (arraySort's order), the hashes
// with their values, ties by hash.
func TestSortByValue(t *testing.T) {
	nan := math.NaN()
	vs := []float64{3, nan, -1, 3, 0, nan}
	hs := []float64{0.5, 0.9, 0.1, 0.2, 0.3, 0.4}
	sortByValue(vs, hs)
	wantV := []float64{-1, 0, 3, 3}
	wantH := []float64{0.1, 0.3, 0.2, 0.5, 0.4, 0.9}
	for i, v := range wantV {
		if vs[i] != v {
			t.Fatalf("values %v, want %v then NaN, NaN", vs, wantV)
		}
	}
	if !math.IsNaN(vs[4]) || !math.IsNaN(vs[5]) {
		t.Fatalf("values %v: NaN not last", vs)
	}
	if !reflect.DeepEqual(hs, wantH) {
		t.Errorf("hashes %v, want %v", hs, wantH)
	}
}

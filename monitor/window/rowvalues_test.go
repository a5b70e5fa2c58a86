package window

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/internal/chsql"
)

// state serialises xs as ClickHouse's groupArray state: a varint count,
// then the values little-endian.
func state[T uint8 | uint16 | uint32](xs ...T) string {
	b := binary.AppendUvarint(nil, uint64(len(xs)))
	for _, x := range xs {
		b, _ = binary.Append(b, binary.LittleEndian, x)
	}
	return string(b)
}

func TestDecodeUints(t *testing.T) {
	if got, err := decodeUints[uint8](state[uint8](0, 127, 128, 255)); err != nil || !reflect.DeepEqual(got, []uint8{0, 127, 128, 255}) {
		t.Errorf("uint8: %v, %v", got, err)
	}
	if got, err := decodeUints[uint8](state[uint16](1, 2)); err == nil {
		t.Errorf("uint16s as uint8: decoded %v, want an error", got)
	}
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
		if xs, err := decodeUints[uint8](s); err == nil && len(xs) >= len(s) {
			t.Fatalf("%d bytes from a state of %d", len(xs), len(s))
		}
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

// TestCanonicalRows checks rowValuesSQL's canonical rows against the full
// computation, on features whose order by frequency (the reference's:
// z in every row, then a, then the score) is not their order by name (a,
// z): rows with exactly the reference's features, in ingest's sorted order
// (canonical), and rows that are not — a feature missing, one the
// reference lacks, the keys unsorted, no score. A canonical row's values
// read in the reference's order instead of the names' give other bins, so
// the snapshots would differ.
func TestCanonicalRows(t *testing.T) {
	canon, score := canonicalFeatures([]Numeric{{Feature: "z"}, {Feature: "a"}, {Feature: ScoreFeature}, {Feature: "m"}})
	if !slices.Equal(canon, []uint16{2, 4, 1}) || score != 3 {
		t.Errorf("canonicalFeatures = %v, score %d; want [2 4 1] (a, m, z), score 3", canon, score)
	}
	if _, score := canonicalFeatures([]Numeric{{Feature: "a"}}); score != 0 {
		t.Errorf("canonicalFeatures without a score: score %d, want 0", score)
	}
	// Both ways that treat canonical rows apart: the codes, and the row
	// values, each on a database of its own (the partials one way writes
	// would be read by the other).
	for _, codes := range []bool{true, false} {
		t.Run(map[bool]string{true: "codes", false: "row values"}[codes], func(t *testing.T) {
			was := useCodes
			defer func() { useCodes = was }()
			useCodes = codes
			canonicalRows(t)
		})
	}
}

func canonicalRows(t *testing.T) {
	conn := openDB(t)
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-4 * time.Hour)
	insert := func(prefix string, start time.Time, n int, numeric, score string) {
		t.Helper()
		sql := fmt.Sprintf("INSERT INTO inferences (event_id, model_id, model_version, prediction_id, timestamp, features_numeric, features_categorical, prediction_label, prediction_score, ingested_at) "+
			"SELECT id, 'canon', 'v1', id, %s + toIntervalMillisecond(number * 500), %s, map('color', 'red'), 'yes', %s, now64(3) "+
			"FROM (SELECT number, concat(%s, toString(number)) AS id, toFloat64(cityHash64(id, 'a') %% 1000) / 100 AS a, toFloat64(cityHash64(id, 'z') %% 1000) / 10 AS z FROM numbers(%d))",
			chsql.Time(start), numeric, score, chsql.String(prefix), n)
		if err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("insert %s rows: %v", prefix, err)
		}
	}
	const s = "(cityHash64(id, 's') % 1000) / 1000"
	// The reference: z always, a in two rows of three (a after z by
	// frequency, before it by name).
	insert("r", t0, 3000, "if(number % 3 = 0, map('z', z), map('a', a, 'z', z))", s)
	cur := t0.Add(time.Hour)
	insert("canonical", cur, 100, "map('a', a + 1, 'z', z)", s)
	insert("missing", cur.Add(time.Minute), 40, "map('z', z * 2)", s)
	insert("extra", cur.Add(2*time.Minute), 40, "map('a', a, 'q', 1., 'z', z)", s)
	insert("unsorted", cur.Add(3*time.Minute), 40, "map('z', z + 50, 'a', a)", s)
	insert("no score", cur.Add(4*time.Minute), 40, "map('a', a - 2, 'z', z)", "NULL")
	insert("empty", cur.Add(5*time.Minute), 10, "map()", s)

	opts := Options{Samples: true, SampleCap: 100, MaxCategories: 8}
	ref := Span{Start: t0, End: t0.Add(time.Hour)}
	_, pinned, err := ComputeCached(ctx, conn, "canon", ref, Span{Start: ref.End, End: ref.End}, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	pinned.Pin()
	if got := []string{pinned.numeric[0].Feature, pinned.numeric[1].Feature}; !slices.Equal(got, []string{"z", "a"}) {
		t.Fatalf("the reference's features %v, want z then a (by frequency)", got)
	}
	window := Span{Start: cur, End: cur.Add(10 * time.Minute)}
	full, _, err := ComputeCached(ctx, conn, "canon", ref, window, opts, pinned)
	if err != nil {
		t.Fatal(err)
	}
	inc, _, prog, err := ComputeIncremental(ctx, conn, "canon", ref, window, opts, pinned, time.Minute, NewBucketCache())
	if err != nil {
		t.Fatal(err)
	}
	if !prog.Incremental || prog.Aggregated < 6 {
		t.Fatalf("incremental %v, %d buckets aggregated, want the 6 with rows at least (%s)", prog.Incremental, prog.Aggregated, prog.Fallback)
	}
	sameSnapshot(t, "canonical and other rows", full, inc)
}

// TestCodesSQLFits checks that the features the incremental path takes
// (their binsSQL within MaxQueryBytes/2, the guard in StartIncremental)
// give a codesSQL within MaxQueryBytes: many features with long names and
// edges of 17 digits, grown until the guard refuses them.
func TestCodesSQLFits(t *testing.T) {
	for _, bins := range []int{DefaultBins, 128} {
		opts := Options{Bins: bins, Samples: true}
		opts.defaults()
		q := &querier{model: "m", cur: Span{Start: time.Unix(0, 0), End: time.Unix(3600, 0)}, opts: opts, curOnly: true, bucketMs: 60000}
		var num []Numeric
		for i := 0; ; i++ {
			n := Numeric{Feature: fmt.Sprintf("a_rather_long_feature_name_%04d", i), RefMin: -1.2345678901234567, RefMax: 9.876543210987654}
			for j := range q.opts.Bins - 1 {
				n.Edges = append(n.Edges, float64(j)+0.12345678901234567)
			}
			grown := append(append([]Numeric(nil), num...), n)
			if len(q.binsSQL(grown)) > MaxQueryBytes/2 {
				break
			}
			num = grown
		}
		num = append(num, Numeric{Feature: ScoreFeature, Edges: num[0].Edges})
		l, ok := codesLayout(num)
		if !ok {
			t.Fatal("no canonical layout")
		}
		if n := len(codesSQL(q, num, l, q.opts.Bins-1, 0.5)); !(n <= MaxQueryBytes) {
			t.Errorf("%d features the incremental path takes: codesSQL of %d bytes, over MaxQueryBytes (%d)", len(num), n, MaxQueryBytes)
		} else {
			t.Logf("%d features of %d edges: codesSQL %d bytes", len(num), q.opts.Bins-1, n)
		}
	}
}

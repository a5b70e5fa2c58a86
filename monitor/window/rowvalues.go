package window

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/driftwatch/driftwatch/internal/chsql"
)

// rowValuesSQL selects, per bucket b of bq's rows (bucketMs set), the
// rows' numeric values as four serialised groupArray states: each row's
// hash h, each row's count of values, and all rows' values in row order
// with their features (1-based in num as UInt16, 0 for a feature num
// lacks). The prediction score is the row's last value, under
// ScoreFeature. binRows bins and samples them.
//
// A row whose features are exactly num's others, in the order of
// canonicalFeatures (ingest writes a map's keys sorted), carries no
// features: its count has canonicalRow set, and its values are of
// canonicalFeatures' features in turn (the score after them). Comparing a
// row's keys with the list costs the server a quarter of looking each key
// up (36 ms against 48 for a bucket of 16,667 rows of 50 features); any
// other row has its features looked up as before.
//
// The states of one bucket's row hold the rows in the same order: the
// aggregate functions of a GROUP BY key add every row in turn and merge
// their threads' states together.
func rowValuesSQL(bq *querier, num []Numeric) string {
	keys := make([]string, len(num))
	ids := make([]string, len(num))
	score := 0
	for i, n := range num {
		keys[i] = chsql.String(n.Feature)
		ids[i] = strconv.Itoa(i + 1)
		if n.Feature == ScoreFeature {
			score = i + 1
		}
	}
	idxOf := fmt.Sprintf("arrayMap(k -> transform(k, [%s], CAST([%s], 'Array(UInt16)'), toUInt16(0)), mapKeys(features_numeric))", strings.Join(keys, ", "), strings.Join(ids, ", "))
	vals := "mapValues(features_numeric)"
	if score > 0 {
		// As numericPairs: a score is a value of ScoreFeature.
		idxOf = fmt.Sprintf("arrayConcat(%s, if(prediction_score IS NULL, CAST([], 'Array(UInt16)'), [toUInt16(%d)]))", idxOf, score)
		vals = fmt.Sprintf("arrayConcat(%s, if(prediction_score IS NULL, emptyArrayFloat64(), [assumeNotNull(prediction_score)]))", vals)
	}
	canonical := "false"
	if canon, _ := canonicalFeatures(num); len(canon) > 0 {
		names := make([]string, len(canon))
		for j, i := range canon {
			names[j] = chsql.String(num[i-1].Feature)
		}
		canonical = fmt.Sprintf("mapKeys(features_numeric) = CAST([%s], 'Array(String)')", strings.Join(names, ", "))
		idxOf = fmt.Sprintf("if(c, CAST([], 'Array(UInt16)'), %s)", idxOf)
	}
	return fmt.Sprintf("SELECT b, CAST(groupArrayState(h) AS String), CAST(groupArrayState(bitOr(toUInt32(length(vs)), if(c, toUInt32(%d), toUInt32(0)))) AS String), "+
		"CAST(groupArrayArrayState(ks) AS String), CAST(groupArrayArrayState(vs) AS String) "+
		"FROM (SELECT %s AS b, cityHash64(event_id) / 18446744073709551616 AS h, %s AS c, %s AS ks, %s AS vs %s) GROUP BY b",
		canonicalRow, bq.bucketOf(), canonical, idxOf, vals, bq.base())
}

// canonicalRow marks, in a row's count of values, a row of
// canonicalFeatures (see rowValuesSQL).
const canonicalRow = 1 << 31

// canonicalFeatures is the features (1-based in num) of a canonical row,
// in the order of its values: num's features other than the score, sorted
// by name as ingest writes a map's keys, the score (0 when num has none)
// last.
func canonicalFeatures(num []Numeric) (canon []uint16, score uint16) {
	for i, n := range num {
		if n.Feature == ScoreFeature {
			score = uint16(i + 1)
			continue
		}
		canon = append(canon, uint16(i+1))
	}
	slices.SortFunc(canon, func(x, y uint16) int { return strings.Compare(num[x-1].Feature, num[y-1].Feature) })
	return canon, score
}

// sqlConstant is x as floatArray writes it into a statement: infinities
// become NaN, which compares false.
func sqlConstant(x float64) float64 {
	if math.IsInf(x, 0) {
		return math.NaN()
	}
	return x
}

// binRows bins and samples one bucket's rows of rowValuesSQL as
// binnedSQL's GROUP BY b, idx, bin does: per feature and bin, its values,
// those outside the reference's range, and (with their hashes) the values
// whose hash is below the bucket's sample bound of the feature, ascending
// (NaN last, as arraySort); and the bucket's rows. nb is the number of
// edges compared (Bins − 1).
func (a *bucketAggregation) binRows(b int64, hb, lb, ib, vb string, nb int) ([]partRow, int, error) {
	num := a.p.ref.numeric
	hs, err := decodeFloats(hb)
	if err != nil {
		return nil, 0, fmt.Errorf("row hashes of bucket %d: %w", b, err)
	}
	lens, err := decodeUints[uint32](lb)
	if err != nil {
		return nil, 0, fmt.Errorf("values per row of bucket %d: %w", b, err)
	}
	idx, err := decodeUints[uint16](ib)
	if err != nil {
		return nil, 0, fmt.Errorf("features of bucket %d: %w", b, err)
	}
	vs, err := decodeFloats(vb)
	if err != nil {
		return nil, 0, fmt.Errorf("values of bucket %d: %w", b, err)
	}
	if len(lens) != len(hs) {
		return nil, 0, fmt.Errorf("BUG: bucket %d holds %d rows and %d counts", b, len(hs), len(lens))
	}
	// A canonical row's features are canon's, the score after them.
	canon, score := canonicalFeatures(num)
	canon = append(canon, score)
	// The rows' values start at their offsets, their features (none for a
	// canonical row) at theirs; the chunks of rows are binned side by
	// side, each into cells of its own, merged after.
	starts := make([]int, len(lens)+1)
	fstarts := make([]int, len(lens)+1)
	for r, n := range lens {
		c := n&canonicalRow != 0
		n &^= canonicalRow
		if c && (int(n) < len(canon)-1 || int(n) > len(canon) || int(n) == len(canon) && score == 0) {
			return nil, 0, fmt.Errorf("BUG: canonical row of bucket %d with %d values for %d features", b, n, len(canon)-1)
		}
		lens[r] = n
		starts[r+1] = starts[r] + int(n)
		fstarts[r+1] = fstarts[r] + int(n)*b2i(!c)
	}
	if starts[len(lens)] != len(vs) || fstarts[len(lens)] != len(idx) {
		return nil, 0, fmt.Errorf("BUG: bucket %d's rows hold %d of its %d values and %d of its %d features", b, starts[len(lens)], len(vs), fstarts[len(lens)], len(idx))
	}
	fs := a.binFeatures(b, nb)
	workers := runtime.GOMAXPROCS(0)
	if binWorkers > 0 {
		workers = binWorkers
	}
	chunks := max(1, min(workers, len(vs)/binChunkValues))
	cells := make([][][]binCell, chunks) // chunk → feature → bin
	bad := make([]error, chunks)
	parallel(chunks, func(ci int) {
		cs := newCells(fs)
		cells[ci] = cs
		from, to := len(lens)*ci/chunks, len(lens)*(ci+1)/chunks
		for r := from; r < to; r++ {
			h := hs[r]
			ids := idx[fstarts[r]:fstarts[r+1]]
			if len(ids) == 0 {
				ids = canon[:lens[r]]
			}
			for j, i := range ids {
				i, k := int(i), starts[r]+j
				if i == 0 {
					continue
				}
				if i > len(fs) {
					bad[ci] = fmt.Errorf("BUG: value of feature %d of %d in bucket %d", i, len(fs), b)
					return
				}
				f, v := &fs[i-1], vs[k]
				c := &cs[i-1][f.bin(v)]
				c.n++
				if v < f.lo || v > f.hi {
					c.outside++
				}
				if h < f.bound {
					c.vs = append(c.vs, v)
					c.hs = append(c.hs, h)
				}
			}
		}
	})
	if err := errors.Join(bad...); err != nil {
		return nil, 0, err
	}
	return cellsToParts(b, num, fs, cells), len(hs), nil
}

// binFeature is what binning one feature's values of a bucket needs: the
// reference's edges (Bins − 1 at most) and range as the statements carry
// them (sqlConstant), and the bucket's sample bound.
type binFeature struct {
	edges  []float64
	lo, hi float64
	bound  float64
}

// binCell is one feature's values in one bin of a bucket: counted, those
// outside the reference's range, and the sampled ones with their hashes.
type binCell struct {
	n, outside uint64
	vs, hs     []float64
}

// bin is v's bin: the edges at or below it, compared without a branch (a
// value falls between them at random, and a branch on each comparison
// mispredicts: 2.2x slower measured).
func (f *binFeature) bin(v float64) int {
	bin := 0
	for _, e := range f.edges {
		bin += b2i(v >= e)
	}
	return bin
}

// binFeatures is the reference's numeric features as bucket b's values
// are binned, nb edges at most.
func (a *bucketAggregation) binFeatures(b int64, nb int) []binFeature {
	num := a.p.ref.numeric
	fs := make([]binFeature, len(num))
	for i, n := range num {
		k := min(nb, len(n.Edges))
		edges := make([]float64, k)
		for j := range k {
			edges[j] = sqlConstant(n.Edges[j])
		}
		fs[i] = binFeature{edges: edges, lo: sqlConstant(n.RefMin), hi: sqlConstant(n.RefMax), bound: a.bounds[bucketFeature{b, n.Feature}]}
	}
	return fs
}

// newCells is one chunk's cells: feature → bin.
func newCells(fs []binFeature) [][]binCell {
	cs := make([][]binCell, len(fs))
	for i := range fs {
		cs[i] = make([]binCell, len(fs[i].edges)+1)
	}
	return cs
}

// cellsToParts merges the chunks' cells of bucket b (chunk → feature →
// bin) into its partials, in binnedSQL's order within the bucket: by
// feature, then bin, each bin's sampled values ascending (NaN last, as
// arraySort) with their hashes.
func cellsToParts(b int64, num []Numeric, fs []binFeature, cells [][][]binCell) []partRow {
	perFeature := make([][]partRow, len(fs))
	parallel(len(fs), func(i int) {
		f := &fs[i]
		for bin := range len(f.edges) + 1 {
			c := cells[0][i][bin]
			for _, cs := range cells[1:] {
				o := &cs[i][bin]
				c.n += o.n
				c.outside += o.outside
				c.vs = append(c.vs, o.vs...)
				c.hs = append(c.hs, o.hs...)
			}
			if c.n == 0 {
				continue
			}
			// A total order (value, then hash): the chunks' order does not
			// matter.
			sortByValue(c.vs, c.hs)
			perFeature[i] = append(perFeature[i], partRow{bucket: b, feature: num[i].Feature, bin: uint32(bin), n: c.n, outside: c.outside, bound: f.bound, hs: c.hs, vs: c.vs, idx: i + 1})
		}
	})
	var out []partRow
	for _, rs := range perFeature {
		out = append(out, rs...)
	}
	return out
}

// b2i is 1 for true; the compiler makes it a flag, not a branch.
func b2i(x bool) int {
	if x {
		return 1
	}
	return 0
}

// binChunkValues is the fewest values binRows gives a goroutine of its
// own, binWorkers (0: GOMAXPROCS) the most goroutines; tests change them.
var (
	binChunkValues = 1 << 16
	binWorkers     = 0
)

// sortByValue sorts vs ascending, NaN last (arraySort's order), and hs
// with them; equal values by hash.
func sortByValue(vs, hs []float64) {
	type pair struct{ v, h float64 }
	ps := make([]pair, len(vs))
	for i := range vs {
		ps[i] = pair{vs[i], hs[i]}
	}
	slices.SortFunc(ps, func(x, y pair) int {
		if xn, yn := math.IsNaN(x.v), math.IsNaN(y.v); xn || yn {
			switch {
			case xn && yn:
				return cmp.Compare(x.h, y.h)
			case xn:
				return 1
			default:
				return -1
			}
		}
		if c := cmp.Compare(x.v, y.v); c != 0 {
			return c
		}
		return cmp.Compare(x.h, y.h)
	})
	for i, p := range ps {
		vs[i], hs[i] = p.v, p.h
	}
}

// decodeUints decodes a serialised groupArray state of unsigned integers.
func decodeUints[T uint8 | uint16 | uint32](state string) ([]T, error) {
	var zero T
	size := binary.Size(zero)
	n, k := binary.Uvarint([]byte(state[:min(len(state), binary.MaxVarintLen64)]))
	if k <= 0 || uint64(len(state)-k) != uint64(size)*n {
		return nil, fmt.Errorf("groupArray state of %d bytes does not hold %d %d-byte integers", len(state), n, size)
	}
	out := make([]T, n)
	for i := range out {
		at := k + size*i
		switch size {
		case 1:
			out[i] = T(state[at])
		case 2:
			out[i] = T(binary.LittleEndian.Uint16([]byte(state[at : at+2])))
		default:
			out[i] = T(binary.LittleEndian.Uint32([]byte(state[at : at+4])))
		}
	}
	return out, nil
}

// maxRowValues bounds the numeric values one statement of rowValuesSQL
// returns (32 MiB of them, as a bucket's groupArray state in the server
// and decoded here): busier buckets are binned and sampled in ClickHouse
// (binnedSQL's GROUP BY), which returns only the sampled values. It also
// keeps a bucket's state under groupArray's element limit (16,777,215).
var maxRowValues int64 = 1 << 22

// valuesAtMost tells whether the buckets with rows hold at most n numeric
// values, counting every row with every numeric feature of the reference.
func (a *bucketAggregation) valuesAtMost(n int64) bool {
	var rows int64
	for _, b := range a.withRows {
		rows += int64(a.now[b].rows)
	}
	return rows*int64(len(a.p.ref.numeric)) <= n
}

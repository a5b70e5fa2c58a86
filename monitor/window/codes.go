package window

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"

	"github.com/driftwatch/driftwatch/internal/chsql"
)

// Binning in the server, counting in the monitor (binCodes): for the rows
// whose numeric features are exactly the reference's in ingest's sorted
// order (canonical, see rowValuesSQL), one arrayMap over each row's values
// and the reference's edges as constant arrays gives each value's bin and
// whether it is outside the reference's range as one byte, and only the
// rows whose hash is below every feature's sample bound come back with
// their values. A bucket of 10M rows an hour (167,000 rows, 8.5M values)
// returns 8.5 MB of codes and 1.25 % of its values, where the row values
// return them all (rowValuesSQL) and the server's GROUP BY groups 8.5M
// values by bucket, feature and bin (binnedSQL). The other rows — a feature
// missing, one the reference lacks, keys not sorted — are few, and are
// binned by that GROUP BY (restricted to them), run only when there are
// any.

// useCodes turns binCodes off (tests of the other ways set it false).
var useCodes = true

// maxCodes bounds the codes of one statement (the buckets' canonical rows
// times their values: one byte each), which also keeps every bucket's under
// groupArray's element limit (16,777,215); more go another way.
var maxCodes int64 = 16_000_000

// codeLayout is where a canonical row's values go: its positions' features
// (1-based in num), the score's position (−1 without a score), and their
// number.
type codeLayout struct {
	feats []uint16
	score int
}

// layout is num's canonical layout; ok is false without canonical
// features.
func codesLayout(num []Numeric) (codeLayout, bool) {
	canon, score := canonicalFeatures(num)
	if len(canon) == 0 {
		return codeLayout{}, false
	}
	l := codeLayout{feats: canon, score: -1}
	if score > 0 {
		l.score = len(canon)
		l.feats = append(l.feats, score)
	}
	return l, true
}

// codesApply says whether binCodes can bin a's buckets: canonical
// features, bins that fit a code (a bin below 128, the out-of-range flag
// 128), at most maxCodes codes, and at most maxRowValues values of sampled
// rows (all of them when the window keeps every value). After binnedSQL,
// which sets the bounds.
func (a *bucketAggregation) codesApply() bool {
	num := a.p.ref.numeric
	l, ok := codesLayout(num)
	if !useCodes || !ok || a.p.q.opts.Bins-1 > 127 {
		return false
	}
	var rows int64
	for _, b := range a.withRows {
		rows += int64(a.now[b].rows)
	}
	codes := rows * int64(len(l.feats))
	return codes <= maxCodes && float64(codes)*min(1, a.maxBound()) <= float64(maxRowValues)
}

// maxBound is the greatest sample bound of a's buckets and features.
func (a *bucketAggregation) maxBound() float64 {
	u := 0.0
	for _, x := range a.bounds {
		u = max(u, x)
	}
	return u
}

// codesSQL selects, per bucket b of bq's rows, its rows, its rows that are
// not canonical, and of the canonical ones, as serialised groupArray
// states: every value's code (bin | 128 when outside the reference's
// range), in row order; whether each row has a score; and of the rows
// whose hash is below maxBound, the hash, whether it has a score, and the
// values (a missing score as NaN). nb is the edges compared.
func codesSQL(bq *querier, num []Numeric, l codeLayout, nb int, maxBound float64) string {
	names := make([]string, 0, len(l.feats))
	for p, i := range l.feats {
		if p != l.score {
			names = append(names, chsql.String(num[i-1].Feature))
		}
	}
	edges := make([]string, nb)
	params := make([]string, nb)
	sum := make([]string, nb)
	for j := range nb {
		es := make([]float64, len(l.feats))
		for p, i := range l.feats {
			es[p] = math.NaN()
			if n := num[i-1]; j < len(n.Edges) {
				es[p] = n.Edges[j]
			}
		}
		edges[j] = floatArray(es)
		params[j] = "e" + strconv.Itoa(j)
		sum[j] = "(x >= e" + strconv.Itoa(j) + ")"
	}
	lo, hi, nans := make([]float64, len(l.feats)), make([]float64, len(l.feats)), make([]float64, len(l.feats))
	for p, i := range l.feats {
		lo[p], hi[p], nans[p] = num[i-1].RefMin, num[i-1].RefMax, math.NaN()
	}
	vals := "mapValues(features_numeric)"
	if l.score >= 0 {
		vals = "arrayConcat(mapValues(features_numeric), [ifNull(prediction_score, nan)])"
	}
	bin := "0"
	if nb > 0 {
		bin = strings.Join(sum, " + ")
	}
	lambda := fmt.Sprintf("(x, %s l, u) -> toUInt8(%s + ((x < l) OR (x > u)) * 128)", joinParams(params), bin)
	args := strings.Join(append(edges, floatArray(lo), floatArray(hi)), ", ")
	below := "c AND h < " + strconv.FormatFloat(maxBound, 'g', -1, 64)
	return fmt.Sprintf("SELECT b, count(), countIf(NOT c), CAST(groupArrayArrayStateIf(codes, c) AS String), CAST(groupArrayStateIf(sp, c) AS String), "+
		"CAST(groupArrayStateIf(h, %[1]s) AS String), CAST(groupArrayStateIf(sp, %[1]s) AS String), CAST(groupArrayArrayStateIf(cv, %[1]s) AS String) "+
		"FROM (SELECT b, h, c, sp, cv, arrayMap(%[2]s, cv, %[3]s) AS codes FROM "+
		"(SELECT %[4]s AS b, cityHash64(event_id) / 18446744073709551616 AS h, mapKeys(features_numeric) = CAST([%[5]s], 'Array(String)') AS c, "+
		"toUInt8(prediction_score IS NOT NULL) AS sp, if(c, %[6]s, %[7]s) AS cv %[8]s)) GROUP BY b",
		below, lambda, args, bq.bucketOf(), strings.Join(names, ", "), vals, floatArray(nans), bq.base())
}

// joinParams is the lambda's edge parameters, each followed by ", ".
func joinParams(ps []string) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(p)
		b.WriteString(", ")
	}
	return b.String()
}

// notCanonical is the SQL condition, AND first, of a row that is not
// canonical.
func notCanonical(num []Numeric, l codeLayout) string {
	names := make([]string, 0, len(l.feats))
	for p, i := range l.feats {
		if p != l.score {
			names = append(names, chsql.String(num[i-1].Feature))
		}
	}
	return fmt.Sprintf(" AND NOT (mapKeys(features_numeric) = CAST([%s], 'Array(String)'))", strings.Join(names, ", "))
}

// codeBins bins and samples the new buckets' numeric values by codesSQL:
// read without FINAL when a.unmerged (and again under FINAL if a bucket's
// rows are not those counted, as rowValues), the rows that are not
// canonical by the server's GROUP BY (binnedSQL's, with its bound
// expression) under FINAL. The partials are those the other ways give.
func (a *bucketAggregation) codeBins(ctx context.Context, bq *querier, bound string) ([]partRow, error) {
	q, num := a.p.q, a.p.ref.numeric
	l, _ := codesLayout(num)
	maxBound := a.maxBound()
	if len(codesSQL(bq, num, l, q.opts.Bins-1, maxBound)) > MaxQueryBytes {
		// (The incremental path's guard on binsSQL keeps it shorter:
		// TestCodesSQLFits.)
		return a.serverBins(ctx, bq.binned(num, nil, nil, true, "h < "+bound), bound)
	}
	read := func(rq *querier) (map[int64][]partRow, map[int64][2]uint64, error) {
		rows, err := q.conn.Query(ctx, codesSQL(rq, num, l, q.opts.Bins-1, maxBound))
		if err != nil {
			return nil, nil, fmt.Errorf("aggregate bin partials of %s, %s: %w", q.model, a.what, err)
		}
		defer rows.Close()
		parts := map[int64][]partRow{}
		counted := map[int64][2]uint64{}
		for rows.Next() {
			var (
				b                   int64
				n, other            uint64
				cb, sb, hb, shb, vb string
			)
			if err := rows.Scan(&b, &n, &other, &cb, &sb, &hb, &shb, &vb); err != nil {
				return nil, nil, fmt.Errorf("aggregate bin partials of %s, %s: %w", q.model, a.what, err)
			}
			ps, err := a.binCodes(b, l, n-other, cb, sb, hb, shb, vb, q.opts.Bins-1)
			if err != nil {
				return nil, nil, fmt.Errorf("aggregate bin partials of %s, %s: %w", q.model, a.what, err)
			}
			parts[b], counted[b] = ps, [2]uint64{n, other}
		}
		if err := rows.Err(); err != nil {
			return nil, nil, fmt.Errorf("aggregate bin partials of %s, %s: %w", q.model, a.what, err)
		}
		return parts, counted, nil
	}
	var (
		parts   map[int64][]partRow
		counted map[int64][2]uint64
		err     error
	)
	if a.unmerged() {
		ub := *bq
		ub.unmerged = true
		if parts, counted, err = read(&ub); err != nil {
			return nil, err
		}
		same := len(counted) == len(a.withRows)
		for _, b := range a.withRows {
			same = same && counted[b][0] == a.now[b].rows
		}
		if !same {
			unmergedRetries.Add(1)
			parts = nil
		}
	}
	if parts == nil {
		if parts, counted, err = read(bq); err != nil {
			return nil, err
		}
	}
	others := false
	for _, c := range counted {
		others = others || c[1] > 0
	}
	if others {
		// The rows that are not canonical, binned by the server.
		ob := *bq
		ob.where += notCanonical(num, l)
		r := ob.binned(num, nil, nil, true, "h < "+bound)
		extra, err := a.serverBins(ctx, r, bound)
		if err != nil {
			return nil, err
		}
		// Into each bucket's partials, as one more chunk of cells.
		byBucket := map[int64][]partRow{}
		for _, pr := range extra {
			byBucket[pr.bucket] = append(byBucket[pr.bucket], pr)
		}
		for b, ex := range byBucket {
			fs := a.binFeatures(b, q.opts.Bins-1)
			cells := [][][]binCell{newCells(fs), newCells(fs)}
			for _, pr := range parts[b] {
				cells[0][pr.idx-1][pr.bin] = binCell{n: pr.n, outside: pr.outside, vs: pr.vs, hs: pr.hs}
			}
			for _, pr := range ex {
				if int(pr.bin) >= len(cells[1][pr.idx-1]) {
					return nil, fmt.Errorf("BUG: bin %d of %s beyond %d edges", pr.bin, pr.feature, len(fs[pr.idx-1].edges))
				}
				cells[1][pr.idx-1][pr.bin] = binCell{n: pr.n, outside: pr.outside, vs: pr.vs, hs: pr.hs}
			}
			parts[b] = cellsToParts(b, num, fs, cells)
		}
	}
	var out []partRow
	for _, b := range a.withRows {
		out = append(out, parts[b]...)
	}
	return out, nil
}

// binCodes counts and samples one bucket's canonical rows of codesSQL
// (rows of them): the partials binRows gives for those rows.
func (a *bucketAggregation) binCodes(b int64, l codeLayout, rows uint64, cb, sb, hb, shb, vb string, nb int) ([]partRow, error) {
	num := a.p.ref.numeric
	w := len(l.feats)
	codes, err := decodeUints[uint8](cb)
	if err != nil {
		return nil, fmt.Errorf("bin codes of bucket %d: %w", b, err)
	}
	scored, err := decodeUints[uint8](sb)
	if err != nil {
		return nil, fmt.Errorf("scores of bucket %d: %w", b, err)
	}
	hs, err := decodeFloats(hb)
	if err != nil {
		return nil, fmt.Errorf("sampled rows' hashes of bucket %d: %w", b, err)
	}
	shs, err := decodeUints[uint8](shb)
	if err != nil {
		return nil, fmt.Errorf("sampled rows' scores of bucket %d: %w", b, err)
	}
	vs, err := decodeFloats(vb)
	if err != nil {
		return nil, fmt.Errorf("sampled rows' values of bucket %d: %w", b, err)
	}
	if uint64(len(scored)) != rows || uint64(len(codes)) != rows*uint64(w) || len(shs) != len(hs) || len(vs) != len(hs)*w {
		return nil, fmt.Errorf("BUG: bucket %d holds %d canonical rows of %d values: %d codes, %d score flags; %d sampled rows, %d flags, %d values",
			b, rows, w, len(codes), len(scored), len(hs), len(shs), len(vs))
	}
	fs := a.binFeatures(b, nb)
	workers := runtime.GOMAXPROCS(0)
	if binWorkers > 0 {
		workers = binWorkers
	}
	chunks := max(1, min(workers, len(codes)/binChunkValues))
	counts := make([][]uint64, chunks) // chunk → position·256 + code
	parallel(chunks, func(ci int) {
		cnt := make([]uint64, w*256)
		counts[ci] = cnt
		from, to := len(scored)*ci/chunks, len(scored)*(ci+1)/chunks
		for r := from; r < to; r++ {
			row := codes[r*w : r*w+w]
			for p, c := range row {
				cnt[p<<8|int(c)]++
			}
			if l.score >= 0 && scored[r] == 0 {
				cnt[l.score<<8|int(row[l.score])]-- // no score: its NaN is no value
			}
		}
	})
	cells := [][][]binCell{newCells(fs)}
	cs := cells[0]
	for p, i := range l.feats {
		f := &fs[i-1]
		for code := range 256 {
			var n uint64
			for _, cnt := range counts {
				n += cnt[p<<8|code]
			}
			if n == 0 {
				continue
			}
			bin := code & 127
			if bin > len(f.edges) {
				return nil, fmt.Errorf("BUG: bin %d of %s beyond %d edges in bucket %d", bin, num[i-1].Feature, len(f.edges), b)
			}
			c := &cs[i-1][bin]
			c.n += n
			if code&128 != 0 {
				c.outside += n
			}
		}
	}
	// The sampled rows' values, binned here as the server did.
	var bad error
	for r, h := range hs {
		for p, i := range l.feats {
			if p == l.score && shs[r] == 0 {
				continue
			}
			f := &fs[i-1]
			if h < f.bound {
				v := vs[r*w+p]
				c := &cs[i-1][f.bin(v)]
				if c.n == 0 {
					bad = errors.Join(bad, fmt.Errorf("BUG: sampled value %v of %s in bucket %d in a bin without values", v, num[i-1].Feature, b))
				}
				c.vs = append(c.vs, v)
				c.hs = append(c.hs, h)
			}
		}
	}
	if bad != nil {
		return nil, bad
	}
	return cellsToParts(b, num, fs, cells), nil
}

// serverBins bins and samples the values r selects in the server (a GROUP
// BY bucket, feature and bin, bound the sample bound's expression): each
// bin's sampled values sorted, their hashes with them, in binnedSQL's
// order (feature, bucket, bin).
func (a *bucketAggregation) serverBins(ctx context.Context, r binnedRows, bound string) ([]partRow, error) {
	q, num := a.p.q, a.p.ref.numeric
	sql := fmt.Sprintf("SELECT b, idx, bin, count(), countIf(%s), any(%s), "+
		"CAST(arrayReduce('groupArrayState', arraySort((x, y) -> y, groupArrayIf(h, keep), groupArrayIf(v, keep))) AS String), "+
		"CAST(arrayReduce('groupArrayState', arraySort(groupArrayIf(v, keep))) AS String) FROM %s GROUP BY b, idx, bin ORDER BY idx, b, bin",
		r.outside, bound, r.from)
	rows, err := q.conn.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("aggregate bin partials of %s, %s: %w", q.model, a.what, err)
	}
	defer rows.Close()
	var bins []partRow
	for rows.Next() {
		var (
			b          int64
			idx, bin   uint32
			n, outside uint64
			u          float64
			hb, vb     string
		)
		if err := rows.Scan(&b, &idx, &bin, &n, &outside, &u, &hb, &vb); err != nil {
			return nil, fmt.Errorf("aggregate bin partials of %s, %s: %w", q.model, a.what, err)
		}
		if idx < 1 || int(idx) > len(num) {
			return nil, fmt.Errorf("BUG: bin partial of %s for feature %d of %d", q.model, idx, len(num))
		}
		part, err := decodePart(b, num[idx-1].Feature, bin, n, outside, u, hb, vb)
		if err != nil {
			return nil, fmt.Errorf("aggregate bin partials of %s: %w", q.model, err)
		}
		part.idx = int(idx)
		bins = append(bins, part)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("aggregate bin partials of %s, %s: %w", q.model, a.what, err)
	}
	return bins, nil
}

package window

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/driftwatch/driftwatch/internal/chsql"
)

// SegmentOptions say which slices of a model's traffic ComputeSegments
// aggregates.
type SegmentOptions struct {
	// Keys are keys of the inferences' segment map (region, device, …).
	Keys []string
	// By are categorical features whose values slice the traffic too
	// (a model's segment_by).
	By []string
	// MaxSegments is the most values per key or feature kept as slices
	// of their own, the largest by rows of the two windows; the rest fold
	// into one slice KEY=OtherSegment.
	MaxSegments int
	// MinSamples is the fewest rows a slice must have in each window to be
	// aggregated.
	MinSamples int64
}

// OtherSegment is the value of the slice the values of a key beyond
// MaxSegments fold into.
const OtherSegment = "other"

// Slice is one slice's aggregates: a Snapshot whose rows, features and
// counts are those of the slice's rows only, binned on the population's
// reference edges and counted on the population's categories (so a
// slice's bins and the population's add up), without dead letters.
type Slice struct {
	// Name is "key=value", for example "region=eu".
	Name     string
	Snapshot *Snapshot
}

// slicePlan is the slices chosen from the volumes: per key (or feature),
// the kept values, and every slice with its rows.
type slicePlan struct {
	names      []string // slice names, by index-1
	refN, curN []int64
	// exprs is, per key, the SQL of its slice index (0: not a slice).
	exprs []string
}

// ComputeSegments aggregates the slices of pop's model and windows: two
// reads of the windows' rows for every slice at once (GROUP BY slice, not
// a query per slice) — first the slices' volumes, then the numeric bins
// with their value samples and the categorical counts, side by side.
//
// A slice is a (key, value) of the segment map or of a segment_by
// feature; a row is in one slice per key it carries. Only the
// population's features take part (the same MaxFeatures), numeric ones on
// the population's reference edges and range, categorical ones on its
// categories; a categorical feature the population folded
// (high cardinality) has no slice aggregates.
func ComputeSegments(ctx context.Context, conn driver.Conn, pop *Snapshot, so SegmentOptions, opts Options) ([]Slice, error) {
	opts.defaults()
	if len(so.Keys)+len(so.By) == 0 || pop == nil {
		return nil, nil
	}
	if so.MaxSegments < 1 {
		so.MaxSegments = 10
	}
	q := &querier{conn: conn, model: pop.Model, ref: pop.Reference, cur: pop.Current, opts: opts}
	plan, err := q.planSlices(ctx, so)
	if err != nil || len(plan.names) == 0 {
		return nil, err
	}
	out := make([]Slice, len(plan.names))
	for i, name := range plan.names {
		s := &Snapshot{Model: pop.Model, Reference: pop.Reference, Current: pop.Current, RefRows: plan.refN[i], CurRows: plan.curN[i], MaxCategories: pop.MaxCategories}
		for _, n := range pop.Numeric {
			s.Numeric = append(s.Numeric, Numeric{Feature: n.Feature, Edges: n.Edges, RefMin: n.RefMin, RefMax: n.RefMax,
				RefBins: make([]int64, len(n.RefBins)), CurBins: make([]int64, len(n.CurBins))})
		}
		for _, c := range pop.Categorical {
			if c.Folded {
				continue
			}
			s.Categorical = append(s.Categorical, Categorical{Feature: c.Feature, Categories: c.Categories,
				RefCounts: make([]int64, len(c.Categories)), CurCounts: make([]int64, len(c.Categories))})
		}
		out[i] = Slice{Name: name, Snapshot: s}
	}
	// The numeric and the categorical query side by side, as the
	// population's (each fills in its own fields of out).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg     sync.WaitGroup
		catErr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if catErr = q.sliceCategories(ctx, plan, out); catErr != nil {
			cancel()
		}
	}()
	numErr := q.sliceBins(ctx, plan, pop.Numeric, out)
	if numErr != nil {
		cancel()
	}
	wg.Wait()
	if numErr != nil {
		return nil, numErr
	}
	if catErr != nil {
		return nil, catErr
	}
	return out, nil
}

// sliceKey is one key's SQL value expression and name.
type sliceKey struct{ name, expr string }

func sliceKeys(so SegmentOptions) []sliceKey {
	var keys []sliceKey
	for _, k := range so.Keys {
		keys = append(keys, sliceKey{k, "segment[" + chsql.String(k) + "]"})
	}
	for _, f := range so.By {
		keys = append(keys, sliceKey{f, "features_categorical[" + chsql.String(f) + "]"})
	}
	return keys
}

// planSlices reads every key's values with their rows in both windows,
// keeps the MaxSegments largest per key, folds the rest into
// KEY=OtherSegment and drops slices with fewer than MinSamples rows in a
// window.
func (q *querier) planSlices(ctx context.Context, so SegmentOptions) (slicePlan, error) {
	keys := sliceKeys(so)
	tuples := make([]string, len(keys))
	for i, k := range keys {
		tuples[i] = fmt.Sprintf("(%d, %s)", i, k.expr)
	}
	sql := fmt.Sprintf("SELECT s.1, s.2, countIf(NOT is_cur), countIf(is_cur) FROM (SELECT %s AS is_cur, arrayFilter(x -> x.2 != '', [%s]) AS ss %s) "+
		"ARRAY JOIN ss AS s GROUP BY s.1, s.2", q.inCur(), strings.Join(tuples, ", "), q.base())
	rows, err := q.conn.Query(ctx, sql)
	if err != nil {
		return slicePlan{}, fmt.Errorf("slice volumes of %s: %w", q.model, err)
	}
	defer rows.Close()
	type vol struct {
		value    string
		ref, cur int64
	}
	byKey := make([][]vol, len(keys))
	for rows.Next() {
		var (
			k    uint8
			v    string
			r, c uint64
		)
		if err := rows.Scan(&k, &v, &r, &c); err != nil {
			return slicePlan{}, fmt.Errorf("read slice volumes of %s: %w", q.model, err)
		}
		if int(k) < len(keys) {
			byKey[k] = append(byKey[k], vol{v, int64(r), int64(c)})
		}
	}
	if err := rows.Err(); err != nil {
		return slicePlan{}, fmt.Errorf("read slice volumes of %s: %w", q.model, err)
	}
	var p slicePlan
	for i, vs := range byKey {
		sort.Slice(vs, func(a, b int) bool {
			if vs[a].ref+vs[a].cur != vs[b].ref+vs[b].cur {
				return vs[a].ref+vs[a].cur > vs[b].ref+vs[b].cur
			}
			return vs[a].value < vs[b].value
		})
		var other vol
		kept := vs
		if len(vs) > so.MaxSegments {
			kept = vs[:so.MaxSegments]
			for _, v := range vs[so.MaxSegments:] {
				other.ref += v.ref
				other.cur += v.cur
			}
		}
		var from, to []string
		add := func(value string, ref, cur int64) int {
			if ref < so.MinSamples || cur < so.MinSamples {
				return 0
			}
			p.names = append(p.names, keys[i].name+"="+value)
			p.refN, p.curN = append(p.refN, ref), append(p.curN, cur)
			return len(p.names)
		}
		for _, v := range kept {
			if idx := add(v.value, v.ref, v.cur); idx > 0 {
				from, to = append(from, chsql.String(v.value)), append(to, strconv.Itoa(idx))
			}
		}
		otherIdx := 0
		if other.ref+other.cur > 0 {
			otherIdx = add(OtherSegment, other.ref, other.cur)
		}
		// Values kept map to their slice; the folded values to the
		// other slice (0, no slice, when it is too small); a row without
		// the key has none.
		def := "0"
		if otherIdx > 0 {
			def = strconv.Itoa(otherIdx)
		}
		expr := fmt.Sprintf("if(%s = '', 0, toUInt32(%s))", keys[i].expr, def)
		if len(from) > 0 {
			expr = fmt.Sprintf("if(%[1]s = '', 0, transform(%[1]s, [%[2]s], CAST([%[3]s], 'Array(UInt32)'), toUInt32(%[4]s)))", keys[i].expr, strings.Join(from, ", "), strings.Join(to, ", "), def)
		}
		p.exprs = append(p.exprs, expr)
	}
	return p, nil
}

// slicesExpr is the array of a row's slice indexes, 0s removed.
func (p slicePlan) slicesExpr() string {
	return "arrayFilter(x -> x > 0, [" + strings.Join(p.exprs, ", ") + "])"
}

// sliceBins fills in the slices' numeric bin counts, out-of-range counts
// and (with Samples) value samples, in one query: the rows are expanded
// by their slices and by their features and grouped by slice, feature,
// window and bin. A slice's sample keeps rows with h below its share of
// SampleCap (sliceSampleCap) over the slice's rows in the window.
func (q *querier) sliceBins(ctx context.Context, p slicePlan, pop []Numeric, out []Slice) error {
	if len(pop) == 0 {
		return nil
	}
	nb := q.opts.Bins - 1
	idx := make([]string, len(pop))
	keys := make([]string, len(pop))
	lo := make([]float64, len(pop))
	hi := make([]float64, len(pop))
	edges := make([][]float64, nb)
	for i, n := range pop {
		idx[i] = strconv.Itoa(i + 1)
		keys[i] = chsql.String(n.Feature)
		lo[i], hi[i] = n.RefMin, n.RefMax
		for j := range nb {
			e := math.NaN()
			if j < len(n.Edges) {
				e = n.Edges[j]
			}
			edges[j] = append(edges[j], e)
		}
	}
	ids := "CAST([" + strings.Join(idx, ", ") + "], 'Array(UInt32)')"
	per := func(xs []float64) string {
		return fmt.Sprintf("transform(idx, %s, %s, toFloat64(nan))", ids, floatArray(xs))
	}
	bin := make([]string, nb)
	for j := range nb {
		bin[j] = fmt.Sprintf("(v >= %s)", per(edges[j]))
	}
	sample, keep := "", ""
	if q.opts.Samples {
		sample = ", CAST(arrayReduce('groupArrayState', arraySort(groupArrayIf(v, keep))) AS String)"
		rates := make([]float64, 0, 2*len(p.names))
		slots := make([]string, 0, 2*len(p.names))
		limit := sliceSampleCap(q.opts.SampleCap, len(p.names))
		for i := range p.names {
			rates = append(rates, sampleRate(limit, p.refN[i]), sampleRate(limit, p.curN[i]))
			slots = append(slots, strconv.Itoa(2*(i+1)), strconv.Itoa(2*(i+1)+1))
		}
		keep = fmt.Sprintf(", h < transform(sl * 2 + is_cur, CAST([%s], 'Array(UInt32)'), %s, toFloat64(0)) AS keep", strings.Join(slots, ", "), floatArray(rates))
	}
	rowsFrom := fmt.Sprintf("(SELECT %[1]s AS is_cur, cityHash64(event_id) / 18446744073709551616 AS h, features_numeric, prediction_score, %[2]s AS sls %[3]s)", q.inCur(), p.slicesExpr(), q.base())
	pairs := fmt.Sprintf("(SELECT is_cur, h, sl, k, v FROM %[1]s ARRAY JOIN sls AS sl ARRAY JOIN mapKeys(features_numeric) AS k, mapValues(features_numeric) AS v "+
		"UNION ALL SELECT is_cur, h, sl, %[2]s AS k, assumeNotNull(prediction_score) AS v FROM %[1]s ARRAY JOIN sls AS sl WHERE prediction_score IS NOT NULL)", rowsFrom, chsql.String(ScoreFeature))
	sql := fmt.Sprintf("SELECT sl, idx, is_cur, bin, count(), countIf(is_cur AND (v < %s OR v > %s))%s FROM ("+
		"SELECT sl, is_cur, v, idx, toUInt32(%s) AS bin%s "+
		"FROM (SELECT sl, is_cur, h, v, transform(k, [%s], %s, toUInt32(0)) AS idx FROM %s) WHERE idx > 0"+
		") GROUP BY sl, idx, is_cur, bin",
		per(lo), per(hi), sample, strings.Join(bin, " + "), keep, strings.Join(keys, ", "), ids, pairs)
	rows, err := q.conn.Query(ctx, sql)
	if err != nil {
		return fmt.Errorf("slice bin counts of %s: %w", q.model, err)
	}
	defer rows.Close()
	// samples[s][i][w][b]: slice s, feature i, window w, bin b.
	samples := make([][][2][][]float64, len(out))
	for s := range samples {
		samples[s] = make([][2][][]float64, len(pop))
	}
	for rows.Next() {
		var (
			sl, id, b  uint32
			isCur      bool
			n, outside uint64
			blob       string
		)
		dest := []any{&sl, &id, &isCur, &b, &n, &outside}
		if q.opts.Samples {
			dest = append(dest, &blob)
		}
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("read slice bin counts of %s: %w", q.model, err)
		}
		if sl < 1 || int(sl) > len(out) || id < 1 || int(id) > len(pop) {
			return fmt.Errorf("BUG: slice %d or feature %d beyond %d slices and %d features", sl, id, len(out), len(pop))
		}
		x := &out[sl-1].Snapshot.Numeric[id-1]
		if int(b) >= len(x.RefBins) {
			return fmt.Errorf("BUG: bin %d of %s beyond %d edges", b, x.Feature, len(x.Edges))
		}
		w := 0
		if isCur {
			w = 1
			x.CurBins[b] += int64(n)
			x.CurN += int64(n)
			x.CurOutOfRange += int64(outside)
		} else {
			x.RefBins[b] += int64(n)
			x.RefN += int64(n)
		}
		if q.opts.Samples {
			vals, err := decodeFloats(blob)
			if err != nil {
				return fmt.Errorf("read slice value sample of %s: %w", q.model, err)
			}
			s := &samples[sl-1][id-1][w]
			if *s == nil {
				*s = make([][]float64, len(x.RefBins))
			}
			(*s)[b] = vals
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read slice bin counts of %s: %w", q.model, err)
	}
	if !q.opts.Samples {
		return nil
	}
	for s := range out {
		for i := range pop {
			x := &out[s].Snapshot.Numeric[i]
			x.RefValues, x.RefCounts = compress(concatSorted(samples[s][i][0]))
			x.CurValues, x.CurCounts = compress(concatSorted(samples[s][i][1]))
			limit := int64(sliceSampleCap(q.opts.SampleCap, len(out)))
			x.SampledRef = x.RefN > limit
			x.SampledCur = x.CurN > limit
		}
	}
	return nil
}

// MinSliceSample is the least sample_cap a slice gets (see
// sliceSampleCap).
const MinSliceSample = 5000

// sliceSampleCap is each slice's share of sample_cap: the slices of a
// window share one sample_cap (a slice's sample of every row would make
// ten slices sort ten times the population's values), but each keeps at
// least MinSliceSample rows, enough for the rank tests to see a shift of
// a tenth of a standard deviation.
func sliceSampleCap(sampleCap, slices int) int {
	if slices < 1 {
		return sampleCap
	}
	return min(sampleCap, max(sampleCap/slices, MinSliceSample))
}

// sliceCategories fills in the slices' category counts of the
// population's (unfolded) categorical features, in one query grouped by
// slice, feature and category.
func (q *querier) sliceCategories(ctx context.Context, p slicePlan, out []Slice) error {
	if len(out) == 0 || len(out[0].Snapshot.Categorical) == 0 {
		return nil
	}
	cats := out[0].Snapshot.Categorical
	keys := make([]string, len(cats))
	for i, c := range cats {
		keys[i] = chsql.String(c.Feature)
	}
	rowsFrom := fmt.Sprintf("(SELECT %[1]s AS is_cur, features_categorical, prediction_label, %[2]s AS sls %[3]s)", q.inCur(), p.slicesExpr(), q.base())
	sql := fmt.Sprintf("SELECT sl, k, v, countIf(NOT is_cur), countIf(is_cur) FROM ("+
		"SELECT is_cur, sl, k, v FROM %[1]s ARRAY JOIN sls AS sl ARRAY JOIN mapKeys(features_categorical) AS k, mapValues(features_categorical) AS v "+
		"UNION ALL SELECT is_cur, sl, %[2]s AS k, assumeNotNull(prediction_label) AS v FROM %[1]s ARRAY JOIN sls AS sl WHERE prediction_label IS NOT NULL"+
		") WHERE k IN (%[3]s) GROUP BY sl, k, v", rowsFrom, chsql.String(LabelFeature), strings.Join(keys, ", "))
	rows, err := q.conn.Query(ctx, sql)
	if err != nil {
		return fmt.Errorf("slice category counts of %s: %w", q.model, err)
	}
	defer rows.Close()
	feature := map[string]int{}
	index := make([]map[string]int, len(cats))
	for i, c := range cats {
		feature[c.Feature] = i
		index[i] = map[string]int{}
		for j, v := range c.Categories {
			index[i][v] = j
		}
	}
	for rows.Next() {
		var (
			sl   uint32
			k, v string
			r, c uint64
		)
		if err := rows.Scan(&sl, &k, &v, &r, &c); err != nil {
			return fmt.Errorf("read slice category counts of %s: %w", q.model, err)
		}
		i, ok := feature[k]
		if !ok || sl < 1 || int(sl) > len(out) {
			continue
		}
		x := &out[sl-1].Snapshot.Categorical[i]
		j, ok := index[i][v]
		if !ok {
			// The population holds every category of both windows of an
			// unfolded feature; a row written since its query is skipped.
			continue
		}
		x.RefCounts[j] += int64(r)
		x.CurCounts[j] += int64(c)
		x.RefN += int64(r)
		x.CurN += int64(c)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read slice category counts of %s: %w", q.model, err)
	}
	for s := range out {
		for i := range out[s].Snapshot.Categorical {
			x := &out[s].Snapshot.Categorical[i]
			for j := range x.Categories {
				if x.RefCounts[j] > 0 {
					x.RefDistinct++
				}
				if x.CurCounts[j] > 0 {
					x.CurDistinct++
				}
				if x.RefCounts[j] > 0 || x.CurCounts[j] > 0 {
					x.Distinct++
				}
			}
		}
	}
	return nil
}

// SlicePlan is the slices ComputeSegments would aggregate for two spans,
// for other aggregations of the same slices (live performance per slice):
// their names, rows per span, and the SQL of a row's slice indexes.
type SlicePlan struct {
	// Names are "key=value", by index−1.
	Names            []string
	RefRows, CurRows []int64
	// Expr is the SQL, on a row of inferences, of the array of the row's
	// slice indexes (1-based in Names; one per key the row carries).
	Expr string
}

// PlanSlices chooses model's slices over the spans ref and cur as
// ComputeSegments does: the MaxSegments largest values per key by rows of
// both spans, the rest folded into KEY=OtherSegment, slices with fewer
// than MinSamples rows in a span dropped. One query.
func PlanSlices(ctx context.Context, conn driver.Conn, model string, ref, cur Span, so SegmentOptions) (SlicePlan, error) {
	if len(so.Keys)+len(so.By) == 0 {
		return SlicePlan{}, nil
	}
	if so.MaxSegments < 1 {
		so.MaxSegments = 10
	}
	q := &querier{conn: conn, model: model, ref: ref, cur: cur}
	p, err := q.planSlices(ctx, so)
	if err != nil || len(p.names) == 0 {
		return SlicePlan{}, err
	}
	return SlicePlan{Names: p.names, RefRows: p.refN, CurRows: p.curN, Expr: p.slicesExpr()}, nil
}

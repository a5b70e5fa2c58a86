// Package window computes what the drift statistics need for one model's
// reference and current windows, in ClickHouse: row counts, per-feature
// bin counts on reference-quantile edges, capped value→count samples for
// the rank tests, per-category counts, missing and out-of-range counts.
// Go receives aggregates, never raw rows, so the work scales with the
// ClickHouse cluster rather than with the monitor.
//
// Every query reads inferences FINAL for one model and the union of the two
// windows, by event time; features come from the features_numeric and
// features_categorical maps, prediction drift from prediction_score
// (numeric feature "__score") and prediction_label (categorical "__label").
package window

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Span is a half-open event-time interval [Start, End).
type Span struct {
	Start, End time.Time
}

// Contains reports whether t is in the span.
func (s Span) Contains(t time.Time) bool { return !t.Before(s.Start) && t.Before(s.End) }

func (s Span) String() string {
	return s.Start.UTC().Format(time.RFC3339) + "/" + s.End.UTC().Format(time.RFC3339)
}

// Names of the prediction pseudo-features.
const (
	ScoreFeature = "__score"
	LabelFeature = "__label"
)

// Options bound the work.
type Options struct {
	// Bins is the number of reference-quantile bins (default 10).
	Bins int
	// SampleCap is the most rows per feature and window the rank tests
	// see; above it ClickHouse hands over a uniform sample (default 100,000).
	SampleCap int
	// MaxFeatures caps the numeric and the categorical features examined,
	// the most frequent in the reference first (default 200 each).
	MaxFeatures int
	// MaxCategories caps the categories per feature, the most frequent in
	// either window first; the rest are summed into "__other" (default 1000).
	MaxCategories int
	// Samples turns the value→count samples on; without them only binned
	// methods can run.
	Samples bool
}

func (o *Options) defaults() {
	if o.Bins == 0 {
		o.Bins = 10
	}
	if o.SampleCap == 0 {
		o.SampleCap = 100_000
	}
	if o.MaxFeatures == 0 {
		o.MaxFeatures = 200
	}
	if o.MaxCategories == 0 {
		o.MaxCategories = 1000
	}
}

// Numeric is one numeric feature's aggregates.
type Numeric struct {
	Feature string
	// Edges are the interior bin edges: the reference's quantiles at
	// i/Bins (ClickHouse quantilesExactInclusive, numpy's "linear"),
	// repeated values removed. Bins are [e_i, e_{i+1}).
	Edges []float64
	// RefBins and CurBins count rows per bin (len(Edges)+1 each).
	RefBins, CurBins []int64
	// RefN and CurN count rows that carry the feature.
	RefN, CurN int64
	// RefMin and RefMax bound the reference values.
	RefMin, RefMax float64
	// CurOutOfRange counts current rows outside [RefMin, RefMax].
	CurOutOfRange int64
	// RefValues/RefCounts and CurValues/CurCounts are value→count samples,
	// ascending (capped at SampleCap rows; see SampledRef/SampledCur).
	RefValues, CurValues   []float64
	RefCounts, CurCounts   []int64
	SampledRef, SampledCur bool
}

// Categorical is one categorical feature's aggregates.
type Categorical struct {
	Feature string
	// Categories, RefCounts and CurCounts are aligned.
	Categories           []string
	RefCounts, CurCounts []int64
	RefN, CurN           int64
}

// Snapshot is what ClickHouse reports for one model and a pair of windows.
type Snapshot struct {
	Model            string
	Reference        Span
	Current          Span
	RefRows, CurRows int64
	Numeric          []Numeric
	Categorical      []Categorical
}

// ErrNoReference means the reference window holds no rows for the model.
var ErrNoReference = errors.New("the reference window holds no rows")

// Compute runs the window queries for model and returns the aggregates.
func Compute(ctx context.Context, conn driver.Conn, model string, ref, cur Span, opts Options) (*Snapshot, error) {
	opts.defaults()
	s := &Snapshot{Model: model, Reference: ref, Current: cur}
	q := &querier{conn: conn, model: model, ref: ref, cur: cur, opts: opts}
	if err := q.rows(ctx, s); err != nil {
		return nil, err
	}
	if s.RefRows == 0 {
		return s, ErrNoReference
	}
	num, err := q.numeric(ctx, numericSource{arrayJoin: "ARRAY JOIN mapKeys(features_numeric) AS k, mapValues(features_numeric) AS v"})
	if err != nil {
		return nil, err
	}
	score, err := q.numeric(ctx, numericSource{selectKV: "'" + ScoreFeature + "' AS k, assumeNotNull(prediction_score) AS v", where: "prediction_score IS NOT NULL"})
	if err != nil {
		return nil, err
	}
	s.Numeric = append(num, score...)
	cat, err := q.categorical(ctx, "ARRAY JOIN mapKeys(features_categorical) AS k, mapValues(features_categorical) AS v", "", "")
	if err != nil {
		return nil, err
	}
	label, err := q.categorical(ctx, "", "'"+LabelFeature+"' AS k, assumeNotNull(prediction_label) AS v", "prediction_label IS NOT NULL")
	if err != nil {
		return nil, err
	}
	s.Categorical = append(cat, label...)
	return s, nil
}

type querier struct {
	conn     driver.Conn
	model    string
	ref, cur Span
	opts     Options
}

func ts(t time.Time) string {
	return "toDateTime64('" + t.UTC().Format("2006-01-02 15:04:05.000") + "', 3, 'UTC')"
}

// Quote returns s as a ClickHouse string literal.
func Quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func (q *querier) inRef() string {
	return fmt.Sprintf("(timestamp >= %s AND timestamp < %s)", ts(q.ref.Start), ts(q.ref.End))
}

func (q *querier) inCur() string {
	return fmt.Sprintf("(timestamp >= %s AND timestamp < %s)", ts(q.cur.Start), ts(q.cur.End))
}

func (q *querier) base() string {
	return fmt.Sprintf("FROM inferences FINAL WHERE model_id = %s AND (%s OR %s)", Quote(q.model), q.inRef(), q.inCur())
}

func (q *querier) rows(ctx context.Context, s *Snapshot) error {
	sql := fmt.Sprintf("SELECT countIf(%s), countIf(%s) %s", q.inRef(), q.inCur(), q.base())
	var r, c uint64
	if err := q.conn.QueryRow(ctx, sql).Scan(&r, &c); err != nil {
		return fmt.Errorf("count window rows of %s: %w", q.model, err)
	}
	s.RefRows, s.CurRows = int64(r), int64(c)
	return nil
}

// numericSource says where (k, v) pairs come from: an ARRAY JOIN over a
// map, or a single expression pair.
type numericSource struct {
	arrayJoin string
	selectKV  string
	where     string
}

func (src numericSource) from(q *querier, cols string) string {
	where := ""
	if src.where != "" {
		where = " AND " + src.where
	}
	if src.arrayJoin != "" {
		return fmt.Sprintf("SELECT %s FROM (SELECT timestamp, features_numeric %s) %s", cols, q.base()+where, src.arrayJoin)
	}
	return fmt.Sprintf("SELECT %s FROM (SELECT timestamp, %s %s)", cols, src.selectKV, q.base()+where)
}

func (q *querier) numeric(ctx context.Context, src numericSource) ([]Numeric, error) {
	// 1. Reference edges and range, the most frequent features first.
	qs := make([]string, q.opts.Bins-1)
	for i := range qs {
		qs[i] = strconv.FormatFloat(float64(i+1)/float64(q.opts.Bins), 'g', -1, 64)
	}
	sql := src.from(q, fmt.Sprintf("k, count() AS n, min(v), max(v), quantilesExactInclusive(%s)(v)", strings.Join(qs, ", "))) +
		fmt.Sprintf(" WHERE %s GROUP BY k ORDER BY n DESC, k LIMIT %d", q.inRef(), q.opts.MaxFeatures)
	rows, err := q.conn.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("reference quantiles of %s: %w", q.model, err)
	}
	var out []Numeric
	index := map[string]int{}
	for rows.Next() {
		var (
			f        string
			n        uint64
			lo, hi   float64
			quantile []float64
		)
		if err := rows.Scan(&f, &n, &lo, &hi, &quantile); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read reference quantiles of %s: %w", q.model, err)
		}
		edges := make([]float64, 0, len(quantile))
		for _, e := range quantile {
			if len(edges) == 0 || e != edges[len(edges)-1] {
				edges = append(edges, e)
			}
		}
		index[f] = len(out)
		out = append(out, Numeric{Feature: f, Edges: edges, RefN: int64(n), RefMin: lo, RefMax: hi,
			RefBins: make([]int64, len(edges)+1), CurBins: make([]int64, len(edges)+1)})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read reference quantiles of %s: %w", q.model, err)
	}
	if len(out) == 0 {
		return nil, nil
	}

	// 2. Bin counts of both windows, current counts and out-of-range rows.
	var edgeMap, minMap, maxMap strings.Builder
	for i, n := range out {
		if i > 0 {
			edgeMap.WriteString(", ")
			minMap.WriteString(", ")
			maxMap.WriteString(", ")
		}
		fmt.Fprintf(&edgeMap, "%s, %s", Quote(n.Feature), floatArray(n.Edges))
		fmt.Fprintf(&minMap, "%s, %s", Quote(n.Feature), lit(n.RefMin))
		fmt.Fprintf(&maxMap, "%s, %s", Quote(n.Feature), lit(n.RefMax))
	}
	sql = fmt.Sprintf("WITH map(%s) AS E, map(%s) AS LO, map(%s) AS HI ", edgeMap.String(), minMap.String(), maxMap.String()) +
		src.from(q, fmt.Sprintf("k, %s AS is_cur, arrayCount(e -> e <= v, E[k]) AS bin, count(), countIf(v < LO[k] OR v > HI[k])", q.inCur())) +
		" WHERE mapContains(E, k) GROUP BY k, is_cur, bin"
	rows, err = q.conn.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("bin counts of %s: %w", q.model, err)
	}
	for rows.Next() {
		var (
			f          string
			isCur      bool
			bin        uint32
			n, outside uint64
		)
		if err := rows.Scan(&f, &isCur, &bin, &n, &outside); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read bin counts of %s: %w", q.model, err)
		}
		x := &out[index[f]]
		if int(bin) >= len(x.RefBins) {
			rows.Close()
			return nil, fmt.Errorf("BUG: bin %d of %s beyond %d edges", bin, f, len(x.Edges))
		}
		if isCur {
			x.CurBins[bin] += int64(n)
			x.CurN += int64(n)
			x.CurOutOfRange += int64(outside)
		} else {
			x.RefBins[bin] += int64(n)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read bin counts of %s: %w", q.model, err)
	}
	if !q.opts.Samples {
		return out, nil
	}

	// 3. Value→count samples, capped: below the cap every row, above it a
	// uniform sample of SampleCap rows (groupArraySample, fixed seed).
	// A reservoir as large as the window keeps every row, so below the cap
	// the sample is the window itself.
	sql = src.from(q, fmt.Sprintf("k, %s AS is_cur, count() AS n, arraySort(groupArraySample(%d, 20261127)(v))", q.inCur(), q.opts.SampleCap)) +
		fmt.Sprintf(" WHERE k IN (%s) GROUP BY k, is_cur", quoteList(keys(index)))
	rows, err = q.conn.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("samples of %s: %w", q.model, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			f     string
			isCur bool
			n     uint64
			vals  []float64
		)
		if err := rows.Scan(&f, &isCur, &n, &vals); err != nil {
			return nil, fmt.Errorf("read samples of %s: %w", q.model, err)
		}
		v, c := compress(vals)
		x := &out[index[f]]
		if isCur {
			x.CurValues, x.CurCounts, x.SampledCur = v, c, int(n) > q.opts.SampleCap
		} else {
			x.RefValues, x.RefCounts, x.SampledRef = v, c, int(n) > q.opts.SampleCap
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read samples of %s: %w", q.model, err)
	}
	return out, nil
}

func (q *querier) categorical(ctx context.Context, arrayJoin, selectKV, where string) ([]Categorical, error) {
	var inner string
	w := ""
	if where != "" {
		w = " AND " + where
	}
	if arrayJoin != "" {
		inner = fmt.Sprintf("(SELECT timestamp, features_categorical %s) %s", q.base()+w, arrayJoin)
	} else {
		inner = fmt.Sprintf("(SELECT timestamp, %s %s)", selectKV, q.base()+w)
	}
	sql := fmt.Sprintf("SELECT k, v, countIf(%s) AS r, countIf(%s) AS c FROM %s GROUP BY k, v ORDER BY k, r + c DESC, v", q.inRef(), q.inCur(), inner)
	rows, err := q.conn.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("category counts of %s: %w", q.model, err)
	}
	defer rows.Close()
	byFeature := map[string]*Categorical{}
	var order []string
	for rows.Next() {
		var (
			f, v string
			r, c uint64
		)
		if err := rows.Scan(&f, &v, &r, &c); err != nil {
			return nil, fmt.Errorf("read category counts of %s: %w", q.model, err)
		}
		x := byFeature[f]
		if x == nil {
			x = &Categorical{Feature: f}
			byFeature[f] = x
			order = append(order, f)
		}
		x.RefN += int64(r)
		x.CurN += int64(c)
		if len(x.Categories) < q.opts.MaxCategories {
			x.Categories = append(x.Categories, v)
			x.RefCounts = append(x.RefCounts, int64(r))
			x.CurCounts = append(x.CurCounts, int64(c))
		} else {
			if x.Categories[len(x.Categories)-1] != "__other" {
				x.Categories = append(x.Categories, "__other")
				x.RefCounts = append(x.RefCounts, 0)
				x.CurCounts = append(x.CurCounts, 0)
			}
			x.RefCounts[len(x.RefCounts)-1] += int64(r)
			x.CurCounts[len(x.CurCounts)-1] += int64(c)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read category counts of %s: %w", q.model, err)
	}
	// The most frequent features in the reference first, capped.
	sort.SliceStable(order, func(i, j int) bool { return byFeature[order[i]].RefN > byFeature[order[j]].RefN })
	if len(order) > q.opts.MaxFeatures {
		order = order[:q.opts.MaxFeatures]
	}
	out := make([]Categorical, 0, len(order))
	for _, f := range order {
		if byFeature[f].RefN > 0 || f == LabelFeature {
			out = append(out, *byFeature[f])
		}
	}
	return out, nil
}

// compress turns sorted values into distinct values and their counts.
func compress(sorted []float64) ([]float64, []int64) {
	var v []float64
	var c []int64
	for _, x := range sorted {
		if n := len(v); n > 0 && v[n-1] == x {
			c[n-1]++
			continue
		}
		v = append(v, x)
		c = append(c, 1)
	}
	return v, c
}

func keys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = Quote(s)
	}
	return strings.Join(q, ", ")
}

func lit(x float64) string {
	if math.IsInf(x, 0) || math.IsNaN(x) {
		return "nan"
	}
	return "toFloat64(" + strconv.FormatFloat(x, 'g', -1, 64) + ")"
}

func floatArray(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = lit(x)
	}
	if len(parts) == 0 {
		return "CAST([], 'Array(Float64)')"
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// Package window computes what the drift statistics need for one model's
// reference and current windows, in ClickHouse: row counts, per-feature
// bin counts on reference-quantile edges, capped value→count samples for
// the rank tests, per-category counts, missing and out-of-range counts.
// Go receives aggregates, never raw rows, so the work scales with the
// ClickHouse cluster rather than with the monitor: a categorical feature's
// categories beyond MaxCategories are summed in ClickHouse (a user id sent
// as a feature is one row, not millions), and a query whose per-feature
// constants would exceed ClickHouse's max_query_size is split by features
// (MaxQueryBytes).
//
// Every query reads inferences FINAL for one model and the union of the two
// windows (or one of them), by event time, except the count of the current
// window's dead letters per reason, which reads dead_letters; features come from the features_numeric and
// features_categorical maps, prediction drift from prediction_score
// (numeric feature "__score") and prediction_label (categorical "__label").
//
// ComputeIncremental (incremental.go) gives the same snapshot against a
// pinned Reference from per-bucket partial aggregates kept in the
// window_partial_* tables, reading only the buckets that are new or changed.
package window

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/monitor/stat"
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
	// SampleCap is about the most rows per feature and window the rank
	// tests see (default 100,000); above it ClickHouse hands over a uniform
	// Bernoulli sample of rate SampleCap/n, keyed by a hash of event_id, so
	// its size varies by a few hundred rows and it is the same every run.
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
	// JointRows, with Samples, turns the joint sample on (see Joint):
	// about JointRows rows per window with their numeric features
	// together, for the multivariate methods; 0 is off.
	JointRows int
	// JointCategories adds the rows' categorical values to the joint
	// sample (one more narrow read, jointCategorySQL).
	JointCategories bool
}

// The defaults of Options (0 in a field means its default), which the
// monitor's configuration shows as its own.
const (
	DefaultBins          = 10
	DefaultSampleCap     = 100_000
	DefaultMaxFeatures   = 200
	DefaultMaxCategories = 1000
)

func (o *Options) defaults() {
	if o.Bins == 0 {
		o.Bins = DefaultBins
	}
	if o.SampleCap == 0 {
		o.SampleCap = DefaultSampleCap
	}
	if o.MaxFeatures == 0 {
		o.MaxFeatures = DefaultMaxFeatures
	}
	if o.MaxCategories == 0 {
		o.MaxCategories = DefaultMaxCategories
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
	// ascending (about SampleCap rows at most; see SampledRef/SampledCur).
	RefValues, CurValues   []float64
	RefCounts, CurCounts   []int64
	SampledRef, SampledCur bool
	// RefSummary is the reference sample validated once, for a reference
	// kept between evaluations (nil: it is validated at each comparison;
	// see stat.NewPairSummarized).
	RefSummary *stat.Summary
}

// Categorical is one categorical feature's aggregates.
type Categorical struct {
	Feature string
	// Categories, RefCounts and CurCounts are aligned. When Folded, the
	// last category is OtherCategory, the sum of those beyond the
	// MaxCategories most frequent.
	Categories           []string
	RefCounts, CurCounts []int64
	RefN, CurN           int64
	// Distinct counts the feature's distinct values in the two windows
	// (exact, except against a pinned reference whose categories were
	// folded: then an estimate, the two windows' counts less the kept
	// categories they share), RefDistinct and CurDistinct in each.
	Distinct, RefDistinct, CurDistinct int64
	// Folded: the feature has more distinct values than MaxCategories.
	Folded bool
}

// Snapshot is what ClickHouse reports for one model and a pair of windows.
type Snapshot struct {
	Model            string
	Reference        Span
	Current          Span
	RefRows, CurRows int64
	Numeric          []Numeric
	Categorical      []Categorical
	// MaxCategories is the most categories a categorical feature keeps.
	MaxCategories int
	// DeadLetters counts the model's events ingest rejected in the current
	// window (by their event time when it could be read, else the time of
	// rejection), per reason; from the dead_letters table.
	DeadLetters map[string]int64
	// RefJoint and CurJoint are the windows' joint samples (Options.JointRows;
	// nil when off).
	RefJoint, CurJoint *Joint
}

// ErrNoReference means the reference window holds no rows for the model.
var ErrNoReference = errors.New("the reference window holds no rows")

// Compute runs the window queries for model and returns the aggregates.
//
// It reads the table four times, each time once for every feature: the
// row counts of the two windows; then, in parallel, the numeric features'
// counts, reference range and reference quantile edges, and the
// categorical features' per-category counts; then one query that counts
// the numeric rows per bin of those edges and collects the samples. The
// prediction score and label ride along with the map features (one ARRAY
// JOIN over the map and the prediction column), so they cost no read of
// their own.
func Compute(ctx context.Context, conn driver.Conn, model string, ref, cur Span, opts Options) (*Snapshot, error) {
	s, _, err := ComputeCached(ctx, conn, model, ref, cur, opts, nil)
	return s, err
}

// ComputeCached is Compute that also returns the reference window's
// aggregates, and takes those of an earlier call: when cached is for the
// same model, reference span and options, and the reference still has the
// same row count and newest ingested_at, only the current window is read
// (the reference is usually fixed while the current window slides every
// minute). The snapshot is the same as Compute's either way. A pinned
// (persisted) cached Reference is used for its model, span and options
// even when the reference window's rows are gone.
func ComputeCached(ctx context.Context, conn driver.Conn, model string, ref, cur Span, opts Options, cached *Reference) (*Snapshot, *Reference, error) {
	opts.defaults()
	s := &Snapshot{Model: model, Reference: ref, Current: cur, MaxCategories: opts.MaxCategories}
	q := &querier{conn: conn, model: model, ref: ref, cur: cur, opts: opts}
	newest, err := q.rows(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	if cached.valid(model, ref, opts, s.RefRows, newest) {
		q.curOnly = true
		if cached.pinned {
			// The persisted aggregates stand for the reference, whether
			// the TTL removed its rows or a late event added one.
			s.RefRows = cached.rows
		}
	} else {
		cached = nil
	}
	if s.RefRows == 0 {
		return s, nil, ErrNoReference
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg             sync.WaitGroup
		numErr, catErr error
		catRows        []catRow
		catStat        map[string]catStats
	)
	jointOn := q.opts.Samples && q.opts.JointRows > 0
	if jointOn {
		q.jointRates = [2]float64{jointRate(q.opts.JointRows, s.RefRows), jointRate(q.opts.JointRows, s.CurRows)}
	}
	var catPairs []catPair
	wg.Add(1)
	go func() {
		defer wg.Done()
		if catRows, catStat, catErr = q.categoryRows(ctx, cached); catErr == nil {
			s.Categorical = q.assembleCategorical(catRows, catStat)
			s.DeadLetters, catErr = q.deadLetters(ctx)
		}
		if catErr == nil && jointOn && q.opts.JointCategories {
			catPairs, catErr = q.jointCategories(ctx)
		}
		if catErr != nil {
			cancel()
		}
	}()
	var num []Numeric
	if cached != nil {
		num, numErr = cached.numericFor(ctx, q)
	} else {
		num, numErr = q.numericEdges(ctx)
	}
	if numErr == nil && jointOn {
		q.joint = newJointCollector(num)
	}
	if numErr == nil {
		numErr = q.numericBins(ctx, num)
	}
	if numErr != nil {
		cancel()
	}
	wg.Wait()
	if numErr != nil {
		return nil, nil, numErr
	}
	if catErr != nil {
		return nil, nil, catErr
	}
	s.Numeric = num
	if q.joint != nil {
		q.joint.catNames = jointCategorical(s.Categorical)
		q.joint.cats = categoryCollection(q.joint.catNames, catPairs)
		s.CurJoint = q.joint.joint(1)
		if cached != nil {
			s.RefJoint = cached.joint
		} else {
			s.RefJoint = q.joint.joint(0)
		}
	}
	if cached == nil {
		cached = newReference(model, ref, opts, s.RefRows, newest, num, catRows, catStat)
		cached.setJoint(s.RefJoint)
	}
	return s, cached, nil
}

type querier struct {
	conn     driver.Conn
	model    string
	ref, cur Span
	opts     Options
	// curOnly restricts the bin, sample and category queries to the
	// current window: the reference's come from a cached Reference.
	curOnly bool
	// joint collects the joint sample (nil: off), at jointRates of the
	// reference's and the current window's rows.
	joint      *jointCollector
	jointRates [2]float64
	// bucketMs, when set, gives numericPairs' and binned's rows a column b,
	// the row's bucket (its event time in milliseconds over bucketMs), and
	// where is appended to base's condition (the incremental partials).
	bucketMs int64
	where    string
	// unmerged reads the current window's rows without FINAL (curOnly):
	// only where the caller checks that the rows it read are the rows
	// counted under FINAL (see bucketAggregation.unmerged).
	unmerged bool
}

// bucketOf is the bucket number of a row's event time.
func (q *querier) bucketOf() string {
	return fmt.Sprintf("intDiv(toUnixTimestamp64Milli(timestamp), %d)", q.bucketMs)
}

func (q *querier) inRef() string {
	return fmt.Sprintf("(timestamp >= %s AND timestamp < %s)", chsql.Time(q.ref.Start), chsql.Time(q.ref.End))
}

func (q *querier) inCur() string {
	return fmt.Sprintf("(timestamp >= %s AND timestamp < %s)", chsql.Time(q.cur.Start), chsql.Time(q.cur.End))
}

// base is the FROM clause of the two windows' rows (of the current
// window's alone with curOnly). Every read of inferences here keeps NOT
// shadow: a shadow row is a challenger's answer to a request the model
// already answered (docs/serve.md, "Shadow scoring"), and would count the
// request's features twice.
func (q *querier) base() string {
	if q.curOnly {
		final := " FINAL"
		if q.unmerged {
			final = ""
		}
		return fmt.Sprintf("FROM inferences%s WHERE model_id = %s AND NOT shadow AND %s%s", final, chsql.String(q.model), q.inCur(), q.where)
	}
	return fmt.Sprintf("FROM inferences FINAL WHERE model_id = %s AND NOT shadow AND (%s OR %s)", chsql.String(q.model), q.inRef(), q.inCur())
}

// rows counts both windows' rows and returns the newest ingested_at of the
// reference's, which with its count tells whether a cached Reference
// still holds.
func (q *querier) rows(ctx context.Context, s *Snapshot) (time.Time, error) {
	sql := fmt.Sprintf("SELECT countIf(%[1]s), countIf(%[2]s), maxIf(ingested_at, %[1]s) FROM inferences FINAL WHERE model_id = %[3]s AND NOT shadow AND (%[1]s OR %[2]s)",
		q.inRef(), q.inCur(), chsql.String(q.model))
	var (
		r, c   uint64
		newest time.Time
	)
	if err := q.conn.QueryRow(ctx, sql).Scan(&r, &c, &newest); err != nil {
		return time.Time{}, fmt.Errorf("count window rows of %s: %w", q.model, err)
	}
	s.RefRows, s.CurRows = int64(r), int64(c)
	return newest, nil
}

// numericPairs is the FROM clause giving one (is_cur, k, v) row per
// numeric feature value of the two windows, the prediction score as
// feature ScoreFeature, and with hash also h, a uniform number in [0, 1)
// per event (the sampling key). The score is a second, narrow read under
// UNION ALL: cheaper than concatenating it onto every row's map arrays.
func (q *querier) numericPairs(hash bool) string {
	h, hDef := "", ""
	if hash {
		h, hDef = ", h", ", cityHash64(event_id) / 18446744073709551616 AS h"
	}
	if q.bucketMs != 0 {
		h, hDef = h+", b", hDef+", "+q.bucketOf()+" AS b"
	}
	return fmt.Sprintf("(SELECT is_cur%[1]s, k, v FROM (SELECT %[3]s AS is_cur%[2]s, features_numeric %[4]s) "+
		"ARRAY JOIN mapKeys(features_numeric) AS k, mapValues(features_numeric) AS v "+
		"UNION ALL SELECT %[3]s AS is_cur%[2]s, %[5]s AS k, assumeNotNull(prediction_score) AS v %[4]s AND prediction_score IS NOT NULL)",
		h, hDef, q.inCur(), q.base(), chsql.String(ScoreFeature))
}

// numericEdges returns the numeric features present in the reference, the
// most frequent first (capped at MaxFeatures) and the score last, with
// their row counts in both windows, reference range and bin edges.
//
// The quantiles read the reference window alone; the current window's
// counts per feature come from a second query that reads only the keys of
// the map (its .keys subcolumn) and the score's null map, which costs a
// fraction of carrying the current values through the quantile query.
func (q *querier) numericEdges(ctx context.Context) ([]Numeric, error) {
	qs := make([]string, q.opts.Bins-1)
	for i := range qs {
		qs[i] = strconv.FormatFloat(float64(i+1)/float64(q.opts.Bins), 'g', -1, 64)
	}
	ref := fmt.Sprintf("FROM inferences FINAL WHERE model_id = %s AND NOT shadow AND %s", chsql.String(q.model), q.inRef())
	pairs := fmt.Sprintf("(SELECT k, v FROM (SELECT features_numeric %[1]s) "+
		"ARRAY JOIN mapKeys(features_numeric) AS k, mapValues(features_numeric) AS v "+
		"UNION ALL SELECT %[2]s AS k, assumeNotNull(prediction_score) AS v %[1]s AND prediction_score IS NOT NULL)", ref, chsql.String(ScoreFeature))
	sql := fmt.Sprintf("SELECT k, count() AS n, min(v), max(v), quantilesExactInclusive(%s)(v) FROM %s "+
		"GROUP BY k ORDER BY k = %s DESC, n DESC, k LIMIT %d",
		strings.Join(qs, ", "), pairs, chsql.String(ScoreFeature), q.opts.MaxFeatures+1)
	// The current counts (a light query) run beside the quantiles.
	var (
		curN    map[string]int64
		curErr  error
		curDone = make(chan struct{})
	)
	go func() {
		defer close(curDone)
		curN, curErr = q.currentCounts(ctx)
	}()
	num, err := q.edgesQuery(ctx, sql)
	<-curDone
	if err != nil {
		return nil, err
	}
	if curErr != nil {
		return nil, curErr
	}
	for i := range num {
		num[i].CurN = curN[num[i].Feature]
	}
	return num, nil
}

// edgesQuery runs numericEdges' query and reads its features.
func (q *querier) edgesQuery(ctx context.Context, sql string) ([]Numeric, error) {
	rows, err := q.conn.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("reference quantiles of %s: %w", q.model, err)
	}
	defer rows.Close()
	var out []Numeric
	var score *Numeric
	for rows.Next() {
		var (
			f        string
			n        uint64
			lo, hi   float64
			quantile []float64
		)
		if err := rows.Scan(&f, &n, &lo, &hi, &quantile); err != nil {
			return nil, fmt.Errorf("read reference quantiles of %s: %w", q.model, err)
		}
		edges := make([]float64, 0, len(quantile))
		for _, e := range quantile {
			if len(edges) == 0 || e != edges[len(edges)-1] {
				edges = append(edges, e)
			}
		}
		x := Numeric{Feature: f, Edges: edges, RefN: int64(n), RefMin: lo, RefMax: hi,
			RefBins: make([]int64, len(edges)+1), CurBins: make([]int64, len(edges)+1)}
		switch {
		case f == ScoreFeature:
			score = &x
		case len(out) < q.opts.MaxFeatures:
			out = append(out, x)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read reference quantiles of %s: %w", q.model, err)
	}
	if score != nil {
		out = append(out, *score)
	}
	return out, nil
}

// currentCounts returns the current window's rows per numeric feature (and
// the score, as ScoreFeature).
func (q *querier) currentCounts(ctx context.Context) (map[string]int64, error) {
	cur := fmt.Sprintf("FROM inferences FINAL WHERE model_id = %s AND NOT shadow AND %s", chsql.String(q.model), q.inCur())
	sql := fmt.Sprintf("SELECT k, count() FROM (SELECT features_numeric.keys AS ks %[1]s) ARRAY JOIN ks AS k GROUP BY k "+
		"UNION ALL SELECT %[2]s, count() %[1]s AND prediction_score IS NOT NULL", cur, chsql.String(ScoreFeature))
	return q.countsBy(ctx, sql, "current counts")
}

// numericBins fills in the bin counts, the current rows out of the
// reference range and, with Options.Samples, the value samples.
//
// Bins: the number of a feature's edges at or below the value, as a sum of
// comparisons with per-feature constants looked up by transform — much
// cheaper per row than indexing a map of edge arrays. Edges are padded to
// Bins-1 with NaN, which no value is at or above.
//
// Samples: below SampleCap rows a window's values are all there; above it,
// rows whose h is below SampleCap/n, a Bernoulli sample of about SampleCap
// rows, uniform and the same on every run (h hashes the event_id). They
// are collected per bin and sorted there: bins are value ranges, so the
// bins in order give the sorted sample.
//
// The features' constants make the query text grow with features × bins;
// above MaxQueryBytes the features are split in halves, each half a query
// of its own (another read of the windows), until every query fits under
// ClickHouse's max_query_size.
func (q *querier) numericBins(ctx context.Context, out []Numeric) error {
	if len(out) == 0 {
		return nil
	}
	sql := q.binsSQL(out)
	if len(sql) > MaxQueryBytes && len(out) > 1 {
		half := len(out) / 2
		if err := q.numericBins(ctx, out[:half]); err != nil {
			return err
		}
		return q.numericBins(ctx, out[half:])
	}
	return q.binsQuery(ctx, sql, out)
}

// binsSQL is numericBins' query for the features out (idx 1 is out[0]).
func (q *querier) binsSQL(out []Numeric) string {
	refRate := make([]float64, len(out))
	curRate := make([]float64, len(out))
	for i, n := range out {
		refRate[i] = sampleRate(q.opts.SampleCap, n.RefN)
		curRate[i] = sampleRate(q.opts.SampleCap, n.CurN)
	}
	b := q.binned(out, refRate, curRate, q.opts.Samples, "")
	sample := ""
	if q.opts.Samples {
		// The sorted sample travels as the serialised state of groupArray
		// (a varint count, then the values as little-endian float64):
		// clickhouse-go scans an Array(Float64) element by element through
		// reflection, which took longer than the query itself.
		sample = ", CAST(arrayReduce('groupArrayState', arraySort(groupArrayIf(v, keep))) AS String)"
		if q.joint != nil {
			// The joint sample: the hashes and the values of the kept
			// rows, two arrays in the same order — the two aggregates of
			// one group see its rows in one order, in every thread and in
			// the merge of the threads' states (TestJointSample checks
			// that each value comes back with its event's). Cheaper than
			// building an array of (h, v) for every row of the windows.
			sample += ", CAST(arrayReduce('groupArrayState', groupArrayIf(h, jkeep)) AS String), CAST(arrayReduce('groupArrayState', groupArrayIf(v, jkeep)) AS String)"
		}
	}
	return fmt.Sprintf("SELECT idx, is_cur, bin, count(), countIf(is_cur AND %s)%s FROM %s GROUP BY idx, is_cur, bin",
		b.outside, sample, b.from)
}

// binnedRows is the subquery binsSQL and the incremental partials read:
// one row (is_cur, idx, v, bin, and with hash h and keep) per value of a
// feature of out, its bin on the feature's edges, and whether the
// window's sample keeps it (h below the feature's rate in that window);
// outside is the condition "v is outside the reference range".
type binnedRows struct {
	from, outside string
	// ids and per express per-feature constants by idx.
	ids string
}

// binned builds binnedRows over the windows q reads. Bins: the number of a
// feature's edges at or below the value, as a sum of comparisons with
// per-feature constants looked up by transform — much cheaper per row than
// indexing a map of edge arrays; edges are padded to Bins-1 with NaN,
// which no value is at or above.
//
// keep, when not empty, replaces the rate lookup: the condition on h (and
// idx, b) under which a value is kept.
func (q *querier) binned(out []Numeric, refRate, curRate []float64, hash bool, keepExpr string) binnedRows {
	nb := q.opts.Bins - 1
	idx := make([]string, len(out))
	keys := make([]string, len(out))
	lo := make([]float64, len(out))
	hi := make([]float64, len(out))
	edges := make([][]float64, nb)
	for i, n := range out {
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
	keep, h := "", ""
	if hash {
		// One lookup by 2·idx + is_cur gives the window's rate; h < 1, so a
		// rate of 1 keeps every row.
		if keepExpr == "" {
			rates := make([]float64, 0, 2*len(out))
			slots := make([]string, 0, 2*len(out))
			for i := range out {
				rates = append(rates, refRate[i], curRate[i])
				slots = append(slots, strconv.Itoa(2*(i+1)), strconv.Itoa(2*(i+1)+1))
			}
			keepExpr = fmt.Sprintf("h < transform(idx * 2 + is_cur, CAST([%s], 'Array(UInt32)'), %s, toFloat64(0))", strings.Join(slots, ", "), floatArray(rates))
		}
		keep = ", h, " + keepExpr + " AS keep"
		h = "h, "
		if q.joint != nil {
			// The joint sample's rows (binsSQL gathers them): h is
			// selected above already.
			keep += fmt.Sprintf(", h < if(is_cur, toFloat64(%s), toFloat64(%s)) AS jkeep", strconv.FormatFloat(q.jointRates[1], 'g', -1, 64), strconv.FormatFloat(q.jointRates[0], 'g', -1, 64))
		}
	}
	if q.bucketMs != 0 {
		h += "b, "
		keep += ", b"
	}
	from := fmt.Sprintf("(SELECT is_cur, v, idx, toUInt32(%s) AS bin%s "+
		"FROM (SELECT is_cur, %sv, transform(k, [%s], %s, toUInt32(0)) AS idx FROM %s) WHERE idx > 0)",
		strings.Join(bin, " + "), keep, h, strings.Join(keys, ", "), ids, q.numericPairs(hash))
	return binnedRows{from: from, outside: fmt.Sprintf("(v < %s OR v > %s)", per(lo), per(hi)), ids: ids}
}

// binsQuery runs binsSQL's query sql and fills in out.
func (q *querier) binsQuery(ctx context.Context, sql string, out []Numeric) error {
	rows, err := q.conn.Query(ctx, sql)
	if err != nil {
		return fmt.Errorf("bin counts of %s: %w", q.model, err)
	}
	defer rows.Close()
	// samples[i][w][b]: feature i, window w (1 = current), bin b.
	samples := make([][2][][]float64, len(out))
	for rows.Next() {
		var (
			id           uint32
			isCur        bool
			b            uint32
			n, outside   uint64
			blob, jh, jv string
		)
		dest := []any{&id, &isCur, &b, &n, &outside}
		if q.opts.Samples {
			dest = append(dest, &blob)
		}
		if q.joint != nil {
			dest = append(dest, &jh, &jv)
		}
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("read bin counts of %s: %w", q.model, err)
		}
		var vals []float64
		if q.opts.Samples {
			var err error
			if vals, err = decodeFloats(blob); err != nil {
				return fmt.Errorf("read value sample of %s: %w", q.model, err)
			}
		}
		if id < 1 || int(id) > len(out) {
			return fmt.Errorf("BUG: feature index %d beyond %d features", id, len(out))
		}
		x := &out[id-1]
		if q.joint != nil {
			hs, err := decodeFloats(jh)
			if err != nil {
				return fmt.Errorf("read joint sample of %s: %w", q.model, err)
			}
			vs, err := decodeFloats(jv)
			if err != nil {
				return fmt.Errorf("read joint sample of %s: %w", q.model, err)
			}
			w := 0
			if isCur {
				w = 1
			}
			if err := q.joint.add(w, x.Feature, hs, vs); err != nil {
				return fmt.Errorf("read joint sample of %s: %w", q.model, err)
			}
		}
		if int(b) >= len(x.RefBins) {
			return fmt.Errorf("BUG: bin %d of %s beyond %d edges", b, x.Feature, len(x.Edges))
		}
		w := 0
		if isCur {
			w = 1
			x.CurBins[b] += int64(n)
			x.CurOutOfRange += int64(outside)
		} else {
			x.RefBins[b] += int64(n)
		}
		if q.opts.Samples {
			s := &samples[id-1][w]
			if *s == nil {
				*s = make([][]float64, len(x.RefBins))
			}
			(*s)[b] = vals
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read bin counts of %s: %w", q.model, err)
	}
	if !q.opts.Samples {
		return nil
	}
	for i := range out {
		x := &out[i]
		if !q.curOnly {
			x.RefValues, x.RefCounts = compress(concatSorted(samples[i][0]))
			x.SampledRef = x.RefN > int64(q.opts.SampleCap)
		}
		x.CurValues, x.CurCounts = compress(concatSorted(samples[i][1]))
		x.SampledCur = x.CurN > int64(q.opts.SampleCap)
	}
	return nil
}

// decodeFloats decodes a serialised groupArray(Float64) state: the count
// as an unsigned LEB128 varint, then that many little-endian float64s.
func decodeFloats(state string) ([]float64, error) {
	n, k := binary.Uvarint([]byte(state[:min(len(state), binary.MaxVarintLen64)]))
	if k <= 0 || uint64(len(state)-k) != 8*n {
		return nil, fmt.Errorf("groupArray state of %d bytes does not hold %d float64 values", len(state), n)
	}
	out := make([]float64, n)
	for i := range out {
		out[i] = math.Float64frombits(binary.LittleEndian.Uint64([]byte(state[k+8*i : k+8*i+8])))
	}
	return out, nil
}

// sampleRate is the share of a window's n rows the samples keep.
func sampleRate(limit int, n int64) float64 {
	if n <= int64(limit) {
		return 1
	}
	return float64(limit) / float64(n)
}

// concatSorted joins per-bin sorted samples in bin order. Bins are
// ascending value ranges, so the result is sorted; NaN (bin 0, sorted
// last by ClickHouse) is the exception, hence the check.
func concatSorted(bins [][]float64) []float64 {
	var n int
	for _, b := range bins {
		n += len(b)
	}
	out := make([]float64, 0, n)
	for _, b := range bins {
		out = append(out, b...)
	}
	if !slices.IsSorted(out) {
		slices.Sort(out)
	}
	return out
}

// deadLetters counts the current window's dead letters per reason.
func (q *querier) deadLetters(ctx context.Context) (map[string]int64, error) {
	return q.countsBy(ctx, fmt.Sprintf("SELECT reason, count() FROM dead_letters FINAL WHERE model_id = %s AND %s GROUP BY reason", chsql.String(q.model), q.inCur()), "dead letters")
}

// countsBy runs sql, which returns (name, count) rows, and collects them;
// what names the figures in errors.
func (q *querier) countsBy(ctx context.Context, sql, what string) (map[string]int64, error) {
	rows, err := q.conn.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("%s of %s: %w", what, q.model, err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var (
			name string
			n    uint64
		)
		if err := rows.Scan(&name, &n); err != nil {
			return nil, fmt.Errorf("read %s of %s: %w", what, q.model, err)
		}
		out[name] = int64(n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s of %s: %w", what, q.model, err)
	}
	return out, nil
}

// jointCategorical names the categorical features of the joint sample:
// those of the snapshot, the prediction label left out (as the score is
// from the numeric columns).
func jointCategorical(cs []Categorical) []string {
	names := []string{}
	for _, c := range cs {
		if c.Feature != LabelFeature {
			names = append(names, c.Feature)
		}
	}
	return names
}

// jointCategorySQL reads the categories of the joint sample's rows: one
// row (is_cur, h, feature, category) per categorical value of an event
// whose hash h is below its window's jointRates, the numeric columns'
// rate. A read of its own (the category query groups by category and
// keeps no hashes), narrow: only the map column of the sampled rows,
// about JointRows rows per window.
func (q *querier) jointCategorySQL() string {
	const h = "cityHash64(event_id) / 18446744073709551616"
	return fmt.Sprintf("SELECT is_cur, h, k, v FROM (SELECT %[1]s AS is_cur, %[2]s AS h, features_categorical %[3]s AND %[2]s < if(%[1]s, toFloat64(%[4]s), toFloat64(%[5]s))) "+
		"ARRAY JOIN mapKeys(features_categorical) AS k, mapValues(features_categorical) AS v",
		q.inCur(), h, q.base(), strconv.FormatFloat(q.jointRates[1], 'g', -1, 64), strconv.FormatFloat(q.jointRates[0], 'g', -1, 64))
}

// jointCategories runs jointCategorySQL.
func (q *querier) jointCategories(ctx context.Context) ([]catPair, error) {
	rows, err := q.conn.Query(ctx, q.jointCategorySQL())
	if err != nil {
		return nil, fmt.Errorf("joint sample categories of %s: %w", q.model, err)
	}
	defer rows.Close()
	var out []catPair
	for rows.Next() {
		var (
			isCur bool
			p     catPair
		)
		if err := rows.Scan(&isCur, &p.h, &p.feature, &p.value); err != nil {
			return nil, fmt.Errorf("read joint sample categories of %s: %w", q.model, err)
		}
		if isCur {
			p.w = 1
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read joint sample categories of %s: %w", q.model, err)
	}
	return out, nil
}

// OtherCategory is the category the categories of a feature beyond
// MaxCategories are summed into.
const OtherCategory = "__other"

// catRow is one (feature, category) with its counts in the two windows;
// a folded row (category "") sums the feature's categories beyond
// MaxCategories.
type catRow struct {
	feature, category string
	ref, cur          int64
	folded            bool
}

// catStats count a feature's distinct values in the two windows, and in
// each of them.
type catStats struct {
	distinct, ref, cur int64
}

// categorySQL counts every (feature, category) of the windows q reads and
// keeps, per feature, the MaxCategories most frequent in both windows
// together (then by category), summing the rest into one folded row, with
// the feature's distinct values: ClickHouse groups a unique-per-event
// feature's millions of values, and Go receives at most MaxCategories + 1
// rows per feature. Ordered by feature, the kept rows by count (most
// first) and category, the folded row last — the order merge gives too.
func (q *querier) categorySQL() string {
	// The label is a second, narrow read under UNION ALL, like the score.
	counts := fmt.Sprintf("SELECT k, v, countIf(NOT is_cur) AS r, countIf(is_cur) AS c FROM ("+
		"SELECT is_cur, k, v FROM (SELECT %[1]s AS is_cur, features_categorical %[2]s) "+
		"ARRAY JOIN mapKeys(features_categorical) AS k, mapValues(features_categorical) AS v "+
		"UNION ALL SELECT %[1]s AS is_cur, %[3]s AS k, assumeNotNull(prediction_label) AS v %[2]s AND prediction_label IS NOT NULL"+
		") GROUP BY k, v", q.inCur(), q.base(), chsql.String(LabelFeature))
	return q.rankCategories(counts)
}

// rankCategories is categorySQL over counts, a query giving one row
// (k, v, r, c) per feature k and category v with its counts in the
// reference (r) and the current window (c).
func (q *querier) rankCategories(counts string) string {
	return fmt.Sprintf("SELECT k, folded, if(folded, '', v) AS cat, sum(r) AS rr, sum(c) AS cc, any(d), any(dr), any(dc) FROM ("+
		"SELECT k, v, r, c, rn > %[2]d AS folded, d, dr, dc FROM ("+
		"SELECT k, v, r, c, row_number() OVER byCount AS rn, count() OVER byFeature AS d, countIf(r > 0) OVER byFeature AS dr, countIf(c > 0) OVER byFeature AS dc FROM ("+
		"%[1]s) WINDOW byCount AS (PARTITION BY k ORDER BY r + c DESC, v), byFeature AS (PARTITION BY k))"+
		") GROUP BY k, folded, cat ORDER BY k, folded, rr + cc DESC, cat", counts, q.opts.MaxCategories)
}

// readCategories runs categorySQL.
func (q *querier) readCategories(ctx context.Context) ([]catRow, map[string]catStats, error) {
	return q.readCategoriesSQL(ctx, q.categorySQL())
}

// readCategoriesSQL runs a query of categorySQL's shape.
func (q *querier) readCategoriesSQL(ctx context.Context, sql string) ([]catRow, map[string]catStats, error) {
	rows, err := q.conn.Query(ctx, sql)
	if err != nil {
		return nil, nil, fmt.Errorf("category counts of %s: %w", q.model, err)
	}
	defer rows.Close()
	var out []catRow
	stats := map[string]catStats{}
	for rows.Next() {
		var (
			f, v          string
			folded        bool
			r, c, d, x, y uint64
		)
		if err := rows.Scan(&f, &folded, &v, &r, &c, &d, &x, &y); err != nil {
			return nil, nil, fmt.Errorf("read category counts of %s: %w", q.model, err)
		}
		out = append(out, catRow{f, v, int64(r), int64(c), folded})
		stats[f] = catStats{distinct: int64(d), ref: int64(x), cur: int64(y)}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read category counts of %s: %w", q.model, err)
	}
	return out, stats, nil
}

// categoryRows returns the categories of the two windows with their
// counts and the features' distinct values (see categorySQL). With cached,
// the current window is read and merged with the cached reference's: the
// same rows as reading both windows while no feature has more than
// MaxCategories. When one has, the kept reference is not every category
// of the reference, so both windows are read again — or, for a pinned
// reference (whose rows may be gone), the two windows' kept categories
// are merged, the folded rows summed, and the distinct values estimated.
func (q *querier) categoryRows(ctx context.Context, cached *Reference) ([]catRow, map[string]catStats, error) {
	out, stats, err := q.readCategories(ctx)
	if err != nil || cached == nil {
		return out, stats, err
	}
	folded := false
	for _, s := range cached.catStats {
		folded = folded || s.folded
	}
	for _, s := range stats {
		folded = folded || s.distinct > int64(q.opts.MaxCategories)
	}
	if folded && !cached.pinned {
		both := *q
		both.curOnly = false
		return both.readCategories(ctx)
	}
	return cached.merge(out, stats, folded)
}

// merge merges the current window's category rows and stats with r's.
func (r *Reference) merge(cur []catRow, curStats map[string]catStats, folded bool) ([]catRow, map[string]catStats, error) {
	type key struct {
		f, v   string
		folded bool
	}
	idx := make(map[key]int, len(r.categories)+len(cur))
	merged := make([]catRow, 0, len(r.categories)+len(cur))
	for _, c := range r.categories {
		idx[key{c.feature, c.category, c.folded}] = len(merged)
		merged = append(merged, catRow{c.feature, c.category, c.ref, 0, c.folded})
	}
	shared := map[string]int64{}
	for _, c := range cur {
		if i, ok := idx[key{c.feature, c.category, c.folded}]; ok {
			merged[i].cur = c.cur
			if !c.folded {
				shared[c.feature]++
			}
		} else {
			merged = append(merged, catRow{c.feature, c.category, 0, c.cur, c.folded})
		}
	}
	sort.Slice(merged, func(i, j int) bool {
		a, b := merged[i], merged[j]
		if a.feature != b.feature {
			return a.feature < b.feature
		}
		if a.folded != b.folded {
			return b.folded
		}
		if a.ref+a.cur != b.ref+b.cur {
			return a.ref+a.cur > b.ref+b.cur
		}
		return a.category < b.category
	})
	stats := map[string]catStats{}
	for _, c := range merged {
		s := stats[c.feature]
		if !folded {
			s.distinct++ // every category of both windows is here
		}
		stats[c.feature] = s
	}
	for f, s := range stats {
		s.ref, s.cur = r.catStats[f].distinct, curStats[f].cur
		if folded {
			// Categories seen in both windows count once where both
			// kept them; some beyond the kept ones may be counted twice.
			s.distinct = s.ref + s.cur - shared[f]
		}
		stats[f] = s
	}
	return merged, stats, nil
}

// assembleCategorical turns ordered category rows into the features'
// aggregates: at most MaxCategories categories each (the rest, and the
// folded rows, summed into OtherCategory), the features most frequent in
// the reference first, capped at MaxFeatures, and the label last.
func (q *querier) assembleCategorical(rows []catRow, stats map[string]catStats) []Categorical {
	byFeature := map[string]*Categorical{}
	other := map[string]int{} // index of a feature's OtherCategory
	var order []string
	for _, row := range rows {
		f, r, c := row.feature, row.ref, row.cur
		x := byFeature[f]
		if x == nil {
			s := stats[f]
			x = &Categorical{Feature: f, Distinct: s.distinct, RefDistinct: s.ref, CurDistinct: s.cur, Folded: s.distinct > int64(q.opts.MaxCategories)}
			byFeature[f] = x
			if f != LabelFeature {
				order = append(order, f)
			}
		}
		x.RefN += r
		x.CurN += c
		if !row.folded && len(x.Categories) < q.opts.MaxCategories {
			x.Categories = append(x.Categories, row.category)
			x.RefCounts = append(x.RefCounts, r)
			x.CurCounts = append(x.CurCounts, c)
			continue
		}
		x.Folded = true
		i, ok := other[f]
		if !ok {
			i = len(x.Categories)
			other[f] = i
			x.Categories = append(x.Categories, OtherCategory)
			x.RefCounts = append(x.RefCounts, 0)
			x.CurCounts = append(x.CurCounts, 0)
		}
		x.RefCounts[i] += r
		x.CurCounts[i] += c
	}
	// The most frequent features in the reference first, capped; the label
	// last, whatever its reference count.
	sort.SliceStable(order, func(i, j int) bool { return byFeature[order[i]].RefN > byFeature[order[j]].RefN })
	if len(order) > q.opts.MaxFeatures {
		order = order[:q.opts.MaxFeatures]
	}
	out := make([]Categorical, 0, len(order)+1)
	for _, f := range order {
		if byFeature[f].RefN > 0 {
			out = append(out, *byFeature[f])
		}
	}
	if l := byFeature[LabelFeature]; l != nil {
		out = append(out, *l)
	}
	return out
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

// floatArray is xs as an Array(Float64) literal, ±Inf and NaN as nan.
// Bare literals in one CAST: a query carries thousands of them, and
// toFloat64(…) around each made it half as long again.
func floatArray(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		if math.IsInf(x, 0) || math.IsNaN(x) {
			parts[i] = "nan"
		} else {
			parts[i] = strconv.FormatFloat(x, 'g', -1, 64)
		}
	}
	return "CAST([" + strings.Join(parts, ",") + "], 'Array(Float64)')"
}

// MaxQueryBytes bounds the text of the window queries, under ClickHouse's
// default max_query_size (262,144 bytes) with room to spare; a query that
// would be longer is split by features (see numericBins).
const MaxQueryBytes = 200_000

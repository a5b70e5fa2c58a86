package window

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"golang.org/x/sync/errgroup"

	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/internal/future"
)

// Incremental windows (docs/monitor.md "Incremental windows"): with a
// pinned Reference, the current window's aggregates are kept per bucket in
// the window_partial_* tables and a window is merged from its buckets.
// Only buckets that are new, or whose rows changed since they were
// aggregated (late events, replays, TTL), are read from inferences again.
// The snapshot is the one ComputeCached returns for the same rows.

// Progress says how ComputeIncremental computed a snapshot.
type Progress struct {
	// Incremental is false when the snapshot was computed in full (see
	// Fallback for why).
	Incremental bool
	// Fallback says why the window was computed in full.
	Fallback string
	// Buckets is the number of buckets of the current window holding rows
	// or partials; Aggregated how many of them were read from inferences
	// again (new, changed, or lacking sampled values).
	Buckets, Aggregated int
}

// MaxBuckets bounds the buckets of a window computed incrementally; a
// window of more (a step that does not divide the window nicely) is
// computed in full.
const MaxBuckets = 10_000

// sampleSlack is how much more than the rate a window of such buckets
// would use a bucket keeps of its sampled values (see partialBounds).
const sampleSlack = 1.25

// ComputeIncremental is ComputeCached for a current window made of buckets
// of width bucket: when cached is a pinned Reference valid for model, ref
// and opts, and cur is aligned on bucket, the current window's aggregates
// are merged from per-bucket partials in ClickHouse, aggregating only the
// buckets that are new or changed. Otherwise (no pinned reference yet, a
// window not on the bucket grid) it is ComputeCached, and Progress says
// why. Either way the snapshot is the one ComputeCached returns.
//
// bc, when not nil, keeps the model's partials in memory between calls
// (see BucketCache); the snapshot is the same with or without it.
func ComputeIncremental(ctx context.Context, conn driver.Conn, model string, ref, cur Span, opts Options, cached *Reference, bucket time.Duration, bc *BucketCache) (*Snapshot, *Reference, Progress, error) {
	s, r, prog, persisted, err := StartIncremental(ctx, conn, model, ref, cur, opts, cached, bucket, bc)
	if err == nil {
		err = persisted()
	}
	if err != nil {
		return nil, nil, prog, err
	}
	return s, r, prog, nil
}

// StartIncremental is ComputeIncremental that may return the snapshot
// before the last of its writes are done: with a BucketCache, the new
// buckets' partials go into the cache, and once it holds enough of them
// unwritten (BucketCache.WriteEvery) they and their manifest rows are
// written while the caller goes on with the snapshot. persisted waits for
// them and returns their error, which fails the window: the caller records
// nothing of it until persisted returns nil. (Its statistics can be
// computed meanwhile: the snapshot is complete.) persisted may be called
// more than once, and must be called before the model's next window.
func StartIncremental(ctx context.Context, conn driver.Conn, model string, ref, cur Span, opts Options, cached *Reference, bucket time.Duration, bc *BucketCache) (_ *Snapshot, _ *Reference, _ Progress, persisted func() error, _ error) {
	persisted = func() error { return nil }
	opts.defaults()
	why := ""
	n := int64(0)
	switch {
	case cached == nil || !cached.pinned:
		why = "no pinned reference"
	case opts.JointRows > 0:
		why = "the multivariate methods' joint sample has no per-bucket partials"
	case !cached.valid(model, ref, opts, 0, time.Time{}):
		why = "the pinned reference is for another span or other options"
	case bucket < time.Millisecond || bucket%time.Millisecond != 0:
		why = "bucket width " + bucket.String() + " is not a whole number of milliseconds"
	case !cur.Start.Before(cur.End):
		why = "empty current window"
	default:
		ms := bucket.Milliseconds()
		n = (cur.End.UnixMilli() - cur.Start.UnixMilli()) / ms
		switch {
		case cur.Start.UnixNano()%bucket.Nanoseconds() != 0 || cur.End.UnixNano()%bucket.Nanoseconds() != 0:
			why = "the current window " + cur.String() + " is not on the " + bucket.String() + " grid"
		case n > MaxBuckets:
			why = fmt.Sprintf("the current window holds %d buckets of %s, more than %d", n, bucket, MaxBuckets)
		case len(cached.numeric) > 0 && len((&querier{model: model, cur: cur, opts: opts, curOnly: true}).binsSQL(cached.numeric)) > MaxQueryBytes/2:
			// The partials' statements carry the features' constants and
			// the sample bounds in one query, never split by features.
			why = "the numeric features' bin edges make the partials' statements too long (the full path splits them)"
		}
	}
	if why != "" {
		s, r, err := ComputeCached(ctx, conn, model, ref, cur, opts, cached)
		return s, r, Progress{Fallback: why}, persisted, err
	}
	p := &partials{
		q:       &querier{conn: conn, model: model, ref: ref, cur: cur, opts: opts, curOnly: true},
		ref:     cached,
		key:     cached.partialKey(),
		bucket:  bucket,
		buckets: n,
		cache:   bc,
	}
	s, prog, err := p.compute(ctx)
	if p.persist != nil {
		f := p.persist
		persisted = func() error {
			_, err := f.Wait()
			return err
		}
	}
	if err != nil {
		// Whatever is still being written, the window has failed.
		_ = persisted()
		return nil, nil, prog, persisted, err
	}
	return s, cached, prog, persisted, nil
}

// partials computes one model's current window from its buckets.
type partials struct {
	q       *querier // over the current window, curOnly
	ref     *Reference
	key     uint64
	bucket  time.Duration
	buckets int64 // in a window
	cache   *BucketCache
	// shares, when known (from the cache), is each numeric feature's
	// values per row: a bucket's values are estimated from its rows
	// instead of counted (see aggregate).
	shares map[string]float64
	// persist, with a cache, is the write of its unwritten partials and
	// of their manifest rows, when due (see StartIncremental); nil when
	// none.
	persist *future.Future[struct{}]
}

// bucketState is what a bucket held: its rows and their newest
// ingested_at, and (in the manifest) the version of its partials.
type bucketState struct {
	rows    uint64
	newest  time.Time
	version uint64
	// written is the rows written into the bucket, as the
	// inferences_per_minute rollup counts them (see changedBuckets).
	written uint64
}

func (p *partials) compute(ctx context.Context) (*Snapshot, Progress, error) {
	q := p.q
	s := &Snapshot{Model: q.model, Reference: q.ref, Current: q.cur, MaxCategories: q.opts.MaxCategories, RefRows: p.ref.rows}
	if s.RefRows == 0 {
		return s, Progress{}, ErrNoReference
	}
	// The dead letters, the manifest and the rows written per bucket are
	// independent reads: together.
	deadF := future.Go(func() (map[string]int64, error) { return q.deadLetters(ctx) })
	writtenF := future.Go(func() (map[int64]uint64, error) { return p.writtenPerBucket(ctx) })
	kept, err := p.manifest(ctx)
	if p.cache != nil {
		// One evaluation of the model at a time uses its cache, whose
		// unwritten partials are current too.
		p.cache.mu.Lock()
		defer p.cache.mu.Unlock()
		if err == nil {
			p.cache.overlayUnwritten(p, kept)
		}
	}
	written, werr := writtenF.Wait()
	if err == nil {
		err = werr
	}
	if err != nil {
		return nil, Progress{}, err
	}
	now, err := p.currentBuckets(ctx, kept, written)
	if err != nil {
		return nil, Progress{}, err
	}
	prog := Progress{Incremental: true}
	var stale []int64
	for b, st := range now {
		s.CurRows += int64(st.rows)
		prog.Buckets++
		// (A bucket whose written rows moved but whose rows did not — an
		// insert the table deduplicated — is aggregated once more, so that
		// the manifest's written count catches up.)
		if k, ok := kept[b]; !ok || k.rows != st.rows || !k.newest.Equal(st.newest) || k.written != st.written {
			stale = append(stale, b)
		}
	}
	for b, k := range kept {
		if _, ok := now[b]; !ok && k.rows > 0 {
			// Every row of the bucket is gone (TTL, a deletion): its
			// partials are replaced by none.
			prog.Buckets++
			stale = append(stale, b)
		}
	}
	if p.cache != nil {
		// Its values per row estimate the new buckets' (see aggregate).
		p.shares = p.cache.shares()
	}
	if err := p.aggregate(ctx, stale, now, kept, nil); err != nil {
		return nil, prog, err
	}
	prog.Aggregated += len(stale)
	var (
		rows  []catRow
		stats map[string]catStats
	)
	if p.cache != nil {
		s.Numeric, rows, stats, err = p.fromCache(ctx, p.cache, now, kept, &prog)
		if err != nil {
			return nil, prog, err
		}
		if c := p.cache; c.dueWrite(p.buckets) {
			// Written while the caller computes the window's statistics.
			write := c.startWrite()
			p.persist = future.Go(func() (struct{}, error) { return struct{}{}, write(ctx) })
		}
	} else {
		if s.Numeric, err = p.numeric(ctx, now, &prog); err != nil {
			return nil, prog, err
		}
		rows, stats, err = q.readCategoriesSQL(ctx, q.rankCategories(
			"SELECT feature AS k, category AS v, toUInt64(0) AS r, sum(n) AS c FROM window_partial_categories WHERE "+p.current()+" GROUP BY k, v"))
		if err != nil {
			return nil, prog, err
		}
	}
	// As categoryRows does for a pinned reference: merge the current
	// window's categories with the reference's.
	folded := false
	for _, st := range p.ref.catStats {
		folded = folded || st.folded
	}
	for _, st := range stats {
		folded = folded || st.distinct > int64(q.opts.MaxCategories)
	}
	if rows, stats, err = p.ref.merge(rows, stats, folded); err != nil {
		return nil, prog, err
	}
	s.Categorical = q.assembleCategorical(rows, stats)
	if s.DeadLetters, err = deadF.Wait(); err != nil {
		return nil, prog, err
	}
	return s, prog, nil
}

// numeric returns the reference's numeric features with the current
// window's counts, bins, out-of-range counts and samples merged from the
// partials. A bucket whose partials keep fewer sampled values than the
// window's rate needs (its bound is below the rate: the bucket was busier
// than sampleSlack times the window's average) is aggregated again with a
// bound of sampleSlack times the rate first.
func (p *partials) numeric(ctx context.Context, now map[int64]bucketState, prog *Progress) ([]Numeric, error) {
	q := p.q
	var out []Numeric // nil without features, as numericEdges
	if len(p.ref.numeric) > 0 {
		out = make([]Numeric, len(p.ref.numeric))
	}
	for i, n := range p.ref.numeric {
		n.CurBins = make([]int64, len(n.RefBins))
		out[i] = n
	}
	if len(out) == 0 {
		return out, nil
	}
	rows, err := q.conn.Query(ctx, "SELECT toUnixTimestamp64Milli(bucket_start), feature, sum(n), min(sample_bound) FROM window_partial_bins WHERE "+p.current()+" GROUP BY bucket_start, feature")
	if err != nil {
		return nil, fmt.Errorf("read partial counts of %s: %w", q.model, err)
	}
	type fb struct {
		bucket int64
		bound  float64
	}
	bounds := map[string][]fb{}
	curN := map[string]int64{}
	for rows.Next() {
		var (
			ms    int64
			f     string
			n     uint64
			bound float64
		)
		if err := rows.Scan(&ms, &f, &n, &bound); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read partial counts of %s: %w", q.model, err)
		}
		curN[f] += int64(n)
		bounds[f] = append(bounds[f], fb{ms / p.bucket.Milliseconds(), bound})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read partial counts of %s: %w", q.model, err)
	}
	rates := make([]float64, len(out))
	for i := range out {
		out[i].CurN = curN[out[i].Feature]
		rates[i] = sampleRate(q.opts.SampleCap, out[i].CurN)
	}
	if q.opts.Samples {
		// Buckets whose kept values fall short of a feature's rate.
		short := map[int64]map[string]float64{}
		for i, n := range out {
			for _, b := range bounds[n.Feature] {
				if b.bound < rates[i] {
					if short[b.bucket] == nil {
						short[b.bucket] = map[string]float64{}
					}
					short[b.bucket][n.Feature] = min(1, sampleSlack*rates[i])
				}
			}
		}
		if len(short) > 0 {
			kept, err := p.manifest(ctx)
			if err != nil {
				return nil, err
			}
			// One bucket at a time: each has its own raised bounds.
			for b, need := range short {
				if err := p.aggregate(ctx, []int64{b}, now, kept, need); err != nil {
					return nil, err
				}
				prog.Aggregated++
			}
		}
	}
	idx := make([]string, len(out))
	names := make([]string, len(out))
	for i, n := range out {
		idx[i] = strconv.Itoa(i + 1)
		names[i] = chsql.String(n.Feature)
	}
	ids := "CAST([" + strings.Join(idx, ", ") + "], 'Array(UInt32)')"
	sample := ""
	if q.opts.Samples {
		// The same serialised groupArray state as binsSQL's: the values of
		// the bin whose hash is below the window's rate, sorted.
		sample = ", CAST(arrayReduce('groupArrayState', arraySort(vs)) AS String)"
	}
	// Each partial row's values are filtered by the feature's rate before
	// they are gathered: cheaper than gathering (hash, value) pairs.
	keep := fmt.Sprintf("groupArrayArray(arrayFilter((x, y) -> y < transform(toString(feature), [%s], %s, toFloat64(0)), sample_v, sample_h))", strings.Join(names, ", "), floatArray(rates))
	if !q.opts.Samples {
		keep = "emptyArrayFloat64()"
	}
	sql := fmt.Sprintf("SELECT idx, true, bin, n, o%s FROM (SELECT transform(toString(feature), [%s], %s, toUInt32(0)) AS idx, bin, sum(n) AS n, sum(out_of_range) AS o, "+
		"%s AS vs FROM window_partial_bins WHERE %s GROUP BY feature, bin) WHERE idx > 0",
		sample, strings.Join(names, ", "), ids, keep, p.current())
	if err := q.binsQuery(ctx, sql, out); err != nil {
		return nil, err
	}
	return out, nil
}

// current is the condition selecting the current version of every partial
// of the current window.
func (p *partials) current() string {
	m := p.manifestWhere()
	return m + " AND (bucket_start, version) IN (SELECT bucket_start, version FROM window_partial_buckets FINAL WHERE " + m + ")"
}

func (p *partials) manifestWhere() string {
	return fmt.Sprintf("model_id = %s AND profile_key = %d AND bucket_seconds = %d AND bucket_start >= %s AND bucket_start < %s",
		chsql.String(p.q.model), p.key, p.bucketSeconds(), chsql.Time(p.q.cur.Start), chsql.Time(p.q.cur.End))
}

// bucketSeconds is the bucket width recorded with the partials (its
// milliseconds when it is not a whole number of seconds, which
// bucket_start's grid then tells apart).
func (p *partials) bucketSeconds() int64 {
	if p.bucket%time.Second == 0 {
		return int64(p.bucket / time.Second)
	}
	return p.bucket.Milliseconds()
}

// ScanBuckets, when true, makes every step count the current window's
// rows per bucket under FINAL instead of reading the rollup first (see
// currentBuckets); for tests of both ways.
var ScanBuckets = false

// currentBuckets returns the current window's rows, newest ingested_at
// and written rows per bucket, given the manifest kept. With buckets of
// whole minutes, the rows written into each bucket are read from the
// inferences_per_minute rollup, which every insert into inferences feeds:
// a bucket whose written rows are the manifest's has had no insert since
// it was aggregated and keeps its manifest state; only the others — the
// new bucket, late events, a replay — are counted under FINAL. (An insert
// seen by the count but not yet by the rollup leaves written short, so the
// next step counts the bucket again.) Rows removed by a DELETE other than
// driftwatch forget's, or by TTL, move no written count: those buckets keep
// their partials until the rows of the window are counted (ScanBuckets).
// Buckets of other widths are all counted.
//
// written is writtenPerBucket's.
func (p *partials) currentBuckets(ctx context.Context, kept map[int64]bucketState, written map[int64]uint64) (map[int64]bucketState, error) {
	if written == nil {
		return p.rawBuckets(ctx, nil)
	}
	now := map[int64]bucketState{}
	var count []int64
	for b, n := range written {
		if k, ok := kept[b]; ok && k.written == n {
			if k.rows > 0 {
				now[b] = k
			}
			continue
		}
		count = append(count, b)
	}
	for b, k := range kept {
		if _, ok := written[b]; !ok && k.rows > 0 {
			count = append(count, b) // written rows gone: the rollup's TTL, or a deletion
		}
	}
	if len(count) == 0 {
		return now, nil
	}
	counted, err := p.rawBuckets(ctx, count)
	if err != nil {
		return nil, err
	}
	for b, st := range counted {
		st.written = written[b]
		now[b] = st
	}
	return now, nil
}

// writtenPerBucket reads the rows written into each bucket of the current
// window from the inferences_per_minute rollup; nil when currentBuckets
// counts every bucket instead (ScanBuckets, buckets of other widths).
func (p *partials) writtenPerBucket(ctx context.Context) (map[int64]uint64, error) {
	if ScanBuckets || p.bucket%time.Minute != 0 {
		return nil, nil
	}
	q := p.q
	secs := int64(p.bucket / time.Second)
	rows, err := q.conn.Query(ctx, fmt.Sprintf("SELECT toInt64(intDiv(toUnixTimestamp(minute), %d)) AS b, sum(events) FROM inferences_per_minute WHERE model_id = %s AND minute >= %s AND minute < %s GROUP BY b",
		secs, chsql.String(q.model), chsql.Time(q.cur.Start), chsql.Time(q.cur.End)))
	if err != nil {
		return nil, fmt.Errorf("read the rows written per bucket of %s: %w", q.model, err)
	}
	defer rows.Close()
	written := map[int64]uint64{}
	for rows.Next() {
		var (
			b int64
			n uint64
		)
		if err := rows.Scan(&b, &n); err != nil {
			return nil, fmt.Errorf("read the rows written per bucket of %s: %w", q.model, err)
		}
		written[b] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the rows written per bucket of %s: %w", q.model, err)
	}
	return written, nil
}

// rawBuckets reads the current window's rows and newest ingested_at per
// bucket from inferences (narrow columns only): of the buckets only, when
// given.
func (p *partials) rawBuckets(ctx context.Context, only []int64) (map[int64]bucketState, error) {
	q := p.q
	ms := p.bucket.Milliseconds()
	where := ""
	if len(only) > 0 {
		slices.Sort(only)
		ids := make([]string, len(only))
		for i, b := range only {
			ids[i] = strconv.FormatInt(b, 10)
		}
		where = fmt.Sprintf(" AND timestamp >= %s AND timestamp < %s AND intDiv(toUnixTimestamp64Milli(timestamp), %d) IN (%s)",
			chsql.Time(time.UnixMilli(only[0]*ms).UTC()), chsql.Time(time.UnixMilli((only[len(only)-1]+1)*ms).UTC()), ms, strings.Join(ids, ", "))
	}
	rows, err := q.conn.Query(ctx, fmt.Sprintf("SELECT intDiv(toUnixTimestamp64Milli(timestamp), %d) AS b, count(), max(ingested_at) %s%s GROUP BY b", ms, q.base(), where))
	if err != nil {
		return nil, fmt.Errorf("count bucket rows of %s: %w", q.model, err)
	}
	defer rows.Close()
	out := map[int64]bucketState{}
	for rows.Next() {
		var (
			b   int64
			st  bucketState
			err error
		)
		if err = rows.Scan(&b, &st.rows, &st.newest); err != nil {
			return nil, fmt.Errorf("read bucket rows of %s: %w", q.model, err)
		}
		out[b] = st
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read bucket rows of %s: %w", q.model, err)
	}
	return out, nil
}

// manifest reads the current version of each bucket's partials.
func (p *partials) manifest(ctx context.Context) (map[int64]bucketState, error) {
	q := p.q
	rows, err := q.conn.Query(ctx, "SELECT toUnixTimestamp64Milli(bucket_start), rows, newest_ingested_at, version, written FROM window_partial_buckets FINAL WHERE "+p.manifestWhere())
	if err != nil {
		return nil, fmt.Errorf("read the partials manifest of %s: %w", q.model, err)
	}
	defer rows.Close()
	out := map[int64]bucketState{}
	for rows.Next() {
		var (
			ms int64
			st bucketState
		)
		if err := rows.Scan(&ms, &st.rows, &st.newest, &st.version, &st.written); err != nil {
			return nil, fmt.Errorf("read the partials manifest of %s: %w", q.model, err)
		}
		out[ms/p.bucket.Milliseconds()] = st
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the partials manifest of %s: %w", q.model, err)
	}
	return out, nil
}

// maxBucketFeatures bounds the (bucket, feature) sample bounds one
// aggregation statement carries as constants, so that its text stays well
// under MaxQueryBytes; more buckets are aggregated in several statements.
const maxBucketFeatures = 3000

// aggregate computes the partials of buckets from their rows, each under
// a version after its old one (in kept), then records them in the
// manifest — last, so that a crash leaves rows no manifest points to —
// and in kept.
// A bucket's rows and newest ingested_at are in now (absent: none). need
// raises the sample bound of some features (see numeric). The buckets are
// aggregated together, a few statements for all of them.
func (p *partials) aggregate(ctx context.Context, buckets []int64, now, kept map[int64]bucketState, need map[string]float64) error {
	if len(buckets) == 0 {
		return nil
	}
	slices.Sort(buckets)
	per := max(1, maxBucketFeatures/max(1, len(p.ref.numeric)))
	for len(buckets) > per {
		if err := p.aggregate(ctx, buckets[:per], now, kept, need); err != nil {
			return err
		}
		buckets = buckets[per:]
	}
	q := p.q
	ms := p.bucket.Milliseconds()
	// A version unique to this attempt: a crashed attempt's rows carry
	// another and are never read.
	base := uint64(time.Now().UnixNano())
	versions := make([]uint64, len(buckets))
	ids := make([]string, len(buckets))
	var withRows []int64
	for i, b := range buckets {
		versions[i] = max(base, kept[b].version+1)
		ids[i] = strconv.FormatInt(b, 10)
		if now[b].rows > 0 {
			withRows = append(withRows, b)
		}
	}
	what := fmt.Sprintf("%d buckets from %s", len(buckets), time.UnixMilli(buckets[0]*ms).UTC().Format(time.RFC3339))
	agg := &bucketAggregation{p: p, buckets: buckets, versions: versions, withRows: withRows, now: now, need: need, what: what}
	if p.cache != nil {
		// Into the cache, written later (see WriteEvery and compute).
		var err error
		if len(withRows) > 0 {
			err = agg.throughCache(ctx)
		} else {
			err = agg.install(nil, nil)
		}
		if err != nil {
			return err
		}
		for i, b := range buckets {
			kept[b] = bucketState{rows: now[b].rows, newest: now[b].newest, version: versions[i], written: now[b].written}
		}
		return nil
	}
	if len(withRows) > 0 {
		if err := agg.inServer(ctx, ids); err != nil {
			return err
		}
	}
	vals := make([]string, len(buckets))
	for i, b := range buckets {
		st := now[b]
		vals[i] = fmt.Sprintf("(%s, %d, %s, %d, %d, %d, %s, %d)", chsql.String(q.model), p.key, chsql.Time(time.UnixMilli(b*ms).UTC()), p.bucketSeconds(), versions[i], st.rows, chsql.Time(st.newest), st.written)
	}
	sql := "INSERT INTO window_partial_buckets (model_id, profile_key, bucket_start, bucket_seconds, version, rows, newest_ingested_at, written) VALUES " + strings.Join(vals, ", ")
	if err := q.conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("record the partials of %s, %s: %w", q.model, what, err)
	}
	// kept is now what the manifest says.
	for i, b := range buckets {
		kept[b] = bucketState{rows: now[b].rows, newest: now[b].newest, version: versions[i], written: now[b].written}
	}
	return nil
}

// bucketAggregation is one aggregate statement's buckets: their partials
// computed from the rows of withRows (the others have none) under
// versions.
type bucketAggregation struct {
	p                 *partials
	buckets, withRows []int64
	versions          []uint64
	now               map[int64]bucketState
	need              map[string]float64
	what              string
	// bounds is each (bucket, numeric feature)'s sample bound, as
	// binnedSQL puts it into the statement.
	bounds map[bucketFeature]float64
}

// rows is a querier over the rows of the buckets with rows, bucketed.
func (a *bucketAggregation) rows() *querier {
	q, ms := a.p.q, a.p.bucket.Milliseconds()
	rowIDs := make([]string, len(a.withRows))
	for i, b := range a.withRows {
		rowIDs[i] = strconv.FormatInt(b, 10)
	}
	return &querier{conn: q.conn, model: q.model, ref: q.ref, opts: q.opts, curOnly: true, bucketMs: ms,
		cur:   Span{Start: time.UnixMilli(a.withRows[0] * ms).UTC(), End: time.UnixMilli((a.withRows[len(a.withRows)-1] + 1) * ms).UTC()},
		where: fmt.Sprintf(" AND %s IN (%s)", fmt.Sprintf("intDiv(toUnixTimestamp64Milli(timestamp), %d)", ms), strings.Join(rowIDs, ", "))}
}

// binnedSQL is the FROM clause of the numeric values of bq's rows binned
// on the reference's edges, each with its bucket b, feature idx (1-based,
// of names), bin, hash h and keep (below its bucket's sample bound,
// bound); and the expressions of out-of-range and of the bound. Empty
// without numeric features.
func (a *bucketAggregation) binnedSQL(ctx context.Context, bq *querier) (r binnedRows, bound string, names []string, err error) {
	p, q := a.p, a.p.q
	num := p.ref.numeric
	if len(num) == 0 {
		return binnedRows{}, "", nil, nil
	}
	// Each bucket's values of a feature set its sample bound. Counted,
	// or (with the shares of the buckets cached) estimated from its rows:
	// a bound too low for the window is found short and raised
	// (numeric), so the estimate costs at most an aggregation again,
	// never a wrong sample.
	var counts map[bucketFeature]int64
	if q.opts.Samples && p.shares != nil {
		counts = map[bucketFeature]int64{}
		for _, b := range a.withRows {
			for _, n := range num {
				counts[bucketFeature{b, n.Feature}] = int64(math.Round(float64(a.now[b].rows) * p.shares[n.Feature]))
			}
		}
	} else if q.opts.Samples {
		if counts, err = bq.bucketCounts(ctx); err != nil {
			return binnedRows{}, "", nil, err
		}
	}
	// The bound of (bucket b, feature idx) is looked up by
	// (b − first) · (features + 1) + idx.
	var keys, bounds []string
	names = make([]string, len(num))
	a.bounds = make(map[bucketFeature]float64, len(num)*len(a.withRows))
	for i, n := range num {
		names[i] = chsql.String(n.Feature)
		for _, b := range a.withRows {
			u := partialBound(q.opts, counts[bucketFeature{b, n.Feature}], p.buckets)
			if a.need != nil {
				u = max(u, a.need[n.Feature])
			}
			a.bounds[bucketFeature{b, n.Feature}] = u
			keys = append(keys, strconv.FormatInt((b-a.withRows[0])*int64(len(num)+1)+int64(i+1), 10))
			bounds = append(bounds, strconv.FormatFloat(u, 'g', -1, 64))
		}
	}
	bound = fmt.Sprintf("transform(toUInt64(b - %d) * %d + idx, CAST([%s], 'Array(UInt64)'), CAST([%s], 'Array(Float64)'), toFloat64(0))",
		a.withRows[0], len(num)+1, strings.Join(keys, ", "), strings.Join(bounds, ", "))
	return bq.binned(num, nil, nil, true, "h < "+bound), bound, names, nil
}

// categoriesSQL selects b, k (the feature), v (the category) and the rows
// of each category of bq's rows per bucket, the prediction label as
// LabelFeature.
func categoriesSQL(bq *querier, cols string) string {
	return fmt.Sprintf("SELECT %[1]s, k, v, count() FROM (SELECT b, k, v FROM (SELECT %[4]s AS b, features_categorical %[2]s) "+
		"ARRAY JOIN mapKeys(features_categorical) AS k, mapValues(features_categorical) AS v "+
		"UNION ALL SELECT %[4]s AS b, %[3]s AS k, assumeNotNull(prediction_label) AS v %[2]s AND prediction_label IS NOT NULL) GROUP BY b, k, v",
		cols, bq.base(), chsql.String(LabelFeature), bq.bucketOf())
}

// inServer computes the partials inside ClickHouse (INSERT … SELECT): the
// way without a BucketCache, which would read them back.
func (a *bucketAggregation) inServer(ctx context.Context, ids []string) error {
	p, q := a.p, a.p.q
	bq := a.rows()
	bucketIDs := "CAST([" + strings.Join(ids, ", ") + "], 'Array(Int64)')"
	versionOf := fmt.Sprintf("transform(b, %s, CAST([%s], 'Array(UInt64)'), toUInt64(0))", bucketIDs, joinUints(a.versions))
	cols := fmt.Sprintf("%s, %d, fromUnixTimestamp64Milli(toInt64(b * %d), 'UTC'), %d, %s", chsql.String(q.model), p.key, p.bucket.Milliseconds(), p.bucketSeconds(), versionOf)
	r, bound, names, err := a.binnedSQL(ctx, bq)
	if err != nil {
		return err
	}
	// The bins and the categories are aggregated side by side.
	var g errgroup.Group
	if names != nil {
		sql := fmt.Sprintf("INSERT INTO window_partial_bins (model_id, profile_key, bucket_start, bucket_seconds, version, feature, bin, n, out_of_range, sample_bound, sample_h, sample_v) "+
			"SELECT %s, arrayElement([%s], idx), bin, count(), countIf(%s), any(%s), groupArrayIf(h, keep), groupArrayIf(v, keep) FROM %s GROUP BY b, idx, bin",
			cols, strings.Join(names, ", "), r.outside, bound, r.from)
		g.Go(func() error {
			if err := q.conn.Exec(ctx, sql); err != nil {
				return fmt.Errorf("aggregate bin partials of %s, %s: %w", q.model, a.what, err)
			}
			return nil
		})
	}
	sql := "INSERT INTO window_partial_categories (model_id, profile_key, bucket_start, bucket_seconds, version, feature, category, n) " + categoriesSQL(bq, cols)
	g.Go(func() error {
		if err := q.conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("aggregate category partials of %s, %s: %w", q.model, a.what, err)
		}
		return nil
	})
	return g.Wait()
}

// bucketFeature names one feature's values in one bucket.
type bucketFeature struct {
	bucket  int64
	feature string
}

// bucketCounts counts the values of every numeric feature (and the score)
// per bucket of the rows q reads (bucketMs set).
func (q *querier) bucketCounts(ctx context.Context) (map[bucketFeature]int64, error) {
	sql := fmt.Sprintf("SELECT b, k, count() FROM (SELECT %[3]s AS b, features_numeric.keys AS ks %[1]s) ARRAY JOIN ks AS k GROUP BY b, k "+
		"UNION ALL SELECT %[3]s AS b, %[2]s, count() %[1]s AND prediction_score IS NOT NULL GROUP BY b", q.base(), chsql.String(ScoreFeature), q.bucketOf())
	rows, err := q.conn.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("bucket counts of %s: %w", q.model, err)
	}
	defer rows.Close()
	out := map[bucketFeature]int64{}
	for rows.Next() {
		var (
			b int64
			k string
			n uint64
		)
		if err := rows.Scan(&b, &k, &n); err != nil {
			return nil, fmt.Errorf("read bucket counts of %s: %w", q.model, err)
		}
		out[bucketFeature{b, k}] = int64(n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read bucket counts of %s: %w", q.model, err)
	}
	return out, nil
}

func joinUints(xs []uint64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatUint(x, 10)
	}
	return strings.Join(parts, ", ")
}

// partialBound is the hash below which a bucket of n values of a feature
// keeps them: sampleSlack times the rate a window of buckets such buckets
// would sample at, 1 (all) when that window holds at most SampleCap.
func partialBound(opts Options, n int64, buckets int64) float64 {
	if !opts.Samples || n == 0 {
		return 0
	}
	return min(1, sampleSlack*sampleRate(opts.SampleCap, n*buckets))
}

// partialKey hashes what a pinned Reference's partials depend on: the
// numeric features with their edges and range, and the options.
func (r *Reference) partialKey() uint64 {
	h := fnv.New64a()
	var buf [8]byte
	word := func(x uint64) {
		binary.LittleEndian.PutUint64(buf[:], x)
		h.Write(buf[:])
	}
	str := func(s string) {
		word(uint64(len(s)))
		h.Write([]byte(s))
	}
	word(uint64(r.opts.Bins))
	word(uint64(r.opts.SampleCap))
	word(map[bool]uint64{false: 0, true: 1}[r.opts.Samples])
	for _, n := range r.numeric {
		str(n.Feature)
		word(uint64(len(n.Edges)))
		for _, e := range n.Edges {
			word(math.Float64bits(e))
		}
		word(math.Float64bits(n.RefMin))
		word(math.Float64bits(n.RefMax))
	}
	return h.Sum64() >> 1 // fits a signed 64-bit column reader too
}

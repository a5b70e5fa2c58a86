package window

import (
	"cmp"
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"golang.org/x/sync/errgroup"

	"github.com/driftwatch/driftwatch/internal/chsql"
)

// BucketCache keeps one model's per-bucket partials (window_partial_bins)
// in memory between steps, so that a step reads only the buckets whose
// partials are new (a new bucket, late events, a raised sample bound)
// instead of merging every bucket's sampled values in ClickHouse. A
// bucket's partials are immutable under their version, so the cache only
// memoises: the snapshot is the one the ClickHouse merge gives.
//
// Each numeric feature's cached sampled values are kept merged, sorted by
// value, with their event hash and bucket: a step drops the buckets that
// left the window, merges in the new ones and filters by the window's
// rate, all linear passes.
//
// A BucketCache is safe for concurrent use; the monitor keeps one per
// model within a byte budget (window_cache_mb).
type BucketCache struct {
	mu      sync.Mutex
	key     uint64 // the Reference's partialKey
	model   string
	bucket  time.Duration
	buckets map[int64]*cachedBucket
	feats   map[string]*cachedValues
	// cats sums the cached buckets' category counts: feature → category
	// → rows (no zero counts).
	cats  map[string]map[string]int64
	bytes int64
	// unwritten are the buckets aggregated into the cache whose partials
	// are not written yet (see WriteEvery), conn what they go through.
	unwritten  map[int64]*unwrittenBucket
	conn       driver.Conn
	writeEvery int
	// dying marks the buckets dropped whose sampled values are still in
	// feats (see dropLater); nil for none.
	dying *[1 << 16]bool
}

// cachedBucket is one bucket's partials at one version.
type cachedBucket struct {
	version uint64
	rows    uint64 // the manifest's, with newest and written
	newest  time.Time
	written uint64
	feats   map[string]*bucketPart
	cats    []catCount
}

// catCount is one category's rows in one bucket.
type catCount struct {
	feature, category string
	n                 int64
}

// bucketPart is one feature's partials in one bucket.
type bucketPart struct {
	n, outside int64
	bins       map[uint32]int64
	bound      float64 // the least sample_bound of its rows
}

// cachedValues are one feature's sampled values of every cached bucket,
// ascending by value (cmp.Compare), aligned arrays.
type cachedValues struct {
	v, h []float64
	b    []uint16 // bucket index mod 2^16: unique within MaxBuckets
	// front is the values' offset in their arrays: merge moves their
	// start as it drops the dying buckets' (account counts it).
	front int
}

// NewBucketCache returns an empty cache.
func NewBucketCache() *BucketCache { return &BucketCache{writeEvery: DefaultWriteBuckets} }

// Bytes estimates the memory the cache holds.
func (c *BucketCache) Bytes() int64 {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

// reset empties the cache for other partials.
func (c *BucketCache) reset(model string, key uint64, bucket time.Duration) {
	c.model, c.key, c.bucket = model, key, bucket
	c.buckets = map[int64]*cachedBucket{}
	c.feats = map[string]*cachedValues{}
	c.cats = map[string]map[string]int64{}
	c.bytes = 0
	c.unwritten = nil
	c.dying = nil
}

// prepare empties the cache when it holds other partials than p's.
func (c *BucketCache) prepare(p *partials) {
	if c.model != p.q.model || c.key != p.key || c.bucket != p.bucket || c.buckets == nil {
		c.reset(p.q.model, p.key, p.bucket)
	}
}

// sync makes the cache hold exactly the partials of kept (the manifest of
// the current window: bucket → version), reading the missing ones.
func (c *BucketCache) sync(ctx context.Context, p *partials, kept map[int64]bucketState) error {
	c.prepare(p)
	c.compact()
	var gone []int64
	for b, cb := range c.buckets {
		if k, ok := kept[b]; !ok || k.version != cb.version {
			gone = append(gone, b)
		}
	}
	var want []int64
	for b, k := range kept {
		if cb, ok := c.buckets[b]; !ok || cb.version != k.version {
			want = append(want, b)
		}
	}
	c.drop(gone)
	if len(want) > 0 {
		if err := c.read(ctx, p, want, kept); err != nil {
			// What was read is incomplete: start again next time.
			c.reset(p.q.model, p.key, p.bucket)
			return err
		}
	}
	c.account()
	return nil
}

// drop removes buckets from the cache: their partials, their category
// counts and their sampled values.
func (c *BucketCache) drop(gone []int64) {
	if len(gone) == 0 {
		return // the dying buckets' values wait for the merge
	}
	c.dropLater(gone)
	c.compact()
}

// dropLater removes buckets from the cache but for their sampled values,
// which the next merge (in the pass it makes anyway) or compact removes;
// until then nothing reads the values.
func (c *BucketCache) dropLater(gone []int64) {
	for _, b := range gone {
		cb := c.buckets[b]
		if cb == nil {
			continue
		}
		delete(c.unwritten, b)
		if c.dying == nil {
			c.dying = new([1 << 16]bool)
		}
		c.dying[uint16(b)] = true
		for _, cc := range cb.cats {
			m := c.cats[cc.feature]
			if m[cc.category] -= cc.n; m[cc.category] == 0 {
				delete(m, cc.category)
			}
		}
		delete(c.buckets, b)
	}
}

// compact removes the dying buckets' sampled values.
func (c *BucketCache) compact() {
	dying := c.dying
	if dying == nil {
		return
	}
	c.dying = nil
	compactions.Add(1)
	eachFeature(c.feats, func(f *cachedValues) { f.compact(dying) })
}

// compactions counts the passes of compact, which a step that merges a
// new bucket makes none of (tests read it).
var compactions atomic.Int64

// compact removes the values of the dying buckets, in place.
func (f *cachedValues) compact(dying *[1 << 16]bool) {
	w := 0
	for i := range f.v {
		if !dying[f.b[i]] {
			f.v[w], f.h[w], f.b[w] = f.v[i], f.h[i], f.b[i]
			w++
		}
	}
	f.v, f.h, f.b = f.v[:w], f.h[:w], f.b[:w]
}

// dropOutside drops the buckets outside p's window, which sync would
// drop: throughCache does so while the new buckets' statements run, and
// their values go in the merge that follows. The cache is locked.
func (c *BucketCache) dropOutside(p *partials) {
	if c.model != p.q.model || c.key != p.key || c.bucket != p.bucket {
		return // prepare resets it
	}
	ms := p.bucket.Milliseconds()
	from, to := p.q.cur.Start.UnixMilli(), p.q.cur.End.UnixMilli()
	var gone []int64
	for b := range c.buckets {
		if b*ms < from || b*ms >= to {
			gone = append(gone, b)
		}
	}
	c.dropLater(gone)
}

// account estimates the bytes the cache holds.
func (c *BucketCache) account() {
	c.bytes = 0
	for _, f := range c.feats {
		c.bytes += 18*int64(cap(f.v)+f.front) + 64
	}
	for _, cb := range c.buckets {
		c.bytes += 64 + 64*int64(len(cb.feats)) + 40*int64(len(cb.cats))
		for _, bf := range cb.feats {
			c.bytes += 24 * int64(len(bf.bins))
		}
	}
	for _, m := range c.cats {
		for k := range m {
			c.bytes += 48 + int64(len(k)) // the key is shared with a bucket's
		}
	}
}

// eachFeature runs fn on every feature's values, on all CPUs.
func eachFeature(feats map[string]*cachedValues, fn func(*cachedValues)) {
	all := make([]*cachedValues, 0, len(feats))
	for _, f := range feats {
		all = append(all, f)
	}
	parallel(len(all), func(i int) { fn(all[i]) })
}

// parallel runs fn(0) … fn(n-1) on all CPUs.
func parallel(n int, fn func(int)) {
	var wg sync.WaitGroup
	var next atomic.Int64
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// shares is, per numeric feature, its values per row over the cached
// buckets; nil when the cache holds no rows. aggregate estimates a new
// bucket's values from it instead of counting them.
func (c *BucketCache) shares() map[string]float64 {
	var rows uint64
	n := map[string]int64{}
	for _, cb := range c.buckets {
		rows += cb.rows
		for f, bf := range cb.feats {
			n[f] += bf.n
		}
	}
	if rows == 0 {
		return nil
	}
	out := make(map[string]float64, len(n))
	for f, x := range n {
		out[f] = float64(x) / float64(rows)
	}
	return out
}

// read loads the partials of buckets at their versions in kept and merges
// their sampled values in.
func (c *BucketCache) read(ctx context.Context, p *partials, buckets []int64, kept map[int64]bucketState) error {
	q := p.q
	slices.Sort(buckets)
	ms := p.bucket.Milliseconds()
	keys := make([]string, len(buckets))
	for i, b := range buckets {
		keys[i] = fmt.Sprintf("(%s, %d)", chsql.Time(time.UnixMilli(b*ms).UTC()), kept[b].version)
		k := kept[b]
		c.buckets[b] = &cachedBucket{version: k.version, rows: k.rows, newest: k.newest, written: k.written, feats: map[string]*bucketPart{}}
	}
	where := fmt.Sprintf("model_id = %s AND profile_key = %d AND bucket_seconds = %d AND bucket_start >= %s AND bucket_start <= %s AND (bucket_start, version) IN (%s)",
		chsql.String(q.model), p.key, p.bucketSeconds(), chsql.Time(time.UnixMilli(buckets[0]*ms).UTC()), chsql.Time(time.UnixMilli(buckets[len(buckets)-1]*ms).UTC()), strings.Join(keys, ", "))
	if err := c.readCategories(ctx, p, where); err != nil {
		return err
	}
	if len(p.ref.numeric) == 0 {
		return nil
	}
	// Each row's values sorted (their hashes with them), the rows in
	// bucket and bin order: a bin holds values of its own range, so one
	// bucket's rows of a feature come already sorted.
	sql := "SELECT toUnixTimestamp64Milli(bucket_start), feature, bin, n, out_of_range, sample_bound, " +
		"CAST(arrayReduce('groupArrayState', arraySort((h, v) -> v, sample_h, sample_v)) AS String), CAST(arrayReduce('groupArrayState', arraySort(sample_v)) AS String) FROM window_partial_bins " +
		"WHERE " + where + " ORDER BY feature, bucket_start, bin"
	rows, err := q.conn.Query(ctx, sql)
	if err != nil {
		return fmt.Errorf("read the partials of %d buckets of %s: %w", len(buckets), q.model, err)
	}
	defer rows.Close()
	added := map[string][]cacheEntry{}
	for rows.Next() {
		var (
			bms        int64
			f          string
			bin        uint32
			n, outside uint64
			bound      float64
			hb, vb     string
		)
		if err := rows.Scan(&bms, &f, &bin, &n, &outside, &bound, &hb, &vb); err != nil {
			return fmt.Errorf("read the partials of %d buckets of %s: %w", len(buckets), q.model, err)
		}
		part, err := decodePart(bms/ms, f, bin, n, outside, bound, hb, vb)
		if err != nil {
			return fmt.Errorf("read the partials of %s: %w", q.model, err)
		}
		if err := c.addPart(added, part); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read the partials of %d buckets of %s: %w", len(buckets), q.model, err)
	}
	c.merge(added)
	return nil
}

// cacheEntry is one sampled value being merged into a feature's
// cachedValues.
type cacheEntry struct {
	v, h float64
	b    uint16
}

// partRow is one row of window_partial_bins: a bucket's values of a
// feature in a bin, the sampled ones ascending with their hashes.
type partRow struct {
	bucket     int64 // index: bucket_start / the bucket width
	feature    string
	bin        uint32
	n, outside uint64
	bound      float64
	hs, vs     []float64
	idx        int // the feature's, 1-based in the Reference's numeric (binRows)
}

// decodePart is the partRow of a row whose sampled hashes and values
// (sorted by value) are serialised groupArray states.
func decodePart(bucket int64, feature string, bin uint32, n, outside uint64, bound float64, hb, vb string) (partRow, error) {
	hs, err := decodeFloats(hb)
	if err != nil {
		return partRow{}, fmt.Errorf("sampled hashes of %s: %w", feature, err)
	}
	vs, err := decodeFloats(vb)
	if err != nil {
		return partRow{}, fmt.Errorf("sampled values of %s: %w", feature, err)
	}
	if len(hs) != len(vs) {
		return partRow{}, fmt.Errorf("BUG: partial of bucket %d feature %s holds %d hashes and %d values", bucket, feature, len(hs), len(vs))
	}
	return partRow{bucket: bucket, feature: feature, bin: bin, n: n, outside: outside, bound: bound, hs: hs, vs: vs}, nil
}

// addPart adds one row of a bucket just added to c.buckets; its sampled
// values go to added until merge.
func (c *BucketCache) addPart(added map[string][]cacheEntry, r partRow) error {
	cb := c.buckets[r.bucket]
	if cb == nil {
		return fmt.Errorf("BUG: partial of %s in bucket %d, which was not asked for", c.model, r.bucket)
	}
	bf := cb.feats[r.feature]
	if bf == nil {
		bf = &bucketPart{bins: map[uint32]int64{}, bound: r.bound}
		cb.feats[r.feature] = bf
	}
	bf.n += int64(r.n)
	bf.outside += int64(r.outside)
	bf.bins[r.bin] += int64(r.n)
	bf.bound = min(bf.bound, r.bound)
	es := added[r.feature]
	for i := range r.vs {
		es = append(es, cacheEntry{r.vs[i], r.hs[i], uint16(r.bucket)})
	}
	added[r.feature] = es
	return nil
}

// merge merges the sampled values added into each feature's, and drops
// the dying buckets' values in the same pass, on all CPUs.
func (c *BucketCache) merge(added map[string][]cacheEntry) {
	type merge struct {
		cv *cachedValues
		es []cacheEntry
	}
	var merges []merge
	for f, es := range added {
		cv := c.feats[f]
		if cv == nil {
			cv = &cachedValues{}
			c.feats[f] = cv
		}
		merges = append(merges, merge{cv, es})
	}
	dying := c.dying
	c.dying = nil
	if dying != nil {
		for f, cv := range c.feats {
			if _, ok := added[f]; !ok {
				merges = append(merges, merge{cv, nil})
			}
		}
	}
	parallel(len(merges), func(i int) {
		cv, es := merges[i].cv, merges[i].es
		switch {
		case len(es) == 0 && dying != nil:
			cv.compact(dying)
		case len(es) > 0:
			// One bucket's rows of a feature come sorted (bins are
			// ascending ranges); several buckets' do not.
			if !slices.IsSortedFunc(es, func(a, b cacheEntry) int { return cmp.Compare(a.v, b.v) }) {
				slices.SortFunc(es, func(a, b cacheEntry) int { return cmp.Compare(a.v, b.v) })
			}
			cv.merge(es, dying)
		}
	})
}

// merge merges es (ascending) into the values, dropping the dying
// buckets' (dying may be nil). In place, from the back: the values end
// where the merged arrays would, and start as far on as values were
// dropped (front); no new arrays per step, and one pass over the values
// for both the merge and the drop.
func (cv *cachedValues) merge(es []cacheEntry, dying *[1 << 16]bool) {
	old, n := len(cv.v), len(cv.v)+len(es)
	if cap(cv.v) < n || cap(cv.h) < n || cap(cv.b) < n {
		// New arrays, a quarter to spare (as append grows a large
		// slice), the values at their start.
		c := n + n/4
		v, h, b := make([]float64, old, c), make([]float64, old, c), make([]uint16, old, c)
		copy(v, cv.v)
		copy(h, cv.h)
		copy(b, cv.b)
		cv.v, cv.h, cv.b, cv.front = v, h, b, 0
	}
	cv.v, cv.h, cv.b = cv.v[:n], cv.h[:n], cv.b[:n]
	// k − i is the entries of es not yet written plus the values dropped
	// so far: never negative, so a write never lands on a value not read.
	k, i := n-1, old-1
	for j := len(es) - 1; j >= 0; {
		if i >= 0 && above(cv.v[i], es[j].v) {
			if dying == nil || !dying[cv.b[i]] {
				cv.v[k], cv.h[k], cv.b[k] = cv.v[i], cv.h[i], cv.b[i]
				k--
			}
			i--
			continue
		}
		cv.v[k], cv.h[k], cv.b[k] = es[j].v, es[j].h, es[j].b
		k--
		j--
	}
	if dying == nil {
		return // the values below es's stay where they are (k == i)
	}
	for ; i >= 0; i-- {
		if !dying[cv.b[i]] {
			cv.v[k], cv.h[k], cv.b[k] = cv.v[i], cv.h[i], cv.b[i]
			k--
		}
	}
	start := k + 1
	cv.v, cv.h, cv.b = cv.v[start:], cv.h[start:], cv.b[start:]
	cv.front += start
}

// above is cmp.Compare(x, y) > 0 (NaN below every number) without its
// call: x > y, or y NaN and x not.
func above(x, y float64) bool { return x > y || y != y && x == x }

// addCategory adds one category count of a bucket just added to
// c.buckets.
func (c *BucketCache) addCategory(bucket int64, f, v string, n uint64) error {
	cb := c.buckets[bucket]
	if cb == nil {
		return fmt.Errorf("BUG: category partial of %s in bucket %d, which was not asked for", c.model, bucket)
	}
	cb.cats = append(cb.cats, catCount{f, v, int64(n)})
	m := c.cats[f]
	if m == nil {
		m = map[string]int64{}
		c.cats[f] = m
	}
	m[v] += int64(n)
	return nil
}

// readCategories loads the category partials of the buckets where selects
// (just added to c.buckets) and adds them to the totals.
func (c *BucketCache) readCategories(ctx context.Context, p *partials, where string) error {
	q := p.q
	ms := p.bucket.Milliseconds()
	rows, err := q.conn.Query(ctx, "SELECT toUnixTimestamp64Milli(bucket_start), feature, category, n FROM window_partial_categories WHERE "+where)
	if err != nil {
		return fmt.Errorf("read the category partials of %s: %w", q.model, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			bms  int64
			f, v string
			n    uint64
		)
		if err := rows.Scan(&bms, &f, &v, &n); err != nil {
			return fmt.Errorf("read the category partials of %s: %w", q.model, err)
		}
		if err := c.addCategory(bms/ms, f, v, n); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read the category partials of %s: %w", q.model, err)
	}
	return nil
}

// categoryRows is the current window's rows of rankCategories (r = 0)
// from the cached totals: per feature (in order), its MaxCategories most
// frequent categories (then by category), and the rest summed into one
// folded row; with each feature's distinct categories.
func (c *BucketCache) categoryRows(maxCategories int) ([]catRow, map[string]catStats) {
	feats := make([]string, 0, len(c.cats))
	for f, m := range c.cats {
		if len(m) > 0 {
			feats = append(feats, f)
		}
	}
	slices.Sort(feats)
	var out []catRow
	stats := make(map[string]catStats, len(feats))
	for _, f := range feats {
		m := c.cats[f]
		rows := make([]catRow, 0, len(m))
		for v, n := range m {
			rows = append(rows, catRow{feature: f, category: v, cur: n})
		}
		slices.SortFunc(rows, func(a, b catRow) int {
			if a.cur != b.cur {
				return cmp.Compare(b.cur, a.cur)
			}
			return strings.Compare(a.category, b.category)
		})
		if len(rows) > maxCategories {
			folded := catRow{feature: f, folded: true}
			for _, r := range rows[maxCategories:] {
				folded.cur += r.cur
			}
			rows = append(rows[:maxCategories], folded)
		}
		out = append(out, rows...)
		stats[f] = catStats{distinct: int64(len(m)), cur: int64(len(m))}
	}
	return out, stats
}

// fromCache is partials.numeric and the current window's category rows
// (rankCategories) from the cache: the same counts, bins, out-of-range
// counts, samples and categories, reading only the partials the cache
// lacks. kept is the manifest of the current window (aggregate keeps it
// current). The cache is locked.
func (p *partials) fromCache(ctx context.Context, c *BucketCache, now, kept map[int64]bucketState, prog *Progress) ([]Numeric, []catRow, map[string]catStats, error) {
	q := p.q
	var out []Numeric // nil without features, as numericEdges
	if len(p.ref.numeric) > 0 {
		out = make([]Numeric, len(p.ref.numeric))
	}
	for i, n := range p.ref.numeric {
		n.CurBins = make([]int64, len(n.RefBins))
		out[i] = n
	}
	if err := c.sync(ctx, p, kept); err != nil {
		return nil, nil, nil, err
	}
	rates := make([]float64, len(out))
	for i := range out {
		for _, cb := range c.buckets {
			if bf := cb.feats[out[i].Feature]; bf != nil {
				out[i].CurN += bf.n
			}
		}
		rates[i] = sampleRate(q.opts.SampleCap, out[i].CurN)
	}
	if q.opts.Samples && len(out) > 0 {
		// Buckets whose kept values fall short of a feature's rate, as in
		// numeric.
		short := map[int64]map[string]float64{}
		for b, cb := range c.buckets {
			for i, n := range out {
				if bf := cb.feats[n.Feature]; bf != nil && bf.bound < rates[i] {
					if short[b] == nil {
						short[b] = map[string]float64{}
					}
					short[b][n.Feature] = min(1, sampleSlack*rates[i])
				}
			}
		}
		if len(short) > 0 {
			for b, need := range short {
				if err := p.aggregate(ctx, []int64{b}, now, kept, need); err != nil {
					return nil, nil, nil, err
				}
				prog.Aggregated++
			}
			if err := c.sync(ctx, p, kept); err != nil {
				return nil, nil, nil, err
			}
		}
	}
	var bug error
	var bugOnce sync.Once
	parallel(len(out), func(i int) {
		x := &out[i]
		for _, cb := range c.buckets {
			bf := cb.feats[x.Feature]
			if bf == nil {
				continue
			}
			x.CurOutOfRange += bf.outside
			for bin, n := range bf.bins {
				if int(bin) >= len(x.CurBins) {
					bugOnce.Do(func() { bug = fmt.Errorf("BUG: bin %d of %s beyond %d edges", bin, x.Feature, len(x.Edges)) })
					return
				}
				x.CurBins[bin] += n
			}
		}
		if !q.opts.Samples {
			return
		}
		if cv := c.feats[x.Feature]; cv != nil {
			x.CurValues, x.CurCounts = compressBelow(cv.v, cv.h, rates[i])
		}
		x.SampledCur = x.CurN > int64(q.opts.SampleCap)
	})
	if bug != nil {
		return nil, nil, nil, bug
	}
	rows, stats := c.categoryRows(q.opts.MaxCategories)
	return out, rows, stats, nil
}

// compressBelow is compress of the values (ascending) whose hash is below
// rate. The filter is branch-free (a value is written at every step, the
// write index moved by the comparison): about a fifth of a cache's values
// are above the rate, at random, and a branch on it mispredicts that often
// (BenchmarkCompressBelow: 0.46 ms against 0.83 for two branching passes
// over 125,000 values). The result's arrays hold up to len(vs) values.
func compressBelow(vs, hs []float64, rate float64) ([]float64, []int64) {
	if len(hs) != len(vs) {
		panic("BUG: compressBelow of unaligned values and hashes")
	}
	v := make([]float64, len(vs)+1) // one spare: the last write may be a value above the rate
	w := 0
	for k, h := range hs {
		v[w] = vs[k]
		in := 0
		if h < rate {
			in = 1
		}
		w += in
	}
	if w == 0 {
		return nil, nil
	}
	c := make([]int64, w)
	n := 0
	for _, x := range v[:w] {
		if n > 0 && x == v[n-1] {
			c[n-1]++
			continue
		}
		v[n], c[n] = x, 1
		n++
	}
	return v[:n:n], c[:n:n]
}

// throughCache computes the buckets' partials with one SELECT for the
// bins and one for the categories, whose rows come back to the monitor:
// they go into the cache (the buckets' older versions out), which writes
// them to window_partial_bins and window_partial_categories later (see
// WriteEvery). They are the rows inServer's INSERT … SELECT writes (the
// sampled values sorted), but a step's aggregation is one round trip. The
// cache is locked.
func (a *bucketAggregation) throughCache(ctx context.Context) (err error) {
	p, q, c := a.p, a.p.q, a.p.cache
	defer func() {
		if err != nil {
			// What it holds may be half added: start again next time.
			c.reset(q.model, p.key, p.bucket)
		}
	}()
	bq := a.rows()
	r, bound, names, err := a.binnedSQL(ctx, bq)
	if err != nil {
		return err
	}
	var (
		bins []partRow
		cats []catPart
		g    errgroup.Group
	)
	if names != nil && a.codesApply() {
		g.Go(func() error {
			var err error
			bins, err = a.codeBins(ctx, bq, bound)
			return err
		})
	} else if names != nil && a.valuesAtMost(maxRowValues) {
		// The rows' numeric values come back as they are, a few
		// serialised arrays per bucket, and are binned and sampled here:
		// the same counts, bins and samples as binnedSQL's GROUP BY
		// (which inServer runs), for about half the server's time.
		g.Go(func() error {
			var err error
			if a.unmerged() {
				// Read without FINAL, and kept only if every bucket's
				// rows are the ones counted: a row inserted since, a
				// duplicate among them, reads again under FINAL.
				ub := *bq
				ub.unmerged = true
				var rows map[int64]int
				if bins, rows, err = a.rowValues(ctx, &ub); err != nil {
					return err
				}
				same := len(rows) == len(a.withRows)
				for _, b := range a.withRows {
					same = same && uint64(rows[b]) == a.now[b].rows
				}
				if same {
					return a.sortBins(bins)
				}
				unmergedRetries.Add(1)
			}
			if bins, _, err = a.rowValues(ctx, bq); err != nil {
				return err
			}
			return a.sortBins(bins)
		})
	} else if names != nil {
		g.Go(func() error {
			var err error
			bins, err = a.serverBins(ctx, r, bound)
			return err
		})
	}
	g.Go(func() error {
		rows, err := q.conn.Query(ctx, categoriesSQL(bq, "b"))
		if err != nil {
			return fmt.Errorf("aggregate category partials of %s, %s: %w", q.model, a.what, err)
		}
		defer rows.Close()
		for rows.Next() {
			var cp catPart
			if err := rows.Scan(&cp.bucket, &cp.feature, &cp.category, &cp.n); err != nil {
				return fmt.Errorf("aggregate category partials of %s, %s: %w", q.model, a.what, err)
			}
			cats = append(cats, cp)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("aggregate category partials of %s, %s: %w", q.model, a.what, err)
		}
		return nil
	})
	// While the server aggregates: the buckets that left the window.
	c.dropOutside(p)
	if err := g.Wait(); err != nil {
		return err
	}
	if err := a.install(bins, cats); err != nil {
		return err
	}
	return nil
}

// unmerged tells whether the buckets' rows may be read without FINAL:
// when every bucket's rows counted under FINAL are the rows written into
// it (the rollup's count), it holds no duplicate, and FINAL, which costs
// about a fifth of the statement, would merge nothing. rowValues' caller
// still checks the rows it reads against the count.
func (a *bucketAggregation) unmerged() bool {
	if len(a.withRows) == 0 {
		return false
	}
	for _, b := range a.withRows {
		if st := a.now[b]; st.written == 0 || st.written != st.rows {
			return false
		}
	}
	return true
}

// unmergedRetries counts the reads without FINAL that did not find the
// rows counted and were read again under FINAL (tests read it).
var unmergedRetries atomic.Int64

// rowValues reads bq's rows with rowValuesSQL and bins them (binRows):
// the bins' partials and the rows read per bucket.
func (a *bucketAggregation) rowValues(ctx context.Context, bq *querier) ([]partRow, map[int64]int, error) {
	q := a.p.q
	rows, err := q.conn.Query(ctx, rowValuesSQL(bq, a.p.ref.numeric))
	if err != nil {
		return nil, nil, fmt.Errorf("aggregate bin partials of %s, %s: %w", q.model, a.what, err)
	}
	defer rows.Close()
	var bins []partRow
	read := map[int64]int{}
	for rows.Next() {
		var (
			b              int64
			hb, lb, ib, vb string
		)
		if err := rows.Scan(&b, &hb, &lb, &ib, &vb); err != nil {
			return nil, nil, fmt.Errorf("aggregate bin partials of %s, %s: %w", q.model, a.what, err)
		}
		parts, n, err := a.binRows(b, hb, lb, ib, vb, q.opts.Bins-1)
		if err != nil {
			return nil, nil, fmt.Errorf("aggregate bin partials of %s, %s: %w", q.model, a.what, err)
		}
		read[b] = n
		bins = append(bins, parts...)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("aggregate bin partials of %s, %s: %w", q.model, a.what, err)
	}
	return bins, read, nil
}

// sortBins puts rowValues' partials in binnedSQL's order: by feature,
// then bucket, then bin.
func (a *bucketAggregation) sortBins(bins []partRow) error {
	slices.SortStableFunc(bins, func(x, y partRow) int {
		if c := cmp.Compare(x.idx, y.idx); c != 0 {
			return c
		}
		return cmp.Compare(x.bucket, y.bucket)
	})
	return nil
}

// install puts the buckets' partials just aggregated into the cache, in
// place of their older versions, and keeps them as unwritten (see
// WriteEvery). The cache is locked.
func (a *bucketAggregation) install(bins []partRow, cats []catPart) error {
	p, c := a.p, a.p.cache
	c.prepare(p)
	var old []int64
	for _, b := range a.buckets {
		if _, ok := c.buckets[b]; ok {
			old = append(old, b)
		}
	}
	c.drop(old)
	un := make([]unwrittenBucket, len(a.buckets))
	at := make(map[int64]*unwrittenBucket, len(a.buckets))
	for i, b := range a.buckets {
		st := a.now[b]
		st.version = a.versions[i]
		c.buckets[b] = &cachedBucket{version: st.version, rows: st.rows, newest: st.newest, written: st.written, feats: map[string]*bucketPart{}}
		un[i] = unwrittenBucket{bucket: b, state: st}
		at[b] = &un[i]
	}
	for _, cp := range cats {
		if err := c.addCategory(cp.bucket, cp.feature, cp.category, cp.n); err != nil {
			return err
		}
		at[cp.bucket].cats = append(at[cp.bucket].cats, cp)
	}
	added := map[string][]cacheEntry{}
	for _, r := range bins {
		if err := c.addPart(added, r); err != nil {
			return err
		}
		at[r.bucket].bins = append(at[r.bucket].bins, r)
	}
	c.merge(added)
	c.keepUnwritten(a.p.q.conn, un)
	c.account()
	return nil
}

// catPart is one row of window_partial_categories.
type catPart struct {
	bucket            int64
	feature, category string
	n                 uint64
}

package window

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

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
	bytes   int64
}

// cachedBucket is one bucket's partials at one version.
type cachedBucket struct {
	version uint64
	feats   map[string]*bucketPart
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
}

// NewBucketCache returns an empty cache.
func NewBucketCache() *BucketCache { return &BucketCache{} }

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
	c.bytes = 0
}

// sync makes the cache hold exactly the partials of kept (the manifest of
// the current window: bucket → version), reading the missing ones.
func (c *BucketCache) sync(ctx context.Context, p *partials, kept map[int64]bucketState) error {
	if c.model != p.q.model || c.key != p.key || c.bucket != p.bucket || c.buckets == nil {
		c.reset(p.q.model, p.key, p.bucket)
	}
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
	if len(gone) > 0 {
		var drop [1 << 16]bool
		for _, b := range gone {
			drop[uint16(b)] = true
			delete(c.buckets, b)
		}
		for _, f := range c.feats {
			w := 0
			for i := range f.v {
				if !drop[f.b[i]] {
					f.v[w], f.h[w], f.b[w] = f.v[i], f.h[i], f.b[i]
					w++
				}
			}
			f.v, f.h, f.b = f.v[:w], f.h[:w], f.b[:w]
		}
	}
	if len(want) > 0 {
		if err := c.read(ctx, p, want, kept); err != nil {
			// What was read is incomplete: start again next time.
			c.reset(p.q.model, p.key, p.bucket)
			return err
		}
	}
	c.bytes = 0
	for _, f := range c.feats {
		c.bytes += 18*int64(cap(f.v)) + 64
	}
	for _, cb := range c.buckets {
		c.bytes += 64 + 64*int64(len(cb.feats))
		for _, bf := range cb.feats {
			c.bytes += 24 * int64(len(bf.bins))
		}
	}
	return nil
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
		c.buckets[b] = &cachedBucket{version: kept[b].version, feats: map[string]*bucketPart{}}
	}
	sql := fmt.Sprintf("SELECT toUnixTimestamp64Milli(bucket_start), feature, bin, n, out_of_range, sample_bound, "+
		"CAST(arrayReduce('groupArrayState', sample_h) AS String), CAST(arrayReduce('groupArrayState', sample_v) AS String) FROM window_partial_bins "+
		"WHERE model_id = %s AND profile_key = %d AND bucket_seconds = %d AND bucket_start >= %s AND bucket_start <= %s AND (bucket_start, version) IN (%s)",
		chsql.String(q.model), p.key, p.bucketSeconds(), chsql.Time(time.UnixMilli(buckets[0]*ms).UTC()), chsql.Time(time.UnixMilli(buckets[len(buckets)-1]*ms).UTC()), strings.Join(keys, ", "))
	rows, err := q.conn.Query(ctx, sql)
	if err != nil {
		return fmt.Errorf("read the partials of %d buckets of %s: %w", len(buckets), q.model, err)
	}
	defer rows.Close()
	type entry struct {
		v, h float64
		b    uint16
	}
	added := map[string][]entry{}
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
		hs, err := decodeFloats(hb)
		if err != nil {
			return fmt.Errorf("read the sampled hashes of %s: %w", q.model, err)
		}
		vs, err := decodeFloats(vb)
		if err != nil {
			return fmt.Errorf("read the sampled values of %s: %w", q.model, err)
		}
		if len(hs) != len(vs) {
			return fmt.Errorf("BUG: partial of %s bucket %d feature %s holds %d hashes and %d values", q.model, bms, f, len(hs), len(vs))
		}
		cb := c.buckets[bms/ms]
		if cb == nil {
			return fmt.Errorf("BUG: partial of %s in bucket %d, which was not asked for", q.model, bms)
		}
		bf := cb.feats[f]
		if bf == nil {
			bf = &bucketPart{bins: map[uint32]int64{}, bound: bound}
			cb.feats[f] = bf
		}
		bf.n += int64(n)
		bf.outside += int64(outside)
		bf.bins[bin] += int64(n)
		bf.bound = min(bf.bound, bound)
		es := added[f]
		for i := range vs {
			es = append(es, entry{vs[i], hs[i], uint16(bms / ms)})
		}
		added[f] = es
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read the partials of %d buckets of %s: %w", len(buckets), q.model, err)
	}
	for f, es := range added {
		slices.SortFunc(es, func(a, b entry) int { return cmp.Compare(a.v, b.v) })
		cv := c.feats[f]
		if cv == nil {
			cv = &cachedValues{}
			c.feats[f] = cv
		}
		// Merged in place from the back: no new arrays per step.
		old, n := len(cv.v), len(cv.v)+len(es)
		cv.v, cv.h, cv.b = slices.Grow(cv.v, len(es))[:n], slices.Grow(cv.h, len(es))[:n], slices.Grow(cv.b, len(es))[:n]
		for i, j, k := old-1, len(es)-1, n-1; j >= 0; k-- {
			if i >= 0 && cmp.Compare(cv.v[i], es[j].v) > 0 {
				cv.v[k], cv.h[k], cv.b[k] = cv.v[i], cv.h[i], cv.b[i]
				i--
				continue
			}
			cv.v[k], cv.h[k], cv.b[k] = es[j].v, es[j].h, es[j].b
			j--
		}
	}
	return nil
}

// numericCached is partials.numeric from the cache: the same counts,
// bins, out-of-range counts and samples, reading only the partials the
// cache lacks.
func (p *partials) numericCached(ctx context.Context, c *BucketCache, now map[int64]bucketState, prog *Progress) ([]Numeric, error) {
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
	c.mu.Lock()
	defer c.mu.Unlock()
	kept, err := p.manifest(ctx)
	if err != nil {
		return nil, err
	}
	if err := c.sync(ctx, p, kept); err != nil {
		return nil, err
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
	if q.opts.Samples {
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
					return nil, err
				}
				prog.Aggregated++
			}
			if kept, err = p.manifest(ctx); err != nil {
				return nil, err
			}
			if err := c.sync(ctx, p, kept); err != nil {
				return nil, err
			}
		}
	}
	for i := range out {
		x := &out[i]
		for _, cb := range c.buckets {
			bf := cb.feats[x.Feature]
			if bf == nil {
				continue
			}
			x.CurOutOfRange += bf.outside
			for bin, n := range bf.bins {
				if int(bin) >= len(x.CurBins) {
					return nil, fmt.Errorf("BUG: bin %d of %s beyond %d edges", bin, x.Feature, len(x.Edges))
				}
				x.CurBins[bin] += n
			}
		}
		if !q.opts.Samples {
			continue
		}
		if cv := c.feats[x.Feature]; cv != nil {
			x.CurValues, x.CurCounts = compressBelow(cv.v, cv.h, rates[i])
		}
		x.SampledCur = x.CurN > int64(q.opts.SampleCap)
	}
	return out, nil
}

// compressBelow is compress of the values (ascending) whose hash is below
// rate.
func compressBelow(vs, hs []float64, rate float64) ([]float64, []int64) {
	n, prev := 0, 0.0
	for k, h := range hs {
		if h < rate {
			if n == 0 || vs[k] != prev {
				n++
			}
			prev = vs[k]
		}
	}
	if n == 0 {
		return nil, nil
	}
	v, c := make([]float64, 0, n), make([]int64, 0, n)
	for k, h := range hs {
		if h < rate {
			x := vs[k]
			if m := len(v); m > 0 && v[m-1] == x {
				c[m-1]++
				continue
			}
			v = append(v, x)
			c = append(c, 1)
		}
	}
	return v, c
}

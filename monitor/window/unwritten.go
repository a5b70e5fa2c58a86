package window

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"golang.org/x/sync/errgroup"

	"github.com/driftwatch/driftwatch/internal/chsql"
)

// DefaultWriteBuckets is how many buckets' partials a BucketCache holds
// unwritten before it writes them (see BucketCache.WriteEvery).
const DefaultWriteBuckets = 10

// unwrittenBucket is one bucket's partials aggregated into the cache and
// not yet written to window_partial_bins, window_partial_categories and
// the manifest, window_partial_buckets.
type unwrittenBucket struct {
	bucket int64
	state  bucketState // with its version
	bins   []partRow
	cats   []catPart
}

// WriteEvery sets how many buckets' partials the cache keeps unwritten:
// aggregated into it and used for the windows, but written to ClickHouse
// only once n of them are (n <= 1: at every aggregation). Each write costs
// ClickHouse a few INSERTs whatever their size, most of a step's cost
// after its one aggregation, so a model stepped every minute writes every
// n minutes. What is lost with a monitor that dies is at most n buckets'
// partials: whoever evaluates the model next aggregates them again from
// the raw rows, the same partials. Flush writes them at once.
func (c *BucketCache) WriteEvery(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writeEvery = max(1, n)
}

// Unwritten is how many buckets' partials the cache holds unwritten.
func (c *BucketCache) Unwritten() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.unwritten)
}

// keepUnwritten records buckets just aggregated into the cache as
// unwritten, replacing an older aggregation of the same bucket. The cache
// is locked.
func (c *BucketCache) keepUnwritten(conn driver.Conn, bs []unwrittenBucket) {
	if c.unwritten == nil {
		c.unwritten = map[int64]*unwrittenBucket{}
	}
	c.conn = conn
	for i := range bs {
		c.unwritten[bs[i].bucket] = &bs[i]
	}
}

// dueWrite says whether the cache holds enough unwritten buckets to write
// them: WriteEvery's, and never more than half a window of window buckets
// (a bucket that leaves the window unwritten is dropped unwritten). The
// cache is locked.
func (c *BucketCache) dueWrite(window int64) bool {
	n := int64(max(1, c.writeEvery))
	n = min(n, max(1, window/2))
	return len(c.unwritten) > 0 && int64(len(c.unwritten)) >= n
}

// startWrite takes the unwritten partials and returns the function that
// writes them; a failed write empties the cache, so that the next
// evaluation reads what ClickHouse holds (and aggregates the rest again).
// The cache is locked; the function takes the lock itself, on failure.
func (c *BucketCache) startWrite() func(ctx context.Context) error {
	if len(c.unwritten) == 0 {
		return func(context.Context) error { return nil }
	}
	bs := make([]*unwrittenBucket, 0, len(c.unwritten))
	for _, u := range c.unwritten {
		bs = append(bs, u)
	}
	c.unwritten = nil
	conn, model, key, bucket := c.conn, c.model, c.key, c.bucket
	return func(ctx context.Context) error {
		err := writePartials(ctx, conn, model, key, bucket, bs)
		if err != nil {
			c.mu.Lock()
			if c.model == model && c.key == key && c.bucket == bucket {
				c.reset(model, key, bucket)
			}
			c.mu.Unlock()
		}
		return err
	}
}

// Flush writes the partials the cache holds unwritten (see WriteEvery),
// as a monitor does when it stops or drops the cache.
func (c *BucketCache) Flush(ctx context.Context) error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	write := c.startWrite()
	c.mu.Unlock()
	return write(ctx)
}

// writePartials writes buckets' partials: their bin and category rows,
// side by side, then their manifest rows, which make them current (a
// crashed write's rows are never read).
func writePartials(ctx context.Context, conn driver.Conn, model string, key uint64, bucket time.Duration, bs []*unwrittenBucket) error {
	ms := bucket.Milliseconds()
	secs := uint32(bucket.Milliseconds())
	if bucket%time.Second == 0 {
		secs = uint32(bucket / time.Second)
	}
	what := fmt.Sprintf("%d buckets of %s", len(bs), model)
	var g errgroup.Group
	g.Go(func() error {
		n := 0
		for _, u := range bs {
			n += len(u.bins)
		}
		if n == 0 {
			return nil
		}
		batch, err := conn.PrepareBatch(ctx, "INSERT INTO window_partial_bins (model_id, profile_key, bucket_start, bucket_seconds, version, feature, bin, n, out_of_range, sample_bound, sample_h, sample_v)")
		if err != nil {
			return fmt.Errorf("write bin partials of %s: %w", what, err)
		}
		defer batch.Abort() //nolint:errcheck // after Send, a no-op
		for _, u := range bs {
			start := time.UnixMilli(u.bucket * ms).UTC()
			for _, r := range u.bins {
				if err := batch.Append(model, key, start, secs, u.state.version, r.feature, r.bin, r.n, r.outside, r.bound, r.hs, r.vs); err != nil {
					return fmt.Errorf("write bin partials of %s: %w", what, err)
				}
			}
		}
		if err := batch.Send(); err != nil {
			return fmt.Errorf("write bin partials of %s: %w", what, err)
		}
		return nil
	})
	g.Go(func() error {
		n := 0
		for _, u := range bs {
			n += len(u.cats)
		}
		if n == 0 {
			return nil
		}
		batch, err := conn.PrepareBatch(ctx, "INSERT INTO window_partial_categories (model_id, profile_key, bucket_start, bucket_seconds, version, feature, category, n)")
		if err != nil {
			return fmt.Errorf("write category partials of %s: %w", what, err)
		}
		defer batch.Abort() //nolint:errcheck // after Send, a no-op
		for _, u := range bs {
			start := time.UnixMilli(u.bucket * ms).UTC()
			for _, r := range u.cats {
				if err := batch.Append(model, key, start, secs, u.state.version, r.feature, r.category, r.n); err != nil {
					return fmt.Errorf("write category partials of %s: %w", what, err)
				}
			}
		}
		if err := batch.Send(); err != nil {
			return fmt.Errorf("write category partials of %s: %w", what, err)
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return err
	}
	vals := make([]string, len(bs))
	for i, u := range bs {
		st := u.state
		vals[i] = fmt.Sprintf("(%s, %d, %s, %d, %d, %d, %s, %d)", chsql.String(model), key, chsql.Time(time.UnixMilli(u.bucket*ms).UTC()), secs, st.version, st.rows, chsql.Time(st.newest), st.written)
	}
	if err := conn.Exec(ctx, "INSERT INTO window_partial_buckets (model_id, profile_key, bucket_start, bucket_seconds, version, rows, newest_ingested_at, written) VALUES "+strings.Join(vals, ", ")); err != nil {
		return fmt.Errorf("record the partials of %s: %w", what, err)
	}
	return nil
}

// overlayUnwritten adds to kept, the manifest ClickHouse holds of p's
// current window, the buckets whose partials the cache holds unwritten,
// unless ClickHouse holds a newer version (another monitor aggregated the
// bucket since): that one is current, and the unwritten one is dropped.
// The cache is locked.
func (c *BucketCache) overlayUnwritten(p *partials, kept map[int64]bucketState) {
	if len(c.unwritten) == 0 {
		return
	}
	if c.model != p.q.model || c.key != p.key || c.bucket != p.bucket {
		// Another profile's partials: sync empties the cache.
		c.unwritten = nil
		return
	}
	ms := p.bucket.Milliseconds()
	lo, hi := p.q.cur.Start.UnixMilli()/ms, p.q.cur.End.UnixMilli()/ms
	for b, u := range c.unwritten {
		if k, ok := kept[b]; ok && k.version > u.state.version {
			delete(c.unwritten, b)
			continue
		}
		if b >= lo && b < hi {
			kept[b] = u.state
		}
	}
}

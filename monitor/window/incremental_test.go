package window

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/driftwatch/driftwatch/internal/chsql"
)

// insertRows inserts n rows of model m from start, every step, with event
// ids prefix0…: numeric a (ties, shifted by shift) and b (absent on every
// tenth row), categorical color (3 values) and city (20: more than the
// tests' MaxCategories, so folded), a score and a label.
func insertRows(t *testing.T, conn driver.Conn, m, prefix string, start time.Time, step time.Duration, n int, shift float64) {
	t.Helper()
	sql := fmt.Sprintf("INSERT INTO inferences (event_id, model_id, model_version, prediction_id, timestamp, features_numeric, features_categorical, prediction_label, prediction_score, ingested_at) "+
		"SELECT id, %[1]s, 'v1', id, %[2]s + toIntervalMillisecond(number * %[3]d), "+
		"if(number %% 10 = 0, map('a', a), map('a', a, 'b', toFloat64(cityHash64(id, 'b') %% 5))), "+
		"map('color', ['red', 'green', 'blue'][1 + cityHash64(id, 'c') %% 3], 'city', concat('c', toString(cityHash64(id, 'd') %% 20))), "+
		"if(s > 0.5, 'yes', 'no'), s, now64(3) "+
		"FROM (SELECT number, concat(%[4]s, toString(number)) AS id, toFloat64(cityHash64(id, 'a') %% 1000) / 100 + %[5]g AS a, (cityHash64(id, 's') %% 1000) / 1000 AS s FROM numbers(%[6]d))",
		chsql.String(m), chsql.Time(start), step.Milliseconds(), chsql.String(prefix), shift, n)
	if err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatalf("insert %s rows: %v", prefix, err)
	}
}

// sameSnapshot reports how inc differs from full, field by field.
func sameSnapshot(t *testing.T, what string, full, inc *Snapshot) {
	t.Helper()
	if reflect.DeepEqual(full, inc) {
		return
	}
	if full.RefRows != inc.RefRows || full.CurRows != inc.CurRows {
		t.Errorf("%s: rows %d/%d, full %d/%d", what, inc.RefRows, inc.CurRows, full.RefRows, full.CurRows)
	}
	if len(full.Numeric) != len(inc.Numeric) || len(full.Categorical) != len(inc.Categorical) {
		t.Fatalf("%s: %d numeric and %d categorical features, full %d and %d", what, len(inc.Numeric), len(inc.Categorical), len(full.Numeric), len(full.Categorical))
	}
	for i := range full.Numeric {
		f, g := full.Numeric[i], inc.Numeric[i]
		f.RefSummary, g.RefSummary = nil, nil
		if !reflect.DeepEqual(f, g) {
			t.Errorf("%s: numeric %s differs:\nincremental n %d bins %v out %d sample %d values (sampled %v)\nfull        n %d bins %v out %d sample %d values (sampled %v)",
				what, f.Feature, g.CurN, g.CurBins, g.CurOutOfRange, len(g.CurValues), g.SampledCur, f.CurN, f.CurBins, f.CurOutOfRange, len(f.CurValues), f.SampledCur)
		}
	}
	for i := range full.Categorical {
		if !reflect.DeepEqual(full.Categorical[i], inc.Categorical[i]) {
			t.Errorf("%s: categorical differs:\nincremental %+v\nfull        %+v", what, inc.Categorical[i], full.Categorical[i])
		}
	}
	if !reflect.DeepEqual(full.DeadLetters, inc.DeadLetters) {
		t.Errorf("%s: dead letters %v, full %v", what, inc.DeadLetters, full.DeadLetters)
	}
}

// TestIncrementalMatchesFull steps a 30-minute window every 5 minutes over
// rows inserted into ClickHouse and checks that the snapshot merged from
// per-bucket partials is the one ComputeCached computes from the raw rows
// against the same pinned reference (bins, out-of-range and row counts,
// the hash-keyed samples, folded categories), that each step aggregates
// only its new bucket, and that late events, a replayed event and a
// re-pinned reference re-aggregate exactly the buckets they touch. It does
// so with and without the BucketCache that keeps partials in memory, and
// with the changed buckets found through the inferences_per_minute rollup
// and by counting every bucket's rows (ScanBuckets); and, with the cache,
// with the new buckets' values binned in the server and counted in the
// monitor (codesSQL, the rows that are not canonical by the server's GROUP
// BY), binned in the monitor (rowValuesSQL) and in ClickHouse (the buckets
// over maxRowValues).
func TestIncrementalMatchesFull(t *testing.T) {
	for _, c := range []struct {
		name      string
		scan      bool
		codes     bool // useCodes
		rowValues int64
		chunk     int // binChunkValues: 1 bins every bucket's rows in 3 chunks
	}{{"rollup", false, true, maxRowValues, binChunkValues}, {"scan", true, true, maxRowValues, binChunkValues},
		{"row values", false, false, maxRowValues, binChunkValues}, {"server-side bins", false, false, 0, binChunkValues},
		{"codes counted in chunks", false, true, maxRowValues, 1}, {"rows binned in chunks", false, false, maxRowValues, 1}} {
		t.Run(c.name, func(t *testing.T) {
			was, wasChunk, wasWorkers, wasCodes := maxRowValues, binChunkValues, binWorkers, useCodes
			defer func() {
				ScanBuckets, maxRowValues, binChunkValues, binWorkers, useCodes = false, was, wasChunk, wasWorkers, wasCodes
			}()
			ScanBuckets, maxRowValues, binChunkValues, useCodes = c.scan, c.rowValues, c.chunk, c.codes
			if c.chunk == 1 {
				binWorkers = 3
			}
			incrementalMatchesFull(t)
		})
	}
}

func incrementalMatchesFull(t *testing.T) {
	conn := openDB(t)
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-6 * time.Hour)
	const (
		window = 30 * time.Minute
		bucket = 5 * time.Minute
	)
	// The reference: 1,200 rows in its hour. The current data: 100 rows
	// per bucket for two hours, a shifted, and a burst of 2,000 more rows
	// in one bucket, whose own bound (below) keeps fewer sampled values
	// than the windows holding it sample at.
	insertRows(t, conn, "m", "r", t0, 3*time.Second, 1200, 0)
	insertRows(t, conn, "m", "c", t0.Add(time.Hour), 3*time.Second, 2400, 0.3)
	burst := t0.Add(2 * time.Hour)
	insertRows(t, conn, "m", "burst", burst, 150*time.Millisecond, 2000, 0.6)
	insertRows(t, conn, "other", "o", t0.Add(time.Hour), time.Second, 1000, 0)
	opts := Options{Samples: true, SampleCap: 300, MaxCategories: 8}
	ref := Span{Start: t0, End: t0.Add(time.Hour)}
	_, pinned, err := ComputeCached(ctx, conn, "m", ref, Span{Start: ref.End, End: ref.End}, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	pinned.Pin()

	// Written at every aggregation, so that the computations without it
	// find what it aggregated (TestUnwrittenPartials has it write later).
	cache, turn := NewBucketCache(), 0
	cache.WriteEvery(1)
	check := func(what string, cur Span, r *Reference, wantAggregated int) *Snapshot {
		t.Helper()
		full, _, err := ComputeCached(ctx, conn, "m", r.Span(), cur, opts, r)
		if err != nil {
			t.Fatalf("%s: full: %v", what, err)
		}
		// With and without the in-memory cache, taking turns at going
		// first (the first one aggregates what is new).
		for k, bc := range [][2]*BucketCache{{nil, cache}, {cache, nil}}[turn%2] {
			inc, _, prog, err := ComputeIncremental(ctx, conn, "m", r.Span(), cur, opts, r, bucket, bc)
			how := fmt.Sprintf("%s (cache %v)", what, bc != nil)
			if err != nil {
				t.Fatalf("%s: incremental: %v", how, err)
			}
			if !prog.Incremental {
				t.Fatalf("%s: computed in full: %s", how, prog.Fallback)
			}
			if want := map[int]int{0: wantAggregated, 1: 0}[k]; prog.Aggregated != want {
				t.Errorf("%s: aggregated %d of %d buckets, want %d", how, prog.Aggregated, prog.Buckets, want)
			}
			sameSnapshot(t, how, full, inc)
		}
		turn++
		return full
	}
	sampled := false
	for end := t0.Add(time.Hour + window); !end.After(t0.Add(3 * time.Hour)); end = end.Add(bucket) {
		cur := Span{Start: end.Add(-window), End: end}
		want := 1 // the new bucket
		switch {
		case end.Equal(t0.Add(time.Hour + window)):
			want = 6 // the first window: all its buckets
		case end.Equal(burst.Add(bucket)):
			want = 2 // the burst, then the burst again with a higher bound
		}
		s := check("step to "+end.Format("15:04"), cur, pinned, want)
		for _, n := range s.Numeric {
			sampled = sampled || n.SampledCur
		}
	}
	if !sampled {
		t.Fatal("no window was sampled: the test does not exercise the samples")
	}

	end := t0.Add(3 * time.Hour)
	cur := Span{Start: end.Add(-window), End: end}
	// Late events into one old bucket of the window.
	insertRows(t, conn, "m", "late", end.Add(-25*time.Minute+time.Second), time.Second, 30, 5)
	check("late events", cur, pinned, 1)
	// A replayed event with other values (the newest insert wins under
	// FINAL), in another bucket.
	if err := conn.Exec(ctx, fmt.Sprintf("INSERT INTO inferences (event_id, model_id, model_version, prediction_id, timestamp, features_numeric, features_categorical, prediction_label, prediction_score, ingested_at) "+
		"SELECT event_id, model_id, model_version, prediction_id, timestamp, map('a', 99.5), map('color', 'violet'), 'no', 0.01, now64(3) FROM inferences FINAL "+
		"WHERE model_id = 'm' AND timestamp >= %s AND timestamp < %s ORDER BY timestamp LIMIT 1", chsql.Time(end.Add(-10*time.Minute)), chsql.Time(end.Add(-5*time.Minute)))); err != nil {
		t.Fatal(err)
	}
	check("replayed event", cur, pinned, 1)
	check("nothing new", cur, pinned, 0)

	// A step whose partials cannot be written (the SELECT answered, the
	// batch insert refused) fails, records nothing, and leaves the cache
	// to be read again: the next step aggregates the bucket again and
	// gives the full snapshot.
	insertRows(t, conn, "m", "late2", end.Add(-15*time.Minute+time.Second), time.Second, 20, -3)
	if _, _, _, err := ComputeIncremental(ctx, noBatches{conn}, "m", pinned.Span(), cur, opts, pinned, bucket, cache); err == nil || !strings.Contains(err.Error(), "batch inserts refused") {
		t.Fatalf("a step whose partials could not be written: err = %v, want the write's error", err)
	}
	check("after a failed write", cur, pinned, 1)

	// Re-pinned to another period: other edges, other partials, built
	// again from the rows; going back to the first profile finds its own.
	ref2 := Span{Start: t0.Add(30 * time.Minute), End: t0.Add(90 * time.Minute)}
	_, repinned, err := ComputeCached(ctx, conn, "m", ref2, Span{Start: ref2.End, End: ref2.End}, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	repinned.Pin()
	if repinned.partialKey() == pinned.partialKey() {
		t.Fatal("the re-pinned reference has the first one's partial key")
	}
	check("re-pinned", cur, repinned, 6)
	check("back to the first reference", cur, pinned, 0)

	// Without a pinned reference, or off the bucket grid, the window is
	// computed in full.
	for _, c := range []struct {
		what string
		cur  Span
		r    *Reference
	}{
		{"growing reference", cur, nil},
		{"off the grid", Span{Start: cur.Start.Add(time.Minute), End: cur.End.Add(time.Minute)}, pinned},
	} {
		full, _, err := ComputeCached(ctx, conn, "m", ref, c.cur, opts, c.r)
		if err != nil {
			t.Fatal(err)
		}
		inc, _, prog, err := ComputeIncremental(ctx, conn, "m", ref, c.cur, opts, c.r, bucket, nil)
		if err != nil {
			t.Fatal(err)
		}
		if prog.Incremental || prog.Fallback == "" {
			t.Errorf("%s: %+v, want a full computation with its reason", c.what, prog)
		}
		sameSnapshot(t, c.what, full, inc)
	}
	// The multivariate methods' joint sample has no partials: a model
	// with it is computed in full, pinned reference or not.
	joint := opts
	joint.JointRows = 500
	full, _, err := ComputeCached(ctx, conn, "m", ref, cur, joint, pinned)
	if err != nil {
		t.Fatal(err)
	}
	inc, _, prog, err := ComputeIncremental(ctx, conn, "m", ref, cur, joint, pinned, bucket, nil)
	if err != nil {
		t.Fatal(err)
	}
	if prog.Incremental || !strings.Contains(prog.Fallback, "joint sample") {
		t.Errorf("joint sample: %+v, want a full computation because of the joint sample", prog)
	}
	sameSnapshot(t, "joint sample", full, inc)
}

// TestPartialBound checks the sample bound a bucket keeps against a hand
// computation: 1.25 times the rate of a window of `buckets` such buckets,
// SampleCap / (n · buckets), at most 1; nothing without samples.
func TestPartialBound(t *testing.T) {
	on := Options{Samples: true, SampleCap: 100_000}
	for _, c := range []struct {
		name       string
		opts       Options
		n, buckets int64
		want       float64
	}{
		{"window below the cap keeps all", on, 1000, 60, 1},
		{"1M rows per hour, 60 buckets", on, 16_667, 60, 1.25 * 100_000 / (16_667.0 * 60)},
		{"10M rows per hour", on, 166_667, 60, 1.25 * 100_000 / (166_667.0 * 60)},
		{"just above the cap, capped at 1", on, 1700, 60, 1},
		{"no values", on, 0, 60, 0},
		{"no samples", Options{SampleCap: 100_000}, 16_667, 60, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := partialBound(c.opts, c.n, c.buckets); got != c.want {
				t.Errorf("partialBound(%d values, %d buckets) = %v, want %v", c.n, c.buckets, got, c.want)
			}
		})
	}
}

// noBatches is a connection whose batch inserts are refused.
type noBatches struct{ driver.Conn }

func (noBatches) PrepareBatch(context.Context, string, ...driver.PrepareBatchOption) (driver.Batch, error) {
	return nil, errors.New("batch inserts refused")
}

// TestUnwrittenPartials steps a model through its windows with a cache
// that writes its partials every third bucket: ClickHouse's manifest
// grows only then; a computation without the cache (another monitor, or
// this one restarted) at any step gives the full snapshot, aggregating
// the buckets still unwritten; Flush writes them; and a write that fails
// fails its step and leaves the cache to read again.
func TestUnwrittenPartials(t *testing.T) {
	conn := openDB(t)
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-6 * time.Hour)
	const (
		window = time.Hour
		bucket = 5 * time.Minute
	)
	insertRows(t, conn, "m", "r", t0, 3*time.Second, 1200, 0)
	insertRows(t, conn, "m", "c", t0.Add(time.Hour), 3*time.Second, 3600, 0.3)
	opts := Options{Samples: true, SampleCap: 300, MaxCategories: 8}
	ref := Span{Start: t0, End: t0.Add(time.Hour)}
	_, pinned, err := ComputeCached(ctx, conn, "m", ref, Span{Start: ref.End, End: ref.End}, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	pinned.Pin()
	manifestRows := func() int {
		t.Helper()
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM window_partial_buckets WHERE model_id = 'm' AND profile_key = ?", pinned.partialKey()).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return int(n)
	}
	cache := NewBucketCache()
	cache.WriteEvery(3)
	step := func(what string, bc *BucketCache, cur Span, wantAggregated int) {
		t.Helper()
		full, _, err := ComputeCached(ctx, conn, "m", pinned.Span(), cur, opts, pinned)
		if err != nil {
			t.Fatalf("%s: full: %v", what, err)
		}
		inc, _, prog, err := ComputeIncremental(ctx, conn, "m", pinned.Span(), cur, opts, pinned, bucket, bc)
		if err != nil || !prog.Incremental {
			t.Fatalf("%s: incremental: %v %q", what, err, prog.Fallback)
		}
		if prog.Aggregated != wantAggregated {
			t.Errorf("%s: aggregated %d buckets, want %d", what, prog.Aggregated, wantAggregated)
		}
		sameSnapshot(t, what, full, inc)
	}
	end := t0.Add(2 * time.Hour)
	step("first window", cache, Span{Start: end.Add(-window), End: end}, 12)
	// 12 buckets unwritten, more than 3: written at once.
	if n, u := manifestRows(), cache.Unwritten(); n != 12 || u != 0 {
		t.Fatalf("after the first window: %d manifest rows, %d unwritten; want 12 and 0", n, u)
	}
	for k := 1; k <= 7; k++ {
		end = end.Add(bucket)
		cur := Span{Start: end.Add(-window), End: end}
		step(fmt.Sprintf("step %d", k), cache, cur, 1)
		wantRows, wantUnwritten := 12+3*(k/3), k%3
		if k > 5 {
			// Step 5's buckets 4 and 5 were written by the step without
			// the cache: 17 rows, and the cache counts again from 0.
			wantRows, wantUnwritten = 17, k-5
		}
		if n, u := manifestRows(), cache.Unwritten(); n != wantRows || u != wantUnwritten {
			t.Errorf("step %d: %d manifest rows, %d unwritten; want %d and %d", k, n, u, wantRows, wantUnwritten)
		}
		// Without the cache: what is unwritten is aggregated again (and
		// written, since there is no cache), the same snapshot.
		if k == 5 {
			step("step 5 without the cache", nil, cur, 2)
			// The cache's two unwritten buckets now have newer versions
			// in ClickHouse: it drops its own and reads those.
			step("step 5 with the cache again", cache, cur, 0)
			if u := cache.Unwritten(); u != 0 {
				t.Errorf("after another writer: %d unwritten, want 0", u)
			}
		}
	}
	// Steps 6 and 7 left two buckets unwritten; Flush writes them, and a
	// fresh cache aggregates nothing.
	cur := Span{Start: end.Add(-window), End: end}
	if u := cache.Unwritten(); u != 2 {
		t.Fatalf("before Flush: %d unwritten, want 2", u)
	}
	if err := cache.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n, u := manifestRows(), cache.Unwritten(); n != 19 || u != 0 {
		t.Errorf("after Flush: %d manifest rows, %d unwritten; want 19 and 0", n, u)
	}
	step("a fresh cache after Flush", NewBucketCache(), cur, 0)

	// A write that fails fails the step that was due to write, and
	// empties the cache: the next step reads what ClickHouse holds and
	// aggregates the lost buckets again.
	for range 2 {
		end = end.Add(bucket)
		step("before the failed write", cache, Span{Start: end.Add(-window), End: end}, 1)
	}
	end = end.Add(bucket)
	cur = Span{Start: end.Add(-window), End: end}
	if _, _, _, err := ComputeIncremental(ctx, noBatches{conn}, "m", pinned.Span(), cur, opts, pinned, bucket, cache); err == nil || !strings.Contains(err.Error(), "batch inserts refused") {
		t.Fatalf("a step due to write, whose write fails: err = %v, want the write's error", err)
	}
	if u := cache.Unwritten(); u != 0 {
		t.Errorf("after the failed write: %d unwritten, want 0 (the cache emptied)", u)
	}
	step("after the failed write", cache, cur, 3)
}

// dupBeforeUnmerged inserts a copy of one of the bucket's rows (the same
// event, which FINAL collapses) just before the first read of a new
// bucket's row values without FINAL: a duplicate arriving between the
// count and the read.
type dupBeforeUnmerged struct {
	driver.Conn
	dup      string
	unmerged atomic.Int64
}

func (c *dupBeforeUnmerged) Query(ctx context.Context, sql string, args ...any) (driver.Rows, error) {
	if (strings.Contains(sql, "groupArrayState(h)") || strings.Contains(sql, "groupArrayArrayStateIf(codes")) && strings.Contains(sql, "FROM inferences WHERE") {
		if c.unmerged.Add(1) == 1 && c.dup != "" {
			if err := c.Conn.Exec(ctx, c.dup); err != nil {
				return nil, err
			}
		}
	}
	return c.Conn.Query(ctx, sql, args...)
}

// TestUnmergedRowValues checks the new bucket's rows read without FINAL:
// used when its rows counted are the rows written into it, and read again
// under FINAL when a duplicate came in between (the snapshot is then the
// full computation's, the duplicate collapsed).
func TestUnmergedRowValues(t *testing.T) {
	for _, codes := range []bool{true, false} {
		t.Run(map[bool]string{true: "codes", false: "row values"}[codes], func(t *testing.T) {
			was := useCodes
			defer func() { useCodes = was }()
			useCodes = codes
			unmergedRowValues(t)
		})
	}
}

func unmergedRowValues(t *testing.T) {
	conn := openDB(t)
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-6 * time.Hour)
	const (
		window = 10 * time.Minute
		bucket = time.Minute
	)
	insertRows(t, conn, "m", "r", t0, 3*time.Second, 1200, 0)
	insertRows(t, conn, "m", "c", t0.Add(time.Hour), time.Second, 720, 0.3)
	opts := Options{Samples: true, SampleCap: 300, MaxCategories: 8}
	ref := Span{Start: t0, End: t0.Add(time.Hour)}
	_, pinned, err := ComputeCached(ctx, conn, "m", ref, Span{Start: ref.End, End: ref.End}, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	pinned.Pin()
	cache := NewBucketCache()
	cache.WriteEvery(1)
	step := func(what string, c driver.Conn, end time.Time) {
		t.Helper()
		cur := Span{Start: end.Add(-window), End: end}
		inc, _, prog, err := ComputeIncremental(ctx, c, "m", ref, cur, opts, pinned, bucket, cache)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if !prog.Incremental {
			t.Fatalf("%s: computed in full: %s", what, prog.Fallback)
		}
		full, _, err := ComputeCached(ctx, conn, "m", ref, cur, opts, pinned)
		if err != nil {
			t.Fatal(err)
		}
		sameSnapshot(t, what, full, inc)
	}
	end := t0.Add(time.Hour + window)
	step("first window", conn, end)

	// The next bucket's rows hold no duplicate: read without FINAL once.
	clean := &dupBeforeUnmerged{Conn: conn}
	retries, compacted := unmergedRetries.Load(), compactions.Load()
	step("next bucket", clean, end.Add(bucket))
	if n := compactions.Load() - compacted; n != 0 {
		t.Errorf("next bucket: %d passes to drop the departed bucket, want none (it goes in the merge's)", n)
	}
	if n := clean.unmerged.Load(); n != 1 {
		t.Errorf("next bucket: %d reads without FINAL, want 1", n)
	}
	if n := unmergedRetries.Load() - retries; n != 0 {
		t.Errorf("next bucket: read again under FINAL %d times, want 0", n)
	}

	// A duplicate of one of the following bucket's events arrives between
	// the count and the read: read again under FINAL.
	b2 := end.Add(bucket)
	dup := &dupBeforeUnmerged{Conn: conn, dup: fmt.Sprintf("INSERT INTO inferences (event_id, model_id, model_version, prediction_id, timestamp, features_numeric, features_categorical, prediction_label, prediction_score, ingested_at) "+
		"SELECT event_id, model_id, model_version, prediction_id, timestamp, features_numeric, features_categorical, prediction_label, prediction_score, ingested_at FROM inferences FINAL "+
		"WHERE model_id = 'm' AND timestamp >= %s AND timestamp < %s ORDER BY timestamp LIMIT 1", chsql.Time(b2), chsql.Time(b2.Add(bucket)))}
	step("duplicate in between", dup, end.Add(2*bucket))
	if n := unmergedRetries.Load() - retries; n != 1 {
		t.Errorf("duplicate in between: read again under FINAL %d times, want 1", n)
	}
	// The duplicate is in the rollup's written rows now: the bucket is
	// counted and aggregated again, under FINAL, and still agrees.
	step("after the duplicate", conn, end.Add(2*bucket))
}

package monitor

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/driftwatch/driftwatch/monitor/policy"
	"github.com/driftwatch/driftwatch/monitor/window"
)

// TestIncrementalMonitorMatchesFull evaluates the same model's windows
// (1 hour every 10 minutes, a mean shift half-way) with incremental on and
// off: once the first evaluation has pinned the reference, the incremental
// monitor merges each window from 10-minute buckets, aggregating only the
// newest, and its snapshots and verdicts (every statistic, p-value and
// status) are those of the full computation.
func TestIncrementalMonitorMatchesFull(t *testing.T) {
	w := newWorld(t)
	w.numeric = 6
	w.start = time.Now().UTC().Truncate(time.Hour).Add(-5 * time.Hour)
	w.fill(t, 4, 3000, "mean_shift:f1:1.5@+150m")
	ctx := context.Background()
	set := testSettings(48*time.Hour, policy.Default(), nil)
	set.Step = 10 * time.Minute
	newMonitor := func(incremental bool) *Monitor {
		s := set
		s.Incremental = incremental
		m, err := New(Options{Settings: s, Conn: w.conn, TriggerWriter: &recordingWriter{}, Registerer: prometheus.NewRegistry(),
			Now: func() time.Time { return w.start.Add(5 * time.Hour) }})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	full, inc := newMonitor(false), newMonitor(true)
	steps, drifted := 0, false
	for end := w.start.Add(2 * time.Hour); !end.After(w.start.Add(4 * time.Hour)); end = end.Add(set.Step) {
		want, err := full.Evaluate(ctx, "model-0", end)
		if err != nil || want.Skipped != "" {
			t.Fatalf("full evaluation to %s: %v %q", end, err, want.Skipped)
		}
		got, err := inc.Evaluate(ctx, "model-0", end)
		if err != nil || got.Skipped != "" {
			t.Fatalf("incremental evaluation to %s: %v %q", end, err, got.Skipped)
		}
		steps++
		if !reflect.DeepEqual(withoutSummaries(want.Snapshot), withoutSummaries(got.Snapshot)) {
			t.Errorf("window to %s: incremental snapshot differs from the full one", end.Format("15:04"))
		}
		// %+v: NaN p-values print alike, where DeepEqual calls them unequal.
		if a, b := fmt.Sprintf("%+v", want.Verdict), fmt.Sprintf("%+v", got.Verdict); a != b {
			t.Errorf("window to %s: verdicts differ:\nincremental %s\nfull        %s", end.Format("15:04"), b, a)
		}
		drifted = drifted || len(got.Verdict.Drifted) > 0
	}
	if !drifted {
		t.Error("no window drifted: the test compares only quiet verdicts")
	}
	if n := testutil.ToFloat64(inc.windows.WithLabelValues("incremental")); n != float64(steps) {
		t.Errorf("%v of %d windows computed incrementally", n, steps)
	}
	// The first window aggregates its 6 buckets, every later one its new one.
	if n := testutil.ToFloat64(inc.buckets.WithLabelValues("aggregated")); n != float64(6+steps-1) {
		t.Errorf("%v buckets aggregated over %d windows, want %d", n, steps, 6+steps-1)
	}
	if n := testutil.ToFloat64(full.windows.WithLabelValues("full")); n != float64(steps) {
		t.Errorf("the full monitor computed %v of %d windows in full", n, steps)
	}

	// A replay (driftwatch backtest) with the same settings, the model's
	// reference now pinned, writes no partials: it computes its windows in
	// full, with the same snapshots. (The partials are emptied first, so
	// that an incremental window would have to write all of its buckets.)
	for _, tbl := range []string{"window_partial_buckets", "window_partial_bins", "window_partial_categories"} {
		if err := w.conn.Exec(ctx, "TRUNCATE TABLE "+tbl); err != nil {
			t.Fatal(err)
		}
	}
	rs := set
	rs.Incremental = true
	r, err := NewReplay(ReplayOptions{Settings: rs, Conn: w.conn})
	if err != nil {
		t.Fatal(err)
	}
	end := w.start.Add(4 * time.Hour)
	got, err := r.Evaluate(ctx, "model-0", end)
	if err != nil || got.Skipped != "" || got.Reference != ReferencePinned {
		t.Fatalf("replay to %s: %v %q, reference %s (want pinned)", end, err, got.Skipped, got.Reference)
	}
	want, err := full.Evaluate(ctx, "model-0", end)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(withoutSummaries(want.Snapshot), withoutSummaries(got.Snapshot)) {
		t.Error("the replay's snapshot differs from the full one")
	}
	for _, tbl := range []string{"window_partial_buckets", "window_partial_bins", "window_partial_categories"} {
		if n := w.count(t, "SELECT count() FROM "+tbl); n != 0 {
			t.Errorf("%s holds %d rows after a replay, want 0", tbl, n)
		}
	}
}

// refusingBatches is a connection whose batch inserts into the partials'
// tables are refused while refuse is set.
type refusingBatches struct {
	driver.Conn
	refuse atomic.Bool
}

func (c *refusingBatches) PrepareBatch(ctx context.Context, sql string, opts ...driver.PrepareBatchOption) (driver.Batch, error) {
	if c.refuse.Load() && strings.Contains(sql, "window_partial_") {
		return nil, errors.New("batch inserts refused")
	}
	return c.Conn.PrepareBatch(ctx, sql, opts...)
}

// TestIncrementalWindowNotRecordedWithoutItsPartials: the partials of a
// window's new buckets, when due, are written while its statistics are
// computed (window.StartIncremental); when they cannot be written, the evaluation
// fails and records nothing of the window, and the next attempt, writes
// allowed again, gives the full computation's snapshot.
func TestIncrementalWindowNotRecordedWithoutItsPartials(t *testing.T) {
	w := newWorld(t)
	w.numeric = 3
	w.start = time.Now().UTC().Truncate(time.Hour).Add(-5 * time.Hour)
	w.fill(t, 4, 2000)
	ctx := context.Background()
	set := testSettings(48*time.Hour, policy.Default(), nil)
	set.Step = 10 * time.Minute
	// Each step's partials written with it (window_cache_write_buckets
	// 1): the step that writes is the one that fails.
	set.WindowCacheWriteBuckets = 1
	conn := &refusingBatches{Conn: w.conn}
	newMonitor := func(c driver.Conn, incremental bool) *Monitor {
		s := set
		s.Incremental = incremental
		m, err := New(Options{Settings: s, Conn: c, TriggerWriter: &recordingWriter{}, Registerer: prometheus.NewRegistry(),
			Now: func() time.Time { return w.start.Add(5 * time.Hour) }})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	full, inc := newMonitor(w.conn, false), newMonitor(conn, true)
	end := w.start.Add(2 * time.Hour)
	for range 2 { // pins the reference, then builds the window's partials
		if _, err := inc.Evaluate(ctx, "model-0", end); err != nil {
			t.Fatal(err)
		}
	}
	end = end.Add(set.Step)
	conn.refuse.Store(true)
	if _, err := inc.Evaluate(ctx, "model-0", end); err == nil || !strings.Contains(err.Error(), "batch inserts refused") {
		t.Fatalf("evaluation with its partials refused: %v, want the refusal", err)
	}
	recorded := fmt.Sprintf("SELECT count() FROM drift_results WHERE model_id = 'model-0' AND window_end = fromUnixTimestamp64Milli(%d)", end.UnixMilli())
	if n := w.count(t, recorded); n != 0 {
		t.Fatalf("%d rows of drift_results for the failed window, want none", n)
	}
	conn.refuse.Store(false)
	got, err := inc.Evaluate(ctx, "model-0", end)
	if err != nil || got.Skipped != "" {
		t.Fatalf("evaluation again: %v %q", err, got.Skipped)
	}
	want, err := full.Evaluate(ctx, "model-0", end)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(withoutSummaries(want.Snapshot), withoutSummaries(got.Snapshot)) {
		t.Error("the window evaluated again differs from the full computation")
	}
	if n := w.count(t, recorded); n == 0 {
		t.Error("the window evaluated again is not in drift_results")
	}
}

// withoutSummaries is a copy of s without its reference summaries
// (Numeric.RefSummary): memos of the reference, which a cached reference
// carries and a fresh one does not.
func withoutSummaries(s *window.Snapshot) *window.Snapshot {
	if s == nil {
		return nil
	}
	c := *s
	c.Numeric = slices.Clone(s.Numeric)
	for i := range c.Numeric {
		c.Numeric[i].RefSummary = nil
	}
	return &c
}

// TestMonitorWritesUnwrittenPartialsWhenItStops: a monitor whose window
// cache holds a step's partials unwritten (window_cache_write_buckets 10)
// writes them when it stops, so that the next monitor reads them.
func TestMonitorWritesUnwrittenPartialsWhenItStops(t *testing.T) {
	w := newWorld(t)
	w.numeric = 3
	w.start = time.Now().UTC().Truncate(time.Hour).Add(-5 * time.Hour)
	w.fill(t, 4, 2000)
	ctx := context.Background()
	set := testSettings(48*time.Hour, policy.Default(), nil)
	set.Step = 10 * time.Minute
	set.Incremental = true
	m, err := New(Options{Settings: set, Conn: w.conn, TriggerWriter: &recordingWriter{}, Registerer: prometheus.NewRegistry(),
		Now: func() time.Time { return w.start.Add(5 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	manifest := func() uint64 {
		return w.count(t, "SELECT count() FROM window_partial_buckets WHERE model_id = 'model-0'")
	}
	end := w.start.Add(2 * time.Hour)
	for range 2 { // pins the reference, then builds the window's partials: written
		if _, err := m.Evaluate(ctx, "model-0", end); err != nil {
			t.Fatal(err)
		}
	}
	before := manifest()
	if before == 0 {
		t.Fatal("the window's first partials were not written")
	}
	end = end.Add(set.Step)
	if _, err := m.Evaluate(ctx, "model-0", end); err != nil {
		t.Fatal(err)
	}
	if n := manifest(); n != before {
		t.Fatalf("the step's partials were written at once: %d manifest rows, %d before", n, before)
	}
	m.flushPartials(ctx)
	if n := manifest(); n != before+1 {
		t.Fatalf("after the monitor stopped: %d manifest rows, want %d", n, before+1)
	}
}

package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/testcheck"
	"github.com/driftwatch/driftwatch/monitor/policy"
	"github.com/driftwatch/driftwatch/monitor/rootcause"
	"github.com/driftwatch/driftwatch/monitor/stat"
	"github.com/driftwatch/driftwatch/monitor/window"
)

// segmentWorld fills a world with 4 hours of 6000 inferences each (the
// first hour is the reference), the generator's three regions (us, eu,
// apac) a third each until changes, and returns a monitor evaluating the
// region slices.
func segmentWorld(t *testing.T, changes ...string) (*world, *Monitor) {
	t.Helper()
	w := newWorld(t)
	w.start = time.Now().UTC().Truncate(time.Hour).Add(-10 * time.Hour)
	w.numeric = 6
	w.fill(t, 4, 6000, changes...)
	tw, err := kafkaio.NewWriter(w.kopts, "retrain-triggers")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tw.Close() })
	s := testSettings(48*time.Hour, policy.Default(), nil)
	s.Segments.Keys = []string{"region"}
	m, err := New(Options{Settings: s, Conn: w.conn, TriggerWriter: tw, Registerer: prometheus.NewRegistry(),
		Now: func() time.Time { return w.start.Add(10 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	return w, m
}

// inputs are the drifted features of v that are model inputs (not the
// prediction pseudo-features).
func inputs(v policy.Verdict) []string {
	var out []string
	for _, f := range v.Drifted {
		if !strings.HasPrefix(f, "__") {
			out = append(out, f)
		}
	}
	return out
}

func segmentsByName(res Result) map[string]SegmentResult {
	out := map[string]SegmentResult{}
	for _, s := range res.Segments {
		out[s.Name] = s
	}
	return out
}

// TestSegmentShiftFlagsOnlyItsSlice: f3 shifted by 1.5 standard deviations
// inside region=eu only, from +2h: the eu slice is flagged for f3 (and for
// no other input), us and apac for nothing, in the windows ending +3h and
// +4h (sustained by +4h); the unchanged window ending +2h flags no slice.
// The slices' rows land in drift_results under their segment while the
// population's reads (the API's latest results) keep segment ”.
func TestSegmentShiftFlagsOnlyItsSlice(t *testing.T) {
	w, m := segmentWorld(t, "segment_shift:region=eu:f3:1.5@+2h")
	ctx := context.Background()
	var last Result
	for h := 2; h <= 4; h++ {
		res, err := m.Evaluate(ctx, "model-0", w.start.Add(time.Duration(h)*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		last = res
		segs := segmentsByName(res)
		names := make([]string, 0, len(segs))
		for n := range segs {
			names = append(names, n)
		}
		slices.Sort(names)
		if !slices.Equal(names, []string{"region=apac", "region=eu", "region=us"}) {
			t.Fatalf("window +%dh: slices %v, want the three regions", h, names)
		}
		for _, n := range names {
			got := inputs(segs[n].Verdict)
			want := []string(nil)
			if n == "region=eu" && h > 2 {
				want = []string{"f3"}
			}
			if !slices.Equal(got, want) {
				t.Errorf("window +%dh %s: drifted inputs %v, want %v", h, n, got, want)
			}
		}
		if h == 4 && !slices.Contains(segs["region=eu"].Verdict.Sustained, "f3") {
			t.Errorf("window +4h: region=eu sustained %v, want f3 among them", segs["region=eu"].Verdict.Sustained)
		}
		if h > 2 {
			// The population's f3 drifts too (a third of it moved by
			// 1.5 sd); its root cause is region=eu, within the slice.
			rc := rootCauseOf(t, res, "f3", "region")
			if top := rc.Contributions[0]; top.Segment != "region=eu" || top.Kind() != rootcause.KindWithin {
				t.Errorf("window +%dh: f3's top contribution %+v, want region=eu within", h, top)
			}
		}
		// The regions partition the rows: the slices' bins add up to the
		// population's.
		for i, n := range res.Snapshot.Numeric {
			ref := make([]int64, len(n.RefBins))
			cur := make([]int64, len(n.CurBins))
			for _, s := range segs {
				for b := range ref {
					ref[b] += s.Snapshot.Numeric[i].RefBins[b]
					cur[b] += s.Snapshot.Numeric[i].CurBins[b]
				}
			}
			if !slices.Equal(ref, n.RefBins) || !slices.Equal(cur, n.CurBins) {
				t.Errorf("window +%dh %s: slices' bins %v/%v, population's %v/%v", h, n.Feature, ref, cur, n.RefBins, n.CurBins)
			}
		}
	}
	// The root cause is in the trigger's evidence, and in the API.
	var found bool
	for _, d := range last.Decisions {
		for _, e := range d.Trigger.Evidence {
			if e.Check == "root_cause" && e.Feature == "f3" {
				found = true
				if e.Segment != "region=eu" || e.Method != rootcause.KindWithin {
					t.Errorf("trigger evidence %+v, want f3 caused by region=eu within", e)
				}
			}
		}
	}
	if !found {
		t.Errorf("no root_cause evidence of f3 in the triggers %+v", last.Decisions)
	}
	code, out := call(t, m.API(), "GET", "/api/v1/models/model-0/root-cause?feature=f3", "")
	rcs, _ := out["root_causes"].([]any)
	if code != 200 || len(rcs) == 0 {
		t.Fatalf("root-cause API: %d %v", code, out)
	}
	if first := rcs[0].(map[string]any); first["segment"] != "region=eu" || first["kind"] != "within" || first["rank"] != 1.0 {
		t.Errorf("root-cause API's first row %v, want region=eu within, rank 1", first)
	}
	if n := w.count(t, "SELECT count() FROM drift_results FINAL WHERE segment = 'region=eu' AND feature = 'f3' AND method = 'verdict' AND drifted"); n != 2 {
		t.Errorf("drift_results holds %d drifted f3 verdicts of region=eu, want 2", n)
	}
	if n := w.count(t, "SELECT count() FROM drift_results FINAL WHERE segment IN ('region=us', 'region=apac') AND feature = 'f3' AND method = 'verdict' AND drifted"); n != 0 {
		t.Errorf("drift_results holds %d drifted f3 verdicts of us and apac, want 0", n)
	}
	rows, _, err := m.store.LatestResults(ctx, "model-0", 10000)
	if err != nil {
		t.Fatal(err)
	}
	if want := int(w.count(t, "SELECT count() FROM drift_results FINAL WHERE segment = '' AND window_end = (SELECT max(window_end) FROM drift_results)")); len(rows) != want {
		t.Errorf("latest results: %d rows, want the population's %d", len(rows), want)
	}
}

// TestSegmentMixIsNoWithinSliceDrift: region=eu's share of traffic doubles
// (1/3 → 2/3) from +2h while no slice's own distribution changes: no slice
// is flagged for any input.
func TestSegmentMixIsNoWithinSliceDrift(t *testing.T) {
	w, m := segmentWorld(t, "segment_mix:region=eu:0.6667@+2h")
	ctx := context.Background()
	for h := 3; h <= 4; h++ {
		res, err := m.Evaluate(ctx, "model-0", w.start.Add(time.Duration(h)*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		segs := segmentsByName(res)
		if len(segs) != 3 {
			t.Fatalf("window +%dh: %d slices, want 3", h, len(segs))
		}
		for n, s := range segs {
			if got := inputs(s.Verdict); len(got) != 0 {
				t.Errorf("window +%dh %s: drifted inputs %v, want none (a mix shift)", h, n, got)
			}
		}
		// Whatever drifts in the population (the score and the inputs
		// whose means differ between regions), the root cause is the mix.
		for _, rc := range res.RootCauses {
			if top := rc.Contributions[0]; top.Kind() != rootcause.KindMix {
				t.Errorf("window +%dh: %s's top contribution %+v, want a mix shift", h, rc.Feature, top)
			}
		}
		eu := segs["region=eu"].Snapshot
		if share := float64(eu.CurRows) / float64(res.Snapshot.CurRows); !testcheck.Within(share, 2.0/3, 0.03) {
			t.Errorf("window +%dh: region=eu holds %.3f of the rows, want 2/3", h, share)
		}
	}
}

// TestSegmentStatisticsAgreeWithScipy: the KS statistic and p-value of f3
// in region=eu (shifted) and region=us (unchanged), as the monitor computed
// them from the slice's aggregates, agree with scipy's ks_2samp on the
// slice's raw values read from inferences (each slice holds fewer rows
// than sample_cap, so the sample is every row).
func TestSegmentStatisticsAgreeWithScipy(t *testing.T) {
	py := filepath.Join(repoRoot(t), ".deps", "venv", "bin", "python")
	if _, err := os.Stat(py); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no scipy venv at %s (bash scripts/deps.sh python): %v", py, err)
		}
		t.Skipf("no scipy venv at %s: run bash scripts/deps.sh python", py)
	}
	w, m := segmentWorld(t, "segment_shift:region=eu:f3:1.5@+2h")
	ctx := context.Background()
	end := w.start.Add(3 * time.Hour)
	res, err := m.Evaluate(ctx, "model-0", end)
	if err != nil {
		t.Fatal(err)
	}
	segs := segmentsByName(res)
	for _, region := range []string{"eu", "us"} {
		name := "region=" + region
		s, ok := segs[name]
		if !ok {
			t.Fatalf("no slice %s", name)
		}
		var row *policy.Row
		for i, r := range s.Verdict.Rows {
			if r.Feature == "f3" && r.Method == stat.MethodKS {
				row = &s.Verdict.Rows[i]
			}
		}
		if row == nil {
			t.Fatalf("%s: no ks row of f3", name)
		}
		values := func(span window.Span) []float64 {
			rows, err := w.conn.Query(ctx, "SELECT features_numeric['f3'] FROM inferences FINAL WHERE model_id = 'model-0' AND segment['region'] = "+chsql.String(region)+
				" AND mapContains(features_numeric, 'f3') AND timestamp >= "+chsql.Time(span.Start)+" AND timestamp < "+chsql.Time(span.End))
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var out []float64
			for rows.Next() {
				var v float64
				if err := rows.Scan(&v); err != nil {
					t.Fatal(err)
				}
				out = append(out, v)
			}
			return out
		}
		in, _ := json.Marshal(map[string][]float64{"ref": values(res.Snapshot.Reference), "cur": values(res.Snapshot.Current)})
		cmd := exec.Command(py, "-c", "import json,sys; from scipy import stats; d=json.load(sys.stdin); r=stats.ks_2samp(d['ref'], d['cur']); print(json.dumps([float(r.statistic), float(r.pvalue)]))")
		cmd.Stdin = strings.NewReader(string(in))
		outb, err := cmd.Output()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("scipy: %v: %s", err, ee.Stderr)
		}
		if err != nil {
			t.Fatal(err)
		}
		var want [2]float64
		if err := json.Unmarshal(outb, &want); err != nil {
			t.Fatal(err)
		}
		if !testcheck.WithinRel(row.Value, want[0], 1e-9, 1e-12) || !testcheck.WithinRel(row.PValue, want[1], 1e-5, 1e-6) {
			t.Errorf("%s f3 ks: %g (p %g), scipy %g (p %g)", name, row.Value, row.PValue, want[0], want[1])
		}
	}
}

// rootCauseOf is res's root cause of feature over key's slices, whose
// contributions sum to the population's PSI as stat.PSI computes it.
func rootCauseOf(t *testing.T, res Result, feature, key string) RootCause {
	t.Helper()
	for _, rc := range res.RootCauses {
		if rc.Feature != feature || rc.Key != key {
			continue
		}
		var sum float64
		for _, c := range rc.Contributions {
			sum += c.Total
		}
		var want float64
		for _, r := range res.Verdict.Rows {
			if r.Feature == feature && r.Method == stat.MethodPSI {
				want = r.Value
			}
		}
		if !testcheck.WithinRel(sum, want, 1e-9, 1e-12) || !testcheck.WithinRel(rc.PSI, want, 1e-9, 1e-12) {
			t.Errorf("%s over %s: contributions sum to %g, population PSI %g (decomposition says %g)", feature, key, sum, want, rc.PSI)
		}
		return rc
	}
	t.Fatalf("no root cause of %s over %s in %+v", feature, key, res.RootCauses)
	return RootCause{}
}

// repoRoot is the module's root directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

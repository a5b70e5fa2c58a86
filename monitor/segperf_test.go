package monitor

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/loadgen"
	"github.com/driftwatch/driftwatch/internal/testcheck"
	"github.com/driftwatch/driftwatch/monitor/perf"
	"github.com/driftwatch/driftwatch/monitor/policy"
	"github.com/driftwatch/driftwatch/monitor/rootcause"
	"github.com/driftwatch/driftwatch/monitor/window"
)

// segPerfWorld sends 8 hours of 3000 labelled inferences each (the three
// regions a third each until changes; labels a minute after their
// inference) and returns a monitor evaluating performance per region, and
// its registry.
func segPerfWorld(t *testing.T, metric string, changes ...string) (*world, *Monitor, *prometheus.Registry) {
	t.Helper()
	w := newWorld(t)
	w.base = map[string]int{}
	w.start = time.Now().UTC().Truncate(time.Hour).Add(-30 * time.Hour)
	cfg := baseConfig(w.start, 3000)
	for _, c := range changes {
		ch, err := loadgen.ParseChange(c, w.start)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Changes = append(cfg.Changes, ch)
	}
	w.send(t, stream(t, cfg, 8*3000))
	pc := DefaultPerformanceConfig()
	pc.Recompute, pc.Buckets, pc.MaxLag, pc.Metric = 8, 8, 2, metric
	pc.Estimation.Enabled = false
	tw, err := kafkaio.NewWriter(w.kopts, "retrain-triggers")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tw.Close() })
	s := testSettings(72*time.Hour, policy.Default(), &pc)
	s.Segments.Keys = []string{"region"}
	reg := prometheus.NewRegistry()
	m, err := New(Options{Settings: s, Conn: w.conn, TriggerWriter: tw, Registerer: reg,
		Now: func() time.Time { return w.start.Add(8*time.Hour + time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	return w, m, reg
}

// labelledRow is one labelled inference as the test reads it, without the
// monitor's queries.
type labelledRow struct {
	region string
	score  float64
	pred   string
	truth  string
}

// directMetrics computes accuracy (prediction_label against the truth)
// and ROC AUC (by counting the positive/negative pairs a score orders
// right, ties half) of rows, the textbook definitions.
func directMetrics(rows []labelledRow) (acc, auc float64) {
	var correct int
	var pos, neg []float64
	for _, r := range rows {
		if r.pred == r.truth {
			correct++
		}
		if r.truth == "1" {
			pos = append(pos, r.score)
		} else {
			neg = append(neg, r.score)
		}
	}
	sort.Float64s(neg)
	var u float64
	for _, p := range pos {
		below := sort.SearchFloat64s(neg, p)
		ties := sort.SearchFloat64s(neg, math.Nextafter(p, math.Inf(1))) - below
		u += float64(below) + float64(ties)/2
	}
	return float64(correct) / float64(len(rows)), u / float64(len(pos)*len(neg))
}

func (w *world) labelledRows(t *testing.T, span window.Span) []labelledRow {
	t.Helper()
	q := "SELECT i.segment['region'], assumeNotNull(i.prediction_score), assumeNotNull(i.prediction_label), assumeNotNull(o.actual_label) " +
		"FROM (SELECT * FROM inferences FINAL WHERE model_id = 'model-0' AND timestamp >= " + chsql.Time(span.Start) + " AND timestamp < " + chsql.Time(span.End) + ") AS i " +
		"INNER JOIN (SELECT * FROM outcomes FINAL WHERE model_id = 'model-0') AS o ON i.prediction_id = o.prediction_id"
	rs, err := w.conn.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []labelledRow
	for rs.Next() {
		var r labelledRow
		if err := rs.Scan(&r.region, &r.score, &r.pred, &r.truth); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func perfRootCause(t *testing.T, res PerformanceResult, key string) PerformanceRootCause {
	t.Helper()
	for _, rc := range res.RootCauses {
		if rc.Key == key {
			return rc
		}
	}
	t.Fatalf("no performance root cause of key %s in %+v", key, res.RootCauses)
	return PerformanceRootCause{}
}

// TestPerformanceSliceConcept: inside region=eu only, half the labels are
// flipped from +5h (segment_concept; the features and predictions do not
// change). Every slice's accuracy and ROC AUC agree with a direct
// computation on the window's labelled rows; the population's roc_auc
// drops, the trigger fires, and its root cause (accuracy, the mean-type
// companion) names region=eu as a within-slice drop, in the evidence and
// root_causes; the contributions sum to the population's change.
func TestPerformanceSliceConcept(t *testing.T) {
	w, m, reg := segPerfWorld(t, "", "segment_concept:region=eu:0.5@+5h")
	ctx := context.Background()
	res, err := m.EvaluatePerformance(ctx, "model-0", w.start.Add(8*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	last := len(res.Windows) - 1
	segs := res.WindowSegments[last]
	if len(segs) != 3 {
		t.Fatalf("last window: %d slices %+v, want the three regions", len(segs), segs)
	}
	rows := w.labelledRows(t, res.Windows[last].Window)
	for _, s := range segs {
		var own []labelledRow
		for _, r := range rows {
			if "region="+r.region == s.Segment {
				own = append(own, r)
			}
		}
		acc, auc := directMetrics(own)
		gotAcc, _ := s.Metric(perf.MetricAccuracy)
		gotAUC, _ := s.Metric(perf.MetricROCAUC)
		t.Logf("%s: %d rows, accuracy %.4f (direct %.4f), roc_auc %.4f (direct %.4f)", s.Segment, len(own), gotAcc.Value, acc, gotAUC.Value, auc)
		if gotAcc.Samples != int64(len(own)) || !testcheck.Within(gotAcc.Value, acc, 1e-12) || !testcheck.Within(gotAUC.Value, auc, 1e-9) {
			t.Errorf("%s: accuracy %v (%d rows), roc_auc %v; direct %v (%d rows), %v", s.Segment, gotAcc.Value, gotAcc.Samples, gotAUC.Value, acc, len(own), auc)
		}
	}
	if len(res.Decisions) == 0 || res.Decisions[0].Outcome != OutcomePublished {
		t.Fatalf("decisions %+v, want a published performance trigger", res.Decisions)
	}
	rc := perfRootCause(t, res, "region")
	var sum float64
	for _, c := range rc.Contributions {
		sum += c.Total
	}
	r0, _ := res.Reference.Metric(perf.MetricAccuracy)
	r1, _ := res.Windows[last].Metric(perf.MetricAccuracy)
	if rc.Metric != perf.MetricAccuracy || !testcheck.Within(sum, r1.Value-r0.Value, 1e-12) || !testcheck.Within(rc.Change, r1.Value-r0.Value, 1e-12) {
		t.Errorf("root cause of %s: contributions sum to %v, change %v; population's accuracy %v → %v", rc.Metric, sum, rc.Change, r0.Value, r1.Value)
	}
	if top := rc.Contributions[0]; top.Segment != "region=eu" || top.Kind() != rootcause.KindWithin || !(top.Within < 0) {
		t.Errorf("top contribution %+v, want region=eu within, negative", top)
	}
	var found bool
	for _, e := range res.Decisions[0].Trigger.Evidence {
		if e.Check == "performance_root_cause" {
			found = e.Segment == "region=eu" && e.Method == rootcause.KindWithin && e.Feature == perf.MetricAccuracy
		}
	}
	if !found {
		t.Errorf("trigger evidence %+v, want performance_root_cause region=eu within", res.Decisions[0].Trigger.Evidence)
	}
	if n := w.count(t, "SELECT count() FROM root_causes FINAL WHERE metric = 'accuracy' AND segment = 'region=eu' AND rank = 1 AND kind = 'within'"); n != 1 {
		t.Errorf("root_causes holds %d rank-1 within rows of region=eu, want 1", n)
	}
	code, out := call(t, m.API(), "GET", "/api/v1/models/model-0/root-cause?metric=accuracy", "")
	rcs, _ := out["root_causes"].([]any)
	if code != 200 || len(rcs) == 0 {
		t.Fatalf("root-cause API with metric: %d %v", code, out)
	}
	if first := rcs[0].(map[string]any); first["segment"] != "region=eu" || first["kind"] != "within" || first["metric"] != "accuracy" || first["rank"] != 1.0 {
		t.Errorf("root-cause API's first row %v, want region=eu within accuracy, rank 1", first)
	}
	// metric=* (the console's query) reads the same drop whatever metric
	// it decomposed; without metric the route reads drift root causes.
	code, outAny := call(t, m.API(), "GET", "/api/v1/models/model-0/root-cause?metric=*", "")
	if anyRCs, _ := outAny["root_causes"].([]any); code != 200 || !reflect.DeepEqual(anyRCs, rcs) {
		t.Errorf("root-cause API with metric=*: %d, %d rows, want the %d rows of metric=accuracy", code, len(anyRCs), len(rcs))
	}
	// The slices are in performance_results under their segment; the
	// population's reads keep segment ''.
	if n := w.count(t, "SELECT count() FROM performance_latest WHERE segment = 'region=eu' AND metric = 'accuracy'"); n != uint64(len(res.Windows)) {
		t.Errorf("performance_latest holds %d accuracy rows of region=eu, want %d", n, len(res.Windows))
	}
	code, out = call(t, m.API(), "GET", "/api/v1/models/model-0/performance?metric=accuracy&segment=region%3Deu&limit=1", "")
	ps, _ := out["performance"].([]any)
	if code != 200 || len(ps) != 1 || !strings.Contains(fmt.Sprint(out["sql"]), "segment = 'region=eu'") {
		t.Fatalf("performance API with segment: %d %v", code, out)
	}
	// The slices' series: each region's roc_auc, and the root cause.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]int{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range mt.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch mf.GetName() {
			case "driftwatch_segment_performance":
				if labels["metric"] == perf.MetricROCAUC {
					series[labels["segment"]]++
				}
			case "driftwatch_performance_root_cause":
				if labels["segment"] == "region=eu" && labels["kind"] == "within" && labels["metric"] == perf.MetricAccuracy {
					series["root_cause"]++
				}
			}
		}
	}
	if series["region=eu"] != 1 || series["region=us"] != 1 || series["region=apac"] != 1 || series["root_cause"] != 1 {
		t.Errorf("slice series %v, want one roc_auc per region and the root cause region=eu within", series)
	}
	eu := segs[0]
	for _, s := range segs {
		if s.Segment == "region=eu" {
			eu = s
		}
	}
	want, _ := eu.Metric(perf.MetricAccuracy)
	if v := ps[0].(map[string]any)["value"].(float64); !testcheck.Within(v, want.Value, 1e-12) {
		t.Errorf("the API's region=eu accuracy %v, want %v", v, want.Value)
	}
}

// TestPerformanceSliceMix: region=eu is worse from the start (30% of its
// labels flipped) and takes 80% of the traffic from +5h, nothing changes
// inside any slice: the accuracy drop's root cause is region=eu as a mix
// shift, and no slice's within part is as large.
func TestPerformanceSliceMix(t *testing.T) {
	w, m, _ := segPerfWorld(t, perf.MetricAccuracy, "segment_concept:region=eu:0.3@0", "segment_mix:region=eu:0.8@+5h")
	res, err := m.EvaluatePerformance(context.Background(), "model-0", w.start.Add(8*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Decisions) == 0 || res.Decisions[0].Outcome != OutcomePublished {
		t.Fatalf("decisions %+v, want a published performance trigger", res.Decisions)
	}
	rc := perfRootCause(t, res, "region")
	t.Logf("root cause: change %.4f, %+v", rc.Change, rc.Contributions)
	var sum float64
	for _, c := range rc.Contributions {
		sum += c.Total
	}
	if !testcheck.Within(sum, rc.Change, 1e-12) {
		t.Errorf("contributions sum to %v, change %v", sum, rc.Change)
	}
	top := rc.Contributions[0]
	if top.Segment != "region=eu" || top.Kind() != rootcause.KindMix || !(top.Mix < 0) || !testcheck.Between(top.CurShare, 0.75, 0.85) {
		t.Errorf("top contribution %+v, want region=eu mix, negative, share near 0.8", top)
	}
	for _, c := range rc.Contributions {
		if !(math.Abs(c.Within) < math.Abs(top.Mix)) {
			t.Errorf("%s: within part %v not below the top mix %v", c.Segment, c.Within, top.Mix)
		}
	}
}

package monitor

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/driftwatch/driftwatch/monitor/multivariate"
	"github.com/driftwatch/driftwatch/monitor/policy"
	"github.com/driftwatch/driftwatch/monitor/rootcause"
	"github.com/driftwatch/driftwatch/monitor/stat"
)

func TestFairShares(t *testing.T) {
	for _, c := range []struct {
		demand []int
		budget int
		want   []int
	}{
		{[]int{5, 5}, 100, []int{5, 5}},                            // room for all
		{[]int{10, 10, 10}, 12, []int{4, 4, 4}},                    // equal shares
		{[]int{10, 10, 10}, 13, []int{5, 4, 4}},                    // the first (most drifted) gets the remainder
		{[]int{2, 50, 50}, 22, []int{2, 10, 10}},                   // a small demand leaves the rest to the others
		{[]int{3, 3, 3, 3}, 2, []int{1, 1, 0, 0}},                  // fewer series than models: the first ones
		{[]int{0, 7}, 5, []int{0, 5}},                              // nothing wanted, nothing given
		{[]int{}, 10, []int{}},                                     // no models
		{[]int{1000, 1, 1, 1}, 10, []int{7, 1, 1, 1}},              // the big one takes what the small leave
		{[]int{4, 4, 4, 4, 4}, 0, []int{0, 0, 0, 0, 0}},            // no budget
		{[]int{12, 12, 12, 12, 12}, 59, []int{12, 12, 12, 12, 11}}, // all but one series
	} {
		got := fairShares(c.demand, c.budget)
		sum := 0
		for _, g := range got {
			sum += g
		}
		if !slices.Equal(got, c.want) || sum > c.budget {
			t.Errorf("fairShares(%v, %d) = %v, want %v", c.demand, c.budget, got, c.want)
		}
	}
}

// verdict is a policy verdict over n features, PSI psi each; sustained
// lists the features drifted for Consecutive windows.
func verdict(n int, psi float64, sustained ...string) policy.Verdict {
	var v policy.Verdict
	for i := range n {
		f := fmt.Sprintf("f%d", i)
		v.Rows = append(v.Rows, policy.Row{Feature: f, Kind: "drift", Method: stat.MethodPSI, Value: psi},
			policy.Row{Feature: f, Kind: "drift", Method: stat.MethodKS, Value: psi / 2})
	}
	v.Sustained = sustained
	return v
}

// TestSeriesBudgetIsFair: 2,000 junk models evaluated first fill a
// 10,000-series budget; one model with sustained drift evaluated after
// them still exports its drift_detected series, and the junk models'
// series are deleted once they have not been evaluated within lookback.
func TestSeriesBudgetIsFair(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	reg := prometheus.NewRegistry()
	e := newExporter(reg, 50, 10_000, 7*24*time.Hour, clock)
	for i := range 2000 {
		e.update(fmt.Sprintf("aaaa-%04d", i), 100, verdict(3, 0.01), nil, nil) // 1 + 3 + 6 = 10 series each
	}
	e.update("zz-real", 1000, verdict(20, 0.9, "f3"), nil, nil)
	exported := func(model, feature string) (float64, bool) {
		return gathered(t, reg, "driftwatch_drift_detected", model, feature, "")
	}
	if _, ok := gathered(t, reg, "driftwatch_drift_score", "zz-real", "f3", stat.MethodPSI); !ok {
		t.Error("the drifted model's PSI for f3, which its alert quotes, is not exported")
	}
	if _, ok := gathered(t, reg, "driftwatch_drift_score", "zz-real", "f3", stat.MethodKS); !ok {
		t.Error("the drifted model's KS for f3, which its alert quotes, is not exported")
	}
	if v, ok := exported("zz-real", "f3"); !ok || v != 1 {
		t.Errorf("driftwatch_drift_detected{model=zz-real,feature=f3} = %v (exported %v), want 1", v, ok)
	}
	total := testutil.CollectAndCount(e)
	if total > 10_000 {
		t.Errorf("%d series exported, max_series 10000", total)
	}
	if e.shown["zz-real"] < 5 {
		t.Errorf("the drifted model got %d series, the junk models about 5 each", e.shown["zz-real"])
	}

	// A week later only the real model is evaluated: the junk models'
	// series go, and the real model gets its whole demand.
	now = now.Add(7*24*time.Hour + time.Minute)
	e.update("zz-real", 1000, verdict(20, 0.9, "f3"), nil, nil)
	if n := testutil.CollectAndCount(e); n != e.models["zz-real"].len() || len(e.models) != 1 {
		t.Errorf("after lookback: %d series of %d models, want only zz-real's %d", n, len(e.models), e.models["zz-real"].len())
	}
	if got := testutil.ToFloat64(e.dropped); !(got > 0) {
		t.Errorf("series_dropped_total = %v, want the junk models' cut series counted", got)
	}
	if v, ok := exported("zz-real", "f3"); !ok || v != 1 {
		t.Errorf("after lookback: driftwatch_drift_detected{model=zz-real,feature=f3} = %v (exported %v), want 1", v, ok)
	}
}

// TestSegmentSeriesWithinBudget: a model with 20 drifted slices gets no
// more series than its fair share of max_series; its root cause (in the
// head, beside the statistics its alert quotes) is exported before its
// slices' detected series, which go first when the share is short.
func TestSegmentSeriesWithinBudget(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newExporter(reg, 50, 30, time.Hour, time.Now)
	e.update("other", 100, verdict(5, 0.01), nil, nil) // 1 + 5 + 10 = 16 series
	var segs []SegmentResult
	for i := range 20 {
		var sv policy.Verdict
		sv.Sustained = []string{"f0"}
		segs = append(segs, SegmentResult{Name: fmt.Sprintf("region=r%02d", i), Verdict: sv})
	}
	rcs := []RootCause{{Feature: "f0", Key: "region", PSI: 0.9, Contributions: []rootcause.Contribution{{Segment: "region=r00", Mix: 0.1, Within: 0.5, Total: 0.6}}}}
	e.update("m", 1000, verdict(2, 0.9, "f0"), segs, rcs)
	if n := testutil.CollectAndCount(e); n > 30 {
		t.Errorf("%d series exported, max_series 30", n)
	}
	if e.shown["m"] > 30-e.shown["other"] || e.shown["m"] < 15 {
		t.Errorf("m shows %d series, other %d: want m's fair share (15) or what other leaves", e.shown["m"], e.shown["other"])
	}
	ms, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var rootCause bool
	for _, mf := range ms {
		if mf.GetName() == "driftwatch_drift_root_cause" {
			for _, m := range mf.GetMetric() {
				rootCause = rootCause || m.GetGauge().GetValue() == 0.6
			}
		}
	}
	if !rootCause {
		t.Error("the sustained feature's root cause is not exported")
	}
}

// TestHighCardinalityExported: a feature whose category methods were
// skipped has no PSI or KS to rank it, yet its high_cardinality row is
// exported.
func TestHighCardinalityExported(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newExporter(reg, 50, 10_000, time.Hour, time.Now)
	v := verdict(2, 0.01)
	v.Rows = append(v.Rows,
		policy.Row{Feature: "user_id", Kind: policy.KindDrift, Method: stat.MethodPSI, Value: math.NaN(), Status: "skipped"},
		policy.Row{Feature: "user_id", Kind: policy.KindDataQuality, Method: policy.CheckHighCardinality, Value: 500_000})
	e.update("m", 1000, v, nil, nil)
	ms, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := math.NaN()
	for _, mf := range ms {
		if mf.GetName() != "driftwatch_data_quality" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["model"] == "m" && l["feature"] == "user_id" && l["check"] == "high_cardinality" {
				found = m.GetGauge().GetValue()
			}
		}
	}
	if !(found == 500_000) {
		t.Errorf("driftwatch_data_quality{check=high_cardinality,feature=user_id} = %v, want 500000", found)
	}
}

// gathered is the value of metric name{model, feature[, method or check]}
// in reg, and whether it is there.
func gathered(t *testing.T, reg *prometheus.Registry, name, model, feature, method string) (float64, bool) {
	t.Helper()
	ms, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range ms {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["model"] == model && l["feature"] == feature && (method == "" || l["method"] == method || l["check"] == method) {
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return math.NaN(), false
}

// TestMultivariateAlwaysExported: with export_features 2 and 5 drifting
// features, the two multivariate pseudo-features are exported beside the
// 2 most drifted features — scores and detected — and no other feature.
func TestMultivariateAlwaysExported(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newExporter(reg, 2, 10_000, time.Hour, time.Now)
	v := verdict(5, 0.5, multivariate.ClassifierFeature)
	v.Rows = append(v.Rows,
		policy.Row{Feature: multivariate.ReconstructionFeature, Kind: policy.KindDrift, Method: multivariate.MethodReconstruction, Value: 1.2},
		policy.Row{Feature: multivariate.ClassifierFeature, Kind: policy.KindDrift, Method: multivariate.MethodClassifier, Value: 0.9})
	e.update("m", 1000, v, nil, nil)
	if got := testutil.ToFloat64(gaugeOf(t, reg, "driftwatch_drift_score", map[string]string{"model": "m", "feature": multivariate.ClassifierFeature, "method": multivariate.MethodClassifier})); got != 0.9 {
		t.Errorf("classifier score %v, want 0.9", got)
	}
	if got := testutil.ToFloat64(gaugeOf(t, reg, "driftwatch_drift_detected", map[string]string{"model": "m", "feature": multivariate.ClassifierFeature})); got != 1 {
		t.Errorf("classifier detected %v, want 1 (sustained)", got)
	}
	if got := testutil.ToFloat64(gaugeOf(t, reg, "driftwatch_drift_score", map[string]string{"model": "m", "feature": multivariate.ReconstructionFeature, "method": multivariate.MethodReconstruction})); got != 1.2 {
		t.Errorf("reconstruction score %v, want 1.2", got)
	}
	features := map[string]bool{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "driftwatch_drift_detected" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "feature" {
					features[lp.GetValue()] = true
				}
			}
		}
	}
	if len(features) != 4 {
		t.Errorf("detected series for %v, want 2 features and the 2 pseudo-features", features)
	}
}

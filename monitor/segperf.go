package monitor

import (
	"context"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftwatch/driftwatch/monitor/perf"
	"github.com/driftwatch/driftwatch/monitor/rootcause"
	"github.com/driftwatch/driftwatch/monitor/window"
	"github.com/driftwatch/driftwatch/schemas"
)

// performanceSlices chooses the slices of model's performance windows:
// the drift slices' keys and max_segments, planned over the reference and
// the span of the recomputed windows (window.PlanSlices), and min_samples
// (the model's policy) per window. None without segment keys.
func (m *Monitor) performanceSlices(ctx context.Context, model string, ref, cur window.Span) (perf.Slices, error) {
	pol := m.opts.Policy
	if mc, ok := m.opts.Models[model]; ok && mc.Policy != nil {
		pol = *mc.Policy
	}
	so := m.segmentOptions(model, pol)
	if so == nil {
		return perf.Slices{}, nil
	}
	// The windows may overlap the reference (rows of both count as
	// current there): min_samples applies per window (ComputeSlices), not
	// to the plan.
	plan := *so
	plan.MinSamples = 0
	p, err := window.PlanSlices(ctx, m.opts.Conn, model, ref, cur, plan)
	if err != nil {
		return perf.Slices{}, err
	}
	return perf.Slices{Names: p.Names, Expr: p.Expr, MinSamples: so.MinSamples}, nil
}

// PerformanceRootCause ranks the slices of one segment key by their
// contribution to the change of a mean-type metric between the reference
// and a window (rootcause.DecomposeMean).
type PerformanceRootCause struct {
	// Metric is the metric decomposed (root_causes.metric): the primary metric when it is a
	// mean (accuracy, log_loss, brier, mae) or rmse (MSE rescaled), else
	// its mean-type companion (accuracy for a classifier, rmse for r2 and
	// mape).
	Metric string `json:"metric"`
	Key    string `json:"segment_key"`
	// Change is the population's change of Metric, current − reference,
	// the sum of Contributions' totals.
	Change        float64                  `json:"change"`
	Contributions []rootcause.Contribution `json:"contributions"`
}

// decomposedMetric is the metric whose change a drop of primary is
// decomposed into, and the sum it is a mean of.
func decomposedMetric(primary string, task perf.Task) (metric, sum string) {
	switch primary {
	case perf.MetricAccuracy, perf.MetricLogLoss, perf.MetricBrier, perf.MetricMAE:
		return primary, primary
	case perf.MetricRMSE, perf.MetricR2, perf.MetricMAPE:
		return perf.MetricRMSE, perf.MetricMSE
	}
	if task == perf.Regression {
		return perf.MetricRMSE, perf.MetricMSE
	}
	return perf.MetricAccuracy, perf.MetricAccuracy
}

// performanceRootCauses decomposes the change of primary's mean-type
// metric from the reference (pop0, its slices ref) to a window (pop1, its
// slices cur) over each key's slices. A slice missing in a window (fewer
// than min_samples there) counts in the rest.
func performanceRootCauses(primary string, task perf.Task, pop0, pop1 perf.Result, ref, cur []perf.Result) []PerformanceRootCause {
	metric, sum := decomposedMetric(primary, task)
	p0, ok0 := pop0.Sum(sum)
	p1, ok1 := pop1.Sum(sum)
	if !ok0 || !ok1 || p0.N == 0 || p1.N == 0 {
		return nil
	}
	type pair struct{ ref, cur rootcause.MeanSums }
	byKey := map[string]map[string]*pair{}
	var keys []string
	add := func(rs []perf.Result, current bool) {
		for _, r := range rs {
			s, ok := r.Sum(sum)
			if !ok {
				continue
			}
			k, _, _ := strings.Cut(r.Segment, "=")
			if byKey[k] == nil {
				byKey[k] = map[string]*pair{}
				keys = append(keys, k)
			}
			p := byKey[k][r.Segment]
			if p == nil {
				p = &pair{}
				byKey[k][r.Segment] = p
			}
			x := rootcause.MeanSums{N: s.N, Sum: s.Total}
			if current {
				p.cur = x
			} else {
				p.ref = x
			}
		}
	}
	add(ref, false)
	add(cur, true)
	slices.Sort(keys)
	var out []PerformanceRootCause
	for _, k := range keys {
		names := make([]string, 0, len(byKey[k]))
		for n := range byKey[k] {
			names = append(names, n)
		}
		slices.Sort(names)
		var sl []rootcause.MeanSlice
		for _, n := range names {
			p := byKey[k][n]
			// A slice scored in one window only would count as a mix
			// shift of its whole share: it is below min_samples in the
			// other, not absent; leave it in the rest.
			if p.ref.N > 0 && p.cur.N > 0 {
				sl = append(sl, rootcause.MeanSlice{Name: n, Ref: p.ref, Cur: p.cur})
			}
		}
		change, cs, err := rootcause.DecomposeMean(rootcause.MeanSums{N: p0.N, Sum: p0.Total}, rootcause.MeanSums{N: p1.N, Sum: p1.Total}, sl)
		if err != nil || math.IsNaN(change) {
			continue
		}
		if sum == perf.MetricMSE {
			to := math.Sqrt(p1.Total/float64(p1.N)) - math.Sqrt(p0.Total/float64(p0.N))
			cs, change = rootcause.Rescale(cs, change, to), to
		}
		out = append(out, PerformanceRootCause{Metric: metric, Key: k, Change: change, Contributions: cs})
	}
	return out
}

// performanceRootCauseEvidence is the top slice of each key, as trigger
// evidence: check performance_root_cause, feature the metric decomposed,
// method mix or within, value its contribution, threshold the
// population's change.
func performanceRootCauseEvidence(rcs []PerformanceRootCause, cur []perf.Result) []schemas.Evidence {
	var ev []schemas.Evidence
	for _, rc := range rcs {
		if len(rc.Contributions) == 0 || rc.Contributions[0].Segment == rootcause.RestSegment {
			continue
		}
		top := rc.Contributions[0]
		var n int64
		for _, r := range cur {
			if r.Segment == top.Segment {
				n = r.Labelled
			}
		}
		ev = append(ev, schemas.Evidence{Check: "performance_root_cause", Feature: rc.Metric, Segment: top.Segment, Method: top.Kind(),
			Value: top.Total, Threshold: rc.Change, Samples: n})
	}
	return ev
}

// WritePerformanceRootCauses inserts a window's performance root causes
// into root_causes: feature empty, metric the metric decomposed,
// population_psi the population's change of it.
func (s *Store) WritePerformanceRootCauses(ctx context.Context, model string, w window.Span, rcs []PerformanceRootCause, computedAt time.Time) error {
	if len(rcs) == 0 {
		return nil
	}
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO root_causes (model_id, window_start, window_end, feature, metric, segment_key, segment, rank, kind, mix, within, total, reference_share, current_share, population_psi, computed_at)")
	if err != nil {
		return err
	}
	defer batch.Abort() //nolint:errcheck // a no-op after Send
	for _, rc := range rcs {
		for i, c := range rc.Contributions {
			if err := batch.Append(model, w.Start, w.End, "", rc.Metric, rc.Key, c.Segment, uint16(i+1), c.Kind(),
				c.Mix, c.Within, c.Total, c.RefShare, c.CurShare, rc.Change, computedAt); err != nil {
				return err
			}
		}
	}
	return batch.Send()
}

// segmentPerformanceSeries are the slices' series of a performance round:
// the root cause of the drop (its top slice per key), then the primary
// metric of every slice of the newest window with labels. They follow the
// model's other performance series in the series budget, so a tight
// budget drops them first, and they number at most keys × (max_segments
// + 1) + keys.
func (m *Monitor) segmentPerformanceSeries(model string, res PerformanceResult) []prometheus.Metric {
	var ms []prometheus.Metric
	for _, rc := range res.RootCauses {
		if len(rc.Contributions) > 0 {
			top := rc.Contributions[0]
			ms = append(ms, prometheus.MustNewConstMetric(m.perfDesc.rootCause, prometheus.GaugeValue, top.Total, model, rc.Metric, top.Segment, top.Kind()))
		}
	}
	for i := len(res.Windows) - 1; i >= 0; i-- {
		if res.Windows[i].Labelled == 0 || i >= len(res.WindowSegments) {
			continue
		}
		for _, s := range res.WindowSegments[i] {
			if mt, ok := s.Metric(res.Primary); ok && mt.Status == perf.StatusOK {
				ms = append(ms, prometheus.MustNewConstMetric(m.perfDesc.segment, prometheus.GaugeValue, mt.Value, model, s.Segment, mt.Name))
			}
		}
		break
	}
	return ms
}

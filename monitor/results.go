package monitor

import (
	"math"

	"github.com/driftwatch/driftwatch/monitor/policy"
)

// MethodVerdict is the method column of the per-feature verdict row: value
// 1 when every decision method flagged the feature, 0 otherwise; drifted
// and sustained as decided. History is read back from these rows.
const MethodVerdict = "verdict"

func nullable(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

func finite(x float64) float64 {
	if math.IsInf(x, 1) {
		return math.MaxFloat64
	}
	return x
}

// verdictRows returns a window's per-feature verdict rows (method
// MethodVerdict), written to drift_results with the methods' rows.
func verdictRows(v policy.Verdict) []policy.Row {
	var out []policy.Row
	for _, f := range verdictFeatures(v) {
		r := policy.Row{Feature: f.name, Kind: f.kind, Method: MethodVerdict, PValue: math.NaN(), PValueAdjusted: math.NaN(), Threshold: 1,
			Status: f.status, Samples: f.samples, ReferenceSamples: f.ref, Note: f.note}
		if f.drifted {
			r.Value, r.Drifted = 1, true
		}
		r.Sustained = f.sustained
		out = append(out, r)
	}
	return out
}

type featureVerdict struct {
	name, kind, status, note string
	drifted, sustained       bool
	samples, ref             int64
}

func verdictFeatures(v policy.Verdict) []featureVerdict {
	drifted := map[string]bool{}
	for _, f := range v.Drifted {
		drifted[f] = true
	}
	sustained := map[string]bool{}
	for _, f := range v.Sustained {
		sustained[f] = true
	}
	// Sustained, but kept from triggering by min_importance: the verdict
	// row says sustained, with the methods' note.
	unimportant := map[string]string{}
	for _, f := range v.Unimportant {
		sustained[f] = true
		unimportant[f] = policy.NoteBelowMinImportance
	}
	for _, r := range v.Rows {
		if _, ok := unimportant[r.Feature]; ok && r.Note != "" {
			unimportant[r.Feature] = r.Note
		}
	}
	insufficient := map[string]bool{}
	for _, f := range v.Insufficient {
		insufficient[f] = true
	}
	skipped := map[string]bool{}
	for _, f := range v.Skipped {
		skipped[f] = true
	}
	seen := map[string]bool{}
	var out []featureVerdict
	for _, r := range v.Rows {
		if r.Kind == policy.KindDataQuality || seen[r.Feature] {
			continue
		}
		seen[r.Feature] = true
		fv := featureVerdict{name: r.Feature, kind: r.Kind, status: policy.StatusOK, drifted: drifted[r.Feature], sustained: sustained[r.Feature], samples: r.Samples, ref: r.ReferenceSamples}
		switch {
		case skipped[r.Feature]:
			fv.status, fv.note = policy.StatusSkipped, r.Note
		case insufficient[r.Feature]:
			fv.status = policy.StatusInsufficient
		case fv.drifted:
			fv.status = policy.StatusDrifted
			fv.note = unimportant[r.Feature]
		}
		out = append(out, fv)
	}
	return out
}

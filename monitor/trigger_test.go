package monitor

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/monitor/policy"
	"github.com/driftwatch/driftwatch/monitor/window"
	"github.com/driftwatch/driftwatch/schemas"
)

// TestCandidatesWithinTriggerLimits: a verdict with 3,000 drifted
// features, their names 256 bytes that JSON escapes to six bytes each, and
// one name over the limit, still gives triggers the trainer accepts
// (schemas.EncodeRetrainTrigger: at most 1,000 evidence rows and 1 MiB),
// keeping the most drifted rows.
func TestCandidatesWithinTriggerLimits(t *testing.T) {
	end := time.Date(2025, 11, 20, 14, 0, 0, 0, time.UTC)
	snap := &window.Snapshot{Model: "churn", Reference: window.Span{Start: end.Add(-48 * time.Hour), End: end.Add(-24 * time.Hour)},
		Current: window.Span{Start: end.Add(-time.Hour), End: end}}
	for _, tc := range []struct {
		name    string
		nameLen int // of each feature name
		wantMax int // evidence rows kept at most
	}{
		{"3000 short names", 0, schemas.MaxTriggerEvidence},
		{"3000 names of 256 escaped bytes", schemas.MaxTriggerKeyBytes, schemas.MaxTriggerEvidence},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v policy.Verdict
			name := func(i int) string {
				n := fmt.Sprintf("f%04d", i)
				if tc.nameLen > 0 {
					n += strings.Repeat("<", tc.nameLen-len(n))
				}
				return n
			}
			for i := range 3000 {
				// Feature i's statistic is i/1000 over a 0.2 threshold: the
				// highest numbers are the most drifted. Half have p-values
				// instead: 10^-(i/100) against 0.05.
				r := policy.Row{Feature: name(i), Kind: policy.KindDrift, Method: "psi", Value: float64(i) / 1000, Threshold: 0.2,
					PValue: math.NaN(), PValueAdjusted: math.NaN(), Drifted: true, Samples: 1000}
				if i%2 == 1 {
					p := math.Pow(10, -float64(i)/100)
					r.Method, r.Value, r.PValue, r.PValueAdjusted, r.Threshold = "ks", 0.5, p, p, 0.05
				}
				v.Rows = append(v.Rows, r)
				v.Sustained = append(v.Sustained, r.Feature)
			}
			long := strings.Repeat("x", schemas.MaxTriggerKeyBytes+1)
			v.Rows = append(v.Rows, policy.Row{Feature: long, Kind: policy.KindDrift, Method: "psi", Value: 1e9, Threshold: 0.2, PValue: math.NaN(), Drifted: true})
			v.Sustained = append(v.Sustained, long)

			cs := candidates(DefaultTriggerConfig(), snap, v, "3", end)
			if len(cs) != 1 || cs[0].Reason != schemas.TriggerFeatureDrift {
				t.Fatalf("%d candidates, want one feature_drift trigger", len(cs))
			}
			tr := cs[0]
			data, err := schemas.EncodeRetrainTrigger(tr)
			if err != nil {
				t.Fatalf("the trainer would refuse the trigger: %v", err)
			}
			if _, err := schemas.DecodeRetrainTrigger(data); err != nil {
				t.Fatalf("decode: %v", err)
			}
			t.Logf("%d evidence rows, %d bytes", len(tr.Evidence), len(data))
			if n := len(tr.Evidence); n > tc.wantMax || n < tc.wantMax/2 {
				t.Errorf("%d evidence rows, want at most %d (and most of them)", n, tc.wantMax)
			}
			// The most drifted: ranked by value/threshold or log p/log alpha,
			// the kept rows are the features with the highest numbers; the
			// one over the name limit is left out.
			lowest := 3000
			for _, e := range tr.Evidence {
				if e.Feature == long {
					t.Fatal("evidence row with a name over the limit")
				}
				var i int
				if _, err := fmt.Sscanf(e.Feature, "f%04d", &i); err != nil {
					t.Fatalf("feature %q: %v", e.Feature[:10], err)
				}
				lowest = min(lowest, i)
			}
			// Statistic rows: drift i/200; p-value rows: (i/100)/1.301 = i/130.1.
			// The kept ones are those with drift above a cut: each kind's
			// lowest kept is above the cut, and no row of higher drift is
			// missing.
			kept := map[string]bool{}
			for _, e := range tr.Evidence {
				kept[e.Feature] = true
			}
			cut := math.Inf(1)
			for _, e := range tr.Evidence {
				cut = min(cut, drift(e))
			}
			for i := range 3000 {
				r := v.Rows[i]
				var d float64
				if i%2 == 1 {
					d = math.Log(r.PValue) / math.Log(0.05)
				} else {
					d = r.Value / 0.2
				}
				if d > cut && !kept[r.Feature] {
					t.Fatalf("feature %d (drift %.2f) left out while one of drift %.2f was kept", i, d, cut)
				}
			}
			if lowest < 1000 {
				t.Errorf("kept feature %d, a weakly drifted one", lowest)
			}
		})
	}
}

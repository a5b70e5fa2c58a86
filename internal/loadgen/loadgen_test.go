package loadgen

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/internal/testcheck"
	"github.com/driftwatch/driftwatch/schemas"
)

const testPrefix = "driftwatch."

// run generates ticks inference ticks and then drains the generator.
func run(t testing.TB, cfg Config, ticks int64) ([]Event, *Generator) {
	t.Helper()
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var evs []Event
	for g.Ticks() < ticks {
		evs = append(evs, g.Next())
	}
	evs = append(evs, g.Drain()...)
	return evs, g
}

func schemaHeader(ev Event) string {
	for _, h := range ev.Headers {
		if h.Key == schemas.SchemaHeader {
			return string(h.Value)
		}
	}
	return ""
}

// decoded holds the copies of decoded events the drift tests look at.
type decoded struct {
	inferences []schemas.Inference
	outcomes   map[string]schemas.Outcome // by prediction id
	metrics    []schemas.BusinessMetric
}

// decodeAll checks every event against the real decoder: valid ones decode
// and match their Event fields, malformed ones fail with their reason.
func decodeAll(t *testing.T, cfg Config, evs []Event) decoded {
	t.Helper()
	cfg = cfg.withDefaults()
	var now time.Time
	dec, err := schemas.NewDecoder(schemas.Options{
		Limits: schemas.Limits{MaxBytes: cfg.MaxBytes, MaxFeatures: cfg.MaxFeatures},
		Now:    func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	out := decoded{outcomes: map[string]schemas.Outcome{}}
	var inf schemas.Inference
	var oc schemas.Outcome
	var bm schemas.BusinessMetric
	fails := 0
	fail := func(i int, ev Event, format string, args ...any) {
		t.Helper()
		if fails++; fails <= 20 {
			t.Errorf("event %d (%s %s %q): %s\n%.300s", i, ev.Topic, ev.Defect, ev.EventID, fmt.Sprintf(format, args...), ev.Value)
		}
	}
	for i, ev := range evs {
		if ev.Time.After(now) {
			now = ev.Time
		}
		kind, kerr := schemas.KindForMessage(schemaHeader(ev), testPrefix+ev.Topic, testPrefix)
		if ev.Malformed == schemas.ReasonUnsupportedSchema {
			if r, _ := schemas.ReasonOf(kerr); r != schemas.ReasonUnsupportedSchema {
				fail(i, ev, "schema header %q: got error %v, want unsupported_schema", schemaHeader(ev), kerr)
			}
			continue
		}
		if kerr != nil || kind != ev.Kind {
			fail(i, ev, "schema header %q: kind %v, error %v", schemaHeader(ev), kind, kerr)
			continue
		}
		var derr error
		var id, modelID string
		var ts time.Time
		switch ev.Kind {
		case schemas.KindInference:
			_, derr = dec.DecodeInference(ev.Value, &inf)
			id, modelID, ts = inf.EventID, inf.ModelID, inf.Timestamp
		case schemas.KindOutcome:
			_, derr = dec.DecodeOutcome(ev.Value, &oc)
			id, modelID, ts = oc.EventID, oc.ModelID, oc.Timestamp
		case schemas.KindBusinessMetric:
			_, derr = dec.DecodeBusinessMetric(ev.Value, &bm)
			id, modelID, ts = bm.EventID, bm.ModelID, bm.Timestamp
		default:
			fail(i, ev, "unexpected kind %v", ev.Kind)
			continue
		}
		if ev.Malformed != "" {
			if r, ok := schemas.ReasonOf(derr); !ok || r != ev.Malformed {
				fail(i, ev, "got error %v, want reason %s", derr, ev.Malformed)
			}
			continue
		}
		if derr != nil {
			fail(i, ev, "valid event does not decode: %v", derr)
			continue
		}
		if id != ev.EventID || modelID != string(ev.Key) || !ts.Equal(ev.Time) {
			fail(i, ev, "decoded id %q model %q time %s, event says %q %q %s", id, modelID, ts, ev.EventID, ev.Key, ev.Time)
		}
		if ev.Duplicate {
			continue
		}
		switch ev.Kind {
		case schemas.KindInference:
			c := inf
			c.Numeric, c.Categorical, c.Segment = maps.Clone(inf.Numeric), maps.Clone(inf.Categorical), maps.Clone(inf.Segment)
			c.MissingFeatures = slices.Clone(inf.MissingFeatures)
			out.inferences = append(out.inferences, c)
		case schemas.KindOutcome:
			out.outcomes[oc.PredictionID] = oc
		case schemas.KindBusinessMetric:
			out.metrics = append(out.metrics, bm)
		}
	}
	return out
}

func TestEveryEventDecodesAsLabelled(t *testing.T) {
	for _, task := range []Task{Binary, Regression} {
		t.Run(string(task), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Seed = 42
			cfg.Task = task
			cfg.Models = 3
			cfg.MalformedShare = 0.05
			cfg.DuplicateShare = 0.02
			cfg.MaxBytes = 16 << 10
			cfg.MaxFeatures = 100
			cfg.Outcomes = Outcomes{Share: 0.7, Delay: 5 * time.Second}
			cfg.BusinessMetrics.Bucket = 10 * time.Second
			cfg.Changes = []Change{{Kind: Missingness, Feature: "f1", Value: 0.2, AtEvent: 100}, {Kind: NewCategories, Feature: "c0", Value: 0.2, AtEvent: 100}}
			cfg.RecordIDs = true
			const ticks = 50000
			evs, g := run(t, cfg, ticks)
			decodeAll(t, cfg, evs)

			st := g.Stats()
			if st.Ticks != ticks || int(st.Messages) != len(evs) {
				t.Errorf("stats: %d ticks, %d messages; want %d, %d", st.Ticks, st.Messages, ticks, len(evs))
			}
			// Count independently of Stats, and check ids and duplicates.
			valid := map[string][]byte{}
			var dups, malformed, infs int64
			reasons := map[schemas.Reason]int64{}
			defects := map[string]bool{}
			var lastTime time.Time
			for i, ev := range evs {
				switch {
				case ev.Malformed != "":
					malformed++
					reasons[ev.Malformed]++
					defects[ev.Defect] = true
				case ev.Duplicate:
					dups++
					orig, ok := valid[ev.EventID]
					if !ok || !bytes.Equal(orig, ev.Value) {
						t.Fatalf("event %d: duplicate of %q is not byte-identical to an earlier event", i, ev.EventID)
					}
				default:
					if _, seen := valid[ev.EventID]; seen {
						t.Fatalf("event %d: event id %q repeats", i, ev.EventID)
					}
					valid[ev.EventID] = ev.Value
					if ev.Kind == schemas.KindInference {
						infs++
					}
				}
				// Inferences, outcomes and malformed events come out in
				// event-time order.
				if !ev.Duplicate && ev.Kind != schemas.KindBusinessMetric {
					if ev.Time.Before(lastTime) {
						t.Fatalf("event %d at %s comes after an event at %s", i, ev.Time, lastTime)
					}
					lastTime = ev.Time
				}
			}
			if int64(len(valid)) != st.UniqueValid() || dups != st.DuplicateCount() || malformed != st.MalformedCount() || infs != st.Inferences {
				t.Errorf("stats %+v disagree with counted: %d unique valid, %d inferences, %d duplicates, %d malformed", st, len(valid), infs, dups, malformed)
			}
			if !maps.Equal(reasons, st.Malformed) {
				t.Errorf("malformed by reason: stats %v, counted %v", st.Malformed, reasons)
			}
			if got := len(g.InferenceIDs()); int64(got) != infs {
				t.Errorf("InferenceIDs has %d ids, want %d", got, infs)
			}
			// Shares: about 5% malformed and 2% duplicated ticks (±4 sd).
			checkShare(t, "malformed", float64(malformed), ticks, 0.05)
			checkShare(t, "duplicate inferences", float64(st.Duplicates["inferences"]), ticks, 0.02)
			for _, r := range schemas.Reasons() {
				if reasons[r] == 0 {
					t.Errorf("no malformed event with reason %s", r)
				}
			}
			for _, rd := range defectsByReason {
				for _, d := range rd.defects {
					if !defects[d] {
						t.Errorf("defect %s never generated", d)
					}
				}
			}
		})
	}
}

func checkShare(t *testing.T, what string, got float64, n int, p float64) {
	t.Helper()
	sd := math.Sqrt(float64(n) * p * (1 - p))
	if !testcheck.Within(got, float64(n)*p, 4*sd) {
		t.Errorf("%s: %g of %d, want %g ± %.0f", what, got, n, float64(n)*p, 4*sd)
	}
}

func TestSameSeedSameBytes(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Seed = 7
	cfg.Models = 2
	cfg.MalformedShare, cfg.DuplicateShare = 0.05, 0.05
	cfg.MaxBytes, cfg.MaxFeatures = 16<<10, 100
	cfg.BusinessMetrics.Bucket = time.Second
	cfg.Changes = []Change{{Kind: ConceptDrift, Value: 1, AtEvent: 5000}, {Kind: MeanShift, Feature: "f0", Value: 1, AtTime: DefaultStart.Add(30 * time.Second)}}
	a, _ := run(t, cfg, 10000)
	b, _ := run(t, cfg, 10000)
	if len(a) != len(b) {
		t.Fatalf("same seed: %d and %d events", len(a), len(b))
	}
	for i := range a {
		x, y := a[i], b[i]
		if !bytes.Equal(x.Value, y.Value) || !bytes.Equal(x.Key, y.Key) || x.Topic != y.Topic || schemaHeader(x) != schemaHeader(y) ||
			!x.Time.Equal(y.Time) || x.Duplicate != y.Duplicate || x.Malformed != y.Malformed || x.EventID != y.EventID {
			t.Fatalf("same seed, event %d differs:\n%+v\n%+v", i, x, y)
		}
	}
	cfg.Seed = 8
	c, _ := run(t, cfg, 100)
	if bytes.Equal(a[0].Value, c[0].Value) {
		t.Error("seeds 7 and 8 start with the same event")
	}
}

// split returns the decoded inferences before and after tick at.
func split(cfg Config, infs []schemas.Inference, at int64) (before, after []schemas.Inference) {
	cut := cfg.withDefaults().Start.Add(time.Duration(at) * cfg.withDefaults().Step)
	for _, in := range infs {
		if in.Timestamp.Before(cut) {
			before = append(before, in)
		} else {
			after = append(after, in)
		}
	}
	return before, after
}

// meanSD of a numeric feature over the events that have it, and the share
// of events where it is null.
func meanSD(infs []schemas.Inference, f string) (mean, sd, nullShare float64) {
	var n, s, ss float64
	nulls := 0
	for _, in := range infs {
		x, ok := in.Numeric[f]
		if !ok {
			nulls++
			continue
		}
		n++
		s += x
		ss += x * x
	}
	mean = s / n
	return mean, math.Sqrt(ss/n - mean*mean), float64(nulls) / float64(len(infs))
}

func TestDistributionChanges(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Seed = 3
	cfg.BusinessMetrics.Enabled = false
	cfg.Outcomes.Share = 0
	const at = 10000
	cfg.Changes = []Change{
		{Kind: MeanShift, Feature: "f3", Value: 2, AtEvent: at},
		{Kind: VarianceChange, Feature: "f5", Value: 3, AtEvent: at},
		{Kind: Missingness, Feature: "f6", Value: 0.3, AtEvent: at},
		{Kind: NewCategories, Feature: "c1", Value: 0.25, AtEvent: at},
		{Kind: Missingness, Feature: "c2", Value: 0.1, AtEvent: at},
	}
	evs, _ := run(t, cfg, 2*at)
	before, after := split(cfg, decodeAll(t, cfg, evs).inferences, at)
	if len(before) != at || len(after) != at {
		t.Fatalf("%d inferences before and %d after the change, want %d each", len(before), len(after), at)
	}
	m0, sd0, _ := meanSD(before, "f3")
	m1, sd1, _ := meanSD(after, "f3")
	// The standard error of the shift estimate is about sd·sqrt(2/10000),
	// 0.014 sd; allow 0.06 sd.
	if shift := (m1 - m0) / sd0; !testcheck.Within(shift, 2, 0.06) {
		t.Errorf("f3: mean moved %.3f sd, want 2", shift)
	}
	if r := sd1 / sd0; !testcheck.Within(r, 1, 0.05) {
		t.Errorf("f3: a mean shift changed the sd by a factor %.3f", r)
	}
	_, v0, _ := meanSD(before, "f5")
	_, v1, _ := meanSD(after, "f5")
	if r := v1 / v0; !testcheck.Within(r, 3, 0.15) {
		t.Errorf("f5: sd grew by a factor %.3f, want 3", r)
	}
	for _, f := range []string{"f0", "f4", "f19"} {
		a, s, _ := meanSD(before, f)
		b, s1, _ := meanSD(after, f)
		if !testcheck.AtMost(math.Abs(b-a)/s, 0.06) || !testcheck.Within(s1/s, 1, 0.05) {
			t.Errorf("%s changed without a change: mean %.3f → %.3f, sd %.3f → %.3f", f, a, b, s, s1)
		}
	}
	_, _, n0 := meanSD(before, "f6")
	_, _, n1 := meanSD(after, "f6")
	if n0 != 0 || !testcheck.Within(n1, 0.3, 0.02) {
		t.Errorf("f6: null share %.3f before and %.3f after, want 0 and 0.3", n0, n1)
	}
	catShare := func(infs []schemas.Inference, f string, pred func(v string, ok bool) bool) float64 {
		n := 0
		for _, in := range infs {
			v, ok := in.Categorical[f]
			if pred(v, ok) {
				n++
			}
		}
		return float64(n) / float64(len(infs))
	}
	isNew := func(v string, ok bool) bool { return ok && strings.HasPrefix(v, "new_") }
	if s0, s1 := catShare(before, "c1", isNew), catShare(after, "c1", isNew); s0 != 0 || !testcheck.Within(s1, 0.25, 0.02) {
		t.Errorf("c1: unseen-category share %.3f before and %.3f after, want 0 and 0.25", s0, s1)
	}
	isNull := func(_ string, ok bool) bool { return !ok }
	if s0, s1 := catShare(before, "c2", isNull), catShare(after, "c2", isNull); s0 != 0 || !testcheck.Within(s1, 0.1, 0.015) {
		t.Errorf("c2: null share %.3f before and %.3f after, want 0 and 0.1", s0, s1)
	}
}

// TestCorrelationChange: correlation:f1:f2:0.8, then −0.8 from tick
// 10000 — the sample correlation of f1 and f2 follows (standard error
// (1−ρ²)/√n ≈ 0.004; allow 0.03) while each keeps its mean and standard
// deviation (within 0.06 sd and 5 %, as TestDistributionChanges), and f3
// stays uncorrelated with f1.
func TestCorrelationChange(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Seed = 5
	cfg.BusinessMetrics.Enabled = false
	cfg.Outcomes.Share = 0
	const at = 10000
	cfg.Changes = []Change{
		{Kind: Correlation, Feature: "f1", Other: "f2", Value: 0.8},
		{Kind: Correlation, Feature: "f1", Other: "f2", Value: -0.8, AtEvent: at},
	}
	evs, _ := run(t, cfg, 2*at)
	before, after := split(cfg, decodeAll(t, cfg, evs).inferences, at)
	col := func(infs []schemas.Inference, f string) []float64 {
		out := make([]float64, len(infs))
		for i, in := range infs {
			out[i] = in.Numeric[f]
		}
		return out
	}
	for _, tc := range []struct {
		name string
		infs []schemas.Inference
		rho  float64
	}{{"before", before, 0.8}, {"after", after, -0.8}} {
		if r := pearson(col(tc.infs, "f1"), col(tc.infs, "f2")); !testcheck.Within(r, tc.rho, 0.03) {
			t.Errorf("%s: corr(f1, f2) = %.3f, want %g", tc.name, r, tc.rho)
		}
		if r := pearson(col(tc.infs, "f1"), col(tc.infs, "f3")); !testcheck.Within(r, 0, 0.03) {
			t.Errorf("%s: corr(f1, f3) = %.3f, want 0", tc.name, r)
		}
	}
	for _, f := range []string{"f1", "f2"} {
		a, s, _ := meanSD(before, f)
		b, s1, _ := meanSD(after, f)
		if !testcheck.AtMost(math.Abs(b-a)/s, 0.06) || !testcheck.Within(s1/s, 1, 0.05) {
			t.Errorf("%s: the flip moved its distribution: mean %.3f → %.3f, sd %.3f → %.3f", f, a, b, s, s1)
		}
	}
	bad := cfg
	bad.Changes = []Change{{Kind: Correlation, Feature: "f1", Other: "f1", Value: 0.5}, {Kind: Correlation, Feature: "f1", Other: "f2", Value: 1.5}}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "not two numeric features") || !strings.Contains(err.Error(), "must be in [-1, 1]") {
		t.Errorf("validate: %v", err)
	}
}

// TestAssociationChange: association:c0:f1:1, then −1 from tick 10000.
// With strength 1 the category is the bin of Φ(e) on the category's
// cumulative shares, so c0's first category (share p) takes f1's lowest
// p of draws before, its highest after: its mean of f1 is below f1's
// overall mean before and above after, by more than one standard deviation
// (for a share p ≤ ½ the truncated normal's mean is at least
// φ(0)/½ ≈ 0.8 sd away; the first category's share is at most ½ here),
// while c0's shares (within 0.02) and f1's mean and standard deviation
// (0.06 sd, 5 %) stay.
func TestAssociationChange(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Seed = 5
	cfg.Models = 1
	cfg.BusinessMetrics.Enabled = false
	cfg.Outcomes.Share = 0
	const at = 10000
	cfg.Changes = []Change{
		{Kind: Association, Feature: "c0", Other: "f1", Value: 1},
		{Kind: Association, Feature: "c0", Other: "f1", Value: -1, AtEvent: at},
	}
	evs, g := run(t, cfg, 2*at)
	first := g.models[0].catVals[0][0]
	if p := g.models[0].catCum[0][0]; !testcheck.AtMost(p, 0.5) {
		t.Fatalf("first category's share %v, the bound above needs at most 0.5", p)
	}
	before, after := split(cfg, decodeAll(t, cfg, evs).inferences, at)
	shares := func(infs []schemas.Inference) map[string]float64 {
		out := map[string]float64{}
		for _, in := range infs {
			out[in.Categorical["c0"]] += 1 / float64(len(infs))
		}
		return out
	}
	condMean := func(infs []schemas.Inference) float64 {
		var s, n float64
		for _, in := range infs {
			if x, ok := in.Numeric["f1"]; ok && in.Categorical["c0"] == first {
				s, n = s+x, n+1
			}
		}
		return s / n
	}
	m0, s0, _ := meanSD(before, "f1")
	m1, s1, _ := meanSD(after, "f1")
	if d := (condMean(before) - m0) / s0; !testcheck.AtMost(d, -1) {
		t.Errorf("before: c0=%s's mean of f1 is %.2f sd from f1's, want below −1", first, d)
	}
	if d := (condMean(after) - m1) / s1; !testcheck.AtLeast(d, 1) {
		t.Errorf("after: c0=%s's mean of f1 is %.2f sd from f1's, want above 1", first, d)
	}
	if !testcheck.AtMost(math.Abs(m1-m0)/s0, 0.06) || !testcheck.Within(s1/s0, 1, 0.05) {
		t.Errorf("f1 moved: mean %.3f → %.3f, sd %.3f → %.3f", m0, m1, s0, s1)
	}
	sb, sa := shares(before), shares(after)
	for c, p := range sb {
		if !testcheck.Within(sa[c], p, 0.02) {
			t.Errorf("c0=%s: share %.3f → %.3f", c, p, sa[c])
		}
	}
	bad := cfg
	bad.Changes = []Change{{Kind: Association, Feature: "f1", Other: "c0", Value: 0.5}, {Kind: Association, Feature: "c0", Other: "f1", Value: 1.5}}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "not a categorical feature") || !strings.Contains(err.Error(), "must be in [-1, 1]") {
		t.Errorf("validate: %v", err)
	}
}

// TestSegmentChanges checks segment_shift (a mean shift inside one slice
// only) and segment_mix (one slice's share of traffic) against counts and
// means written down here.
func TestSegmentChanges(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Seed = 5
	cfg.BusinessMetrics.Enabled = false
	cfg.Outcomes.Share = 0
	const at = 12000
	cfg.Changes = []Change{
		{Kind: SegmentShift, Segment: "region=eu", Feature: "f3", Value: 1.5, AtEvent: at},
		{Kind: SegmentMix, Segment: "region=us", Value: 2.0 / 3, AtEvent: at},
	}
	evs, _ := run(t, cfg, 2*at)
	before, after := split(cfg, decodeAll(t, cfg, evs).inferences, at)
	bySeg := func(infs []schemas.Inference) map[string][]schemas.Inference {
		out := map[string][]schemas.Inference{}
		for _, in := range infs {
			out[in.Segment[SegmentKey]] = append(out[in.Segment[SegmentKey]], in)
		}
		return out
	}
	b, a := bySeg(before), bySeg(after)
	// Uniform before (1/3 each); after, us takes 2/3 and eu and apac keep
	// equal shares of the rest, 1/6 each. The standard error of a share
	// of 12000 draws is at most 0.0046; allow 0.02.
	for v, want := range map[string][2]float64{"us": {1.0 / 3, 2.0 / 3}, "eu": {1.0 / 3, 1.0 / 6}, "apac": {1.0 / 3, 1.0 / 6}} {
		s0, s1 := float64(len(b[v]))/at, float64(len(a[v]))/at
		if !testcheck.Within(s0, want[0], 0.02) || !testcheck.Within(s1, want[1], 0.02) {
			t.Errorf("region=%s: share %.3f before and %.3f after, want %.3f and %.3f", v, s0, s1, want[0], want[1])
		}
	}
	// f3 moves by 1.5 sd inside eu only (about 2000 rows after: standard
	// error 0.03 sd; allow 0.1 sd); f3 elsewhere and f4 everywhere stay.
	for _, v := range SegmentValues {
		for _, f := range []string{"f3", "f4"} {
			m0, sd0, _ := meanSD(b[v], f)
			m1, _, _ := meanSD(a[v], f)
			want := 0.0
			if v == "eu" && f == "f3" {
				want = 1.5
			}
			if shift := (m1 - m0) / sd0; !testcheck.Within(shift, want, 0.1) {
				t.Errorf("region=%s %s: mean moved %.3f sd, want %g", v, f, shift, want)
			}
		}
	}
}

// accuracy joins binary predictions with their outcomes.
func accuracy(infs []schemas.Inference, outcomes map[string]schemas.Outcome) (acc float64, n int) {
	correct := 0
	for _, in := range infs {
		oc, ok := outcomes[in.PredictionID]
		if !ok {
			continue
		}
		n++
		if oc.Actual.Label == in.Prediction.Label {
			correct++
		}
	}
	return float64(correct) / float64(n), n
}

func TestConceptDriftChangesAccuracyNotFeatures(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Seed = 11
	cfg.BusinessMetrics.Enabled = false
	cfg.Outcomes = Outcomes{Share: 1, Delay: time.Second}
	const at = 20000
	cfg.Changes = []Change{{Kind: ConceptDrift, Value: 1, AtEvent: at}}
	evs, _ := run(t, cfg, 2*at)
	d := decodeAll(t, cfg, evs)
	before, after := split(cfg, d.inferences, at)
	a0, n0 := accuracy(before, d.outcomes)
	a1, n1 := accuracy(after, d.outcomes)
	if n0 != at || n1 != at {
		t.Fatalf("%d and %d labelled inferences, want %d each", n0, n1, at)
	}
	// Before: calibrated scores of sharpness 4 give about 0.85. After: the
	// true logit is independent of the model's, so about 0.5.
	if !testcheck.AtLeast(a0, 0.78) || !testcheck.AtMost(a1, 0.56) {
		t.Errorf("accuracy %.3f before and %.3f after the concept drift, want > 0.78 and < 0.56", a0, a1)
	}
	for i := 0; i < cfg.NumericFeatures; i++ {
		f := "f" + strconv.Itoa(i)
		m0, s0, _ := meanSD(before, f)
		m1, s1, _ := meanSD(after, f)
		if !testcheck.AtMost(math.Abs(m1-m0)/s0, 0.05) || !testcheck.Within(s1/s0, 1, 0.04) {
			t.Errorf("%s: mean %.3f → %.3f, sd %.3f → %.3f across a concept drift", f, m0, m1, s0, s1)
		}
	}
	// Categorical frequencies: total variation distance below 0.02.
	for j := 0; j < cfg.CategoricalFeatures; j++ {
		f := "c" + strconv.Itoa(j)
		freq := func(infs []schemas.Inference) map[string]float64 {
			m := map[string]float64{}
			for _, in := range infs {
				m[in.Categorical[f]] += 1 / float64(len(infs))
			}
			return m
		}
		p, q := freq(before), freq(after)
		tv := 0.0
		for k := range p {
			tv += math.Abs(p[k]-q[k]) / 2
		}
		if !testcheck.AtMost(tv, 0.02) {
			t.Errorf("%s: category frequencies moved by %.3f across a concept drift", f, tv)
		}
	}
}

// pearson is the sample correlation coefficient.
func pearson(x, y []float64) float64 {
	n := float64(len(x))
	var sx, sy float64
	for i := range x {
		sx += x[i]
		sy += y[i]
	}
	mx, my := sx/n, sy/n
	var cov, vx, vy float64
	for i := range x {
		cov += (x[i] - mx) * (y[i] - my)
		vx += (x[i] - mx) * (x[i] - mx)
		vy += (y[i] - my) * (y[i] - my)
	}
	return cov / math.Sqrt(vx*vy)
}

func TestPearsonReference(t *testing.T) {
	// Worked by hand: x = 1..5, y = 2,4,5,4,5: mean 3 and 4, cov sum 6,
	// var sums 10 and 6, r = 6/sqrt(60) = 0.7745966692.
	if r := pearson([]float64{1, 2, 3, 4, 5}, []float64{2, 4, 5, 4, 5}); !testcheck.Within(r, 0.7745966692, 1e-9) {
		t.Fatalf("pearson = %.10f, want 0.7745966692", r)
	}
}

func TestBusinessMetricFollowsAccuracyWithLag(t *testing.T) {
	const (
		lag          = 3
		ticksPerBuck = 1000
		buckets      = 60
	)
	cfg := DefaultConfig()
	cfg.Seed = 5
	cfg.Step = 10 * time.Millisecond
	cfg.Outcomes = Outcomes{Share: 1, Delay: 2 * time.Second}
	cfg.BusinessMetrics = BusinessMetrics{Enabled: true, Metric: "conversion_rate", Bucket: ticksPerBuck * cfg.Step, Lag: lag, Base: 0.02, Slope: 0.05, Noise: 0.0005}
	// Accuracy moves in steps every 4 buckets.
	strengths := []float64{0.6, 0.1, 1, 0.3, 0.8, 0, 0.5, 0.9, 0.2, 0.7, 0.4, 1, 0, 0.6}
	for i, s := range strengths {
		cfg.Changes = append(cfg.Changes, Change{Kind: ConceptDrift, Value: s, AtEvent: int64((i + 1) * 4 * ticksPerBuck)})
	}
	evs, _ := run(t, cfg, buckets*ticksPerBuck)
	d := decodeAll(t, cfg, evs)

	bucketOf := func(ts time.Time) int { return int(ts.Sub(cfg.Start) / cfg.BusinessMetrics.Bucket) }
	correct, total := make([]float64, buckets), make([]float64, buckets)
	for _, in := range d.inferences {
		oc, ok := d.outcomes[in.PredictionID]
		if !ok {
			t.Fatalf("inference %s has no outcome", in.EventID)
		}
		b := bucketOf(in.Timestamp)
		total[b]++
		if oc.Actual.Label == in.Prediction.Label {
			correct[b]++
		}
	}
	kpi := make([]float64, buckets)
	seen := make([]bool, buckets)
	for _, m := range d.metrics {
		b := bucketOf(m.Timestamp)
		if m.Metric != "conversion_rate" || m.ModelID != "model-0" || seen[b] || !m.Timestamp.Equal(cfg.Start.Add(time.Duration(b)*cfg.BusinessMetrics.Bucket)) {
			t.Fatalf("unexpected business metric %+v", m)
		}
		seen[b] = true
		kpi[b] = m.Value
	}
	for b := range seen {
		if !seen[b] {
			t.Fatalf("no business metric for bucket %d", b)
		}
	}
	acc := make([]float64, buckets)
	for b := range acc {
		acc[b] = correct[b] / total[b]
	}
	const maxLag = 8
	best, bestR := -1, -2.0
	for l := 0; l <= maxLag; l++ {
		// Compare the same buckets at every lag: kpi[maxLag:] with acc
		// shifted by l.
		r := pearson(kpi[maxLag:], acc[maxLag-l:buckets-l])
		t.Logf("lag %d: r = %.3f", l, r)
		if r > bestR {
			best, bestR = l, r
		}
	}
	if best != lag || !testcheck.AtLeast(bestR, 0.9) {
		t.Errorf("business metric correlates best with accuracy at lag %d (r = %.3f), want lag %d with r > 0.9", best, bestR, lag)
	}
}

func TestParseChange(t *testing.T) {
	start := DefaultStart
	tests := []struct {
		in      string
		want    Change
		wantErr string
	}{
		{in: "mean_shift:f0:2.0@50000", want: Change{Kind: MeanShift, Feature: "f0", Value: 2, AtEvent: 50000}},
		{in: "concept_drift@100000", want: Change{Kind: ConceptDrift, Value: 1, AtEvent: 100000}},
		{in: "concept_drift:0.5", want: Change{Kind: ConceptDrift, Value: 0.5}},
		{in: "model-1/variance:f2:3@+10m", want: Change{Kind: VarianceChange, Model: "model-1", Feature: "f2", Value: 3, AtTime: start.Add(10 * time.Minute)}},
		{in: "missing:c0:0.2@2024-01-02T00:00:00Z", want: Change{Kind: Missingness, Feature: "c0", Value: 0.2, AtTime: start.Add(24 * time.Hour)}},
		{in: "new_categories:c1:0.1", want: Change{Kind: NewCategories, Feature: "c1", Value: 0.1}},
		{in: "segment_shift:region=eu:f3:1.5@+1h", want: Change{Kind: SegmentShift, Segment: "region=eu", Feature: "f3", Value: 1.5, AtTime: start.Add(time.Hour)}},
		{in: "model-0/segment_mix:region=eu:0.6", want: Change{Kind: SegmentMix, Model: "model-0", Segment: "region=eu", Value: 0.6}},
		{in: "segment_shift:f3:1.5", wantErr: "needs KEY=VALUE:FEATURE:DELTA"},
		{in: "segment_mix:region=eu", wantErr: "needs KEY=VALUE:SHARE"},
		{in: "segment_concept:region=eu:0.5@+5h", want: Change{Kind: SegmentConcept, Segment: "region=eu", Value: 0.5, AtTime: start.Add(5 * time.Hour)}},
		{in: "segment_concept:region=eu", wantErr: "needs KEY=VALUE:SHARE"},
		{in: "correlation:f1:f2:-0.8@+2h", want: Change{Kind: Correlation, Feature: "f1", Other: "f2", Value: -0.8, AtTime: start.Add(2 * time.Hour)}},
		{in: "correlation:f1:0.8", wantErr: "needs FEATURE:OTHER:RHO"},
		{in: "association:c0:f1:-1@+2h", want: Change{Kind: Association, Feature: "c0", Other: "f1", Value: -1, AtTime: start.Add(2 * time.Hour)}},
		{in: "association:c0:1", wantErr: "needs CATEGORICAL:NUMERIC:STRENGTH"},
		{in: "mean_shift:f0", wantErr: "needs FEATURE:VALUE"},
		{in: "mean_shift:f0:x", wantErr: "is not a number"},
		{in: "wobble:f0:1", wantErr: "unknown kind"},
		{in: "concept_drift@-5", wantErr: "not an inference index"},
		{in: "concept_drift@+soon", wantErr: "non-negative offset"},
		{in: "/concept_drift", wantErr: "empty model"},
		{in: "", wantErr: "empty change"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseChange(tt.in, start)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got.Kind != tt.want.Kind || got.Model != tt.want.Model || got.Feature != tt.want.Feature || got.Other != tt.want.Other || got.Segment != tt.want.Segment ||
				got.Value != tt.want.Value || got.AtEvent != tt.want.AtEvent || !got.AtTime.Equal(tt.want.AtTime) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
			// String renders what ParseChange reads back.
			again, err := ParseChange(got.String(), start)
			if err != nil || again.String() != got.String() {
				t.Errorf("round trip of %q: %+v, %v", got.String(), again, err)
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr []string
	}{
		{name: "defaults", mod: func(*Config) {}},
		{name: "no models", mod: func(c *Config) { c.Models = 0 }, wantErr: []string{"models:"}},
		{name: "no features", mod: func(c *Config) { c.NumericFeatures, c.CategoricalFeatures = 0, 0 }, wantErr: []string{"features:"}},
		{name: "shares", mod: func(c *Config) { c.DuplicateShare, c.MalformedShare = 0.7, 0.5 }, wantErr: []string{"duplicate_share, malformed_share"}},
		{name: "task", mod: func(c *Config) { c.Task = "ranking" }, wantErr: []string{"task:"}},
		{name: "start before 2000", mod: func(c *Config) { c.Start = time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC) }, wantErr: []string{"start:"}},
		{name: "max bytes", mod: func(c *Config) { c.MaxBytes = 100 }, wantErr: []string{"max_bytes:"}},
		{name: "bucket shorter than step", mod: func(c *Config) { c.BusinessMetrics.Bucket = time.Millisecond }, wantErr: []string{"business_metrics.bucket"}},
		{name: "every problem at once", mod: func(c *Config) { c.Models = -1; c.Outcomes.Share = 2; c.Step = -1 },
			wantErr: []string{"models:", "outcomes.share", "step:"}},
		{name: "change of unknown feature", mod: func(c *Config) { c.Changes = []Change{{Kind: MeanShift, Feature: "f99", Value: 1}} }, wantErr: []string{"not a numeric feature"}},
		{name: "change of categorical with mean shift", mod: func(c *Config) { c.Changes = []Change{{Kind: MeanShift, Feature: "c0", Value: 1}} }, wantErr: []string{"not a numeric feature"}},
		{name: "change of unknown model", mod: func(c *Config) { c.Changes = []Change{{Kind: ConceptDrift, Model: "model-7", Value: 1}} }, wantErr: []string{"model-7"}},
		{name: "concept strength", mod: func(c *Config) { c.Changes = []Change{{Kind: ConceptDrift, Value: 2}} }, wantErr: []string{"strength"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.mod(&cfg)
			_, err := New(cfg)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestNextAfterDrainPanics(t *testing.T) {
	g, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	g.Next()
	g.Drain()
	defer func() {
		if r := recover(); r == nil || !strings.HasPrefix(r.(string), "BUG:") {
			t.Errorf("recover() = %v, want a BUG panic", r)
		}
	}()
	g.Next()
}

func BenchmarkNext(b *testing.B) {
	cfg := DefaultConfig() // 20 numeric and 5 categorical features
	g, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	var bytes int64
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bytes += int64(len(g.Next().Value))
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(bytes)/float64(b.N), "bytes/event")
}

// TestMalformedInTurn: with MalformedInTurn the first len(Defects())
// malformed events hold every defect once, each labelled with its reason,
// whatever the seed.
func TestMalformedInTurn(t *testing.T) {
	all := Defects()
	if len(all) != 36 {
		t.Errorf("%d defects, the package doc and the ingest test count 36", len(all))
	}
	for _, seed := range []uint64{1, 2, 3} {
		cfg := DefaultConfig()
		cfg.Seed = seed
		cfg.MalformedShare = 0.2
		cfg.MalformedInTurn = true
		g, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]schemas.Reason{}
		for len(seen) < len(all) && g.Ticks() < 10_000 {
			ev := g.Next()
			if ev.Malformed == "" {
				continue
			}
			if _, dup := seen[ev.Defect]; dup {
				t.Fatalf("seed %d: defect %s again after %d distinct ones", seed, ev.Defect, len(seen))
			}
			seen[ev.Defect] = ev.Malformed
		}
		for _, d := range all {
			if seen[d.Name] != d.Reason {
				t.Errorf("seed %d: defect %s generated with reason %q, want %s", seed, d.Name, seen[d.Name], d.Reason)
			}
		}
	}
}

// TestSegmentConceptFlipsLabelsInOneSlice: segment_concept:region=eu:1
// flips every true label of eu from the change on, so eu's accuracy a
// becomes 1 − a (about 0.85 → 0.15) while us and apac keep theirs (about
// 4000 labelled rows per slice and period: standard error 0.006; allow
// 0.03), and the features do not move.
func TestSegmentConceptFlipsLabelsInOneSlice(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Seed = 13
	cfg.BusinessMetrics.Enabled = false
	cfg.Outcomes = Outcomes{Share: 1, Delay: time.Second}
	const at = 12000
	cfg.Changes = []Change{{Kind: SegmentConcept, Segment: "region=eu", Value: 1, AtEvent: at}}
	evs, _ := run(t, cfg, 2*at)
	d := decodeAll(t, cfg, evs)
	before, after := split(cfg, d.inferences, at)
	bySeg := func(infs []schemas.Inference) map[string][]schemas.Inference {
		out := map[string][]schemas.Inference{}
		for _, in := range infs {
			out[in.Segment[SegmentKey]] = append(out[in.Segment[SegmentKey]], in)
		}
		return out
	}
	b, a := bySeg(before), bySeg(after)
	for _, v := range SegmentValues {
		a0, _ := accuracy(b[v], d.outcomes)
		a1, _ := accuracy(a[v], d.outcomes)
		want := a0
		if v == "eu" {
			want = 1 - a0
		}
		if !testcheck.Within(a1, want, 0.03) {
			t.Errorf("region=%s: accuracy %.3f before, %.3f after, want %.3f", v, a0, a1, want)
		}
		m0, sd0, _ := meanSD(b[v], "f3")
		m1, _, _ := meanSD(a[v], "f3")
		if shift := (m1 - m0) / sd0; !testcheck.Within(shift, 0, 0.1) {
			t.Errorf("region=%s f3: mean moved %.3f sd under a label change", v, shift)
		}
	}
}

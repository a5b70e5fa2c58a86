package policy

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/internal/testcheck"
	"github.com/driftwatch/driftwatch/monitor/stat"
	"github.com/driftwatch/driftwatch/monitor/window"
)

// numeric builds a window.Numeric from raw rows, as ClickHouse would.
func numeric(t *testing.T, name string, ref, cur []float64) window.Numeric {
	t.Helper()
	rs, _ := stat.NewSample(ref)
	cs, _ := stat.NewSample(cur)
	edges, err := stat.QuantileEdges(rs, 10)
	if err != nil {
		t.Fatal(err)
	}
	n := window.Numeric{Feature: name, Edges: edges, RefBins: stat.BinCounts(edges, rs), CurBins: stat.BinCounts(edges, cs),
		RefN: rs.N(), CurN: cs.N(), RefValues: rs.Values, CurValues: cs.Values}
	if len(rs.Values) > 0 {
		n.RefMin, n.RefMax = rs.Values[0], rs.Values[len(rs.Values)-1]
	}
	for _, v := range cs.Values {
		if v < n.RefMin || v > n.RefMax {
			n.CurOutOfRange++
		}
	}
	return n
}

func normal(rng *rand.Rand, n int, mean float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = rng.NormFloat64() + mean
	}
	return out
}

func snapshot(rows int, nums ...window.Numeric) *window.Snapshot {
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	return &window.Snapshot{Model: "m", Reference: window.Span{Start: t0, End: t0.Add(time.Hour)}, Current: window.Span{Start: t0.Add(time.Hour), End: t0.Add(2 * time.Hour)},
		RefRows: int64(rows), CurRows: int64(rows), Numeric: nums}
}

func TestShiftedFeaturesAndOnlyThoseDrift(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	var nums []window.Numeric
	for i := 0; i < 30; i++ {
		shift := 0.0
		if i == 3 || i == 17 {
			shift = 1.0
		}
		nums = append(nums, numeric(t, "f"+string(rune('a'+i%26))+string(rune('0'+i/26)), normal(rng, 2000, 0), normal(rng, 2000, shift)))
	}
	c := Default()
	v := Evaluate(snapshot(2000, nums...), c, nil)
	want := []string{nums[17].Feature, nums[3].Feature}
	slices.Sort(want)
	if !slices.Equal(v.Drifted, want) {
		t.Errorf("drifted %v, want %v", v.Drifted, want)
	}
	if len(v.Sustained) != 0 {
		t.Errorf("sustained %v after one window, want none (consecutive 2)", v.Sustained)
	}
	hist := History{}
	for _, f := range v.Drifted {
		hist[f] = []bool{true}
	}
	v2 := Evaluate(snapshot(2000, nums...), c, hist)
	if !slices.Equal(v2.Sustained, want) {
		t.Errorf("sustained %v after two windows, want %v", v2.Sustained, want)
	}
	// Every row has a status; the p-value methods carry adjusted p-values.
	for _, r := range v.Rows {
		if r.Status == "" {
			t.Fatalf("row without status: %+v", r)
		}
		if r.Method == stat.MethodKS && !(r.PValueAdjusted >= r.PValue) {
			t.Errorf("%s: adjusted p %g below raw %g", r.Feature, r.PValueAdjusted, r.PValue)
		}
	}
}

func TestNoChangeNoDrift(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 9))
	for w := 0; w < 24; w++ {
		var nums []window.Numeric
		for i := 0; i < 20; i++ {
			nums = append(nums, numeric(t, string(rune('a'+i)), normal(rng, 3000, 0), normal(rng, 3000, 0)))
		}
		if v := Evaluate(snapshot(3000, nums...), Default(), nil); len(v.Drifted) != 0 || len(v.QualityIssues) != 0 {
			t.Errorf("window %d: drifted %v, quality %v", w, v.Drifted, v.QualityIssues)
		}
	}
}

func TestFewRowsAreInsufficientNeverDrifted(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	n := numeric(t, "x", normal(rng, 500, 0), normal(rng, 40, 5)) // a huge shift, but 40 rows
	v := Evaluate(snapshot(500, n), Default(), nil)
	if len(v.Drifted) != 0 || !slices.Equal(v.Insufficient, []string{"x"}) {
		t.Errorf("drifted %v insufficient %v", v.Drifted, v.Insufficient)
	}
	for _, r := range v.Rows {
		if r.Feature == "x" && r.Kind == KindDrift && (r.Status != StatusInsufficient || r.Drifted) {
			t.Errorf("row %+v", r)
		}
	}
}

func TestFeatureThresholdOverride(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	n := numeric(t, "x", normal(rng, 3000, 0), normal(rng, 3000, 1))
	c := Default()
	c.Features = map[string]map[string]float64{"x": {stat.MethodPSI: 50}}
	if v := Evaluate(snapshot(3000, n), c, nil); len(v.Drifted) != 0 {
		t.Errorf("drifted %v with PSI threshold 50", v.Drifted)
	}
}

func TestCategoricalAndQuality(t *testing.T) {
	s := snapshot(1000)
	s.CurRows = 300 // volume falls to 0.3 of the reference rate
	s.Categorical = []window.Categorical{{Feature: "color", Categories: []string{"red", "blue", "new"},
		RefCounts: []int64{500, 500, 0}, CurCounts: []int64{100, 100, 100}, RefN: 1000, CurN: 300}}
	v := Evaluate(s, Default(), nil)
	if !slices.Equal(v.Drifted, []string{"color"}) {
		t.Errorf("drifted %v", v.Drifted)
	}
	if !slices.Contains(v.QualityIssues, ModelFeature+"/"+CheckVolumeRatio) {
		t.Errorf("quality issues %v", v.QualityIssues)
	}
	for _, r := range v.Rows {
		if r.Method == stat.MethodUnseenShare && !testcheck.Between(r.Value, 0.333, 0.334) {
			t.Errorf("unseen share %g", r.Value)
		}
	}
}

func TestDeadLetterShare(t *testing.T) {
	for _, tc := range []struct {
		name     string
		rows     int64
		dead     map[string]int64
		want     map[string]float64 // reason → share; NaN: insufficient
		drifted  []string           // reasons flagged
		noRowFor string
	}{
		{"none", 1000, nil, map[string]float64{}, nil, "invalid_json"},
		{"one reason over", 980, map[string]int64{"invalid_json": 20}, map[string]float64{"invalid_json": 0.02}, []string{"invalid_json"}, ""},
		// 10 of 1000 is exactly the threshold: not over it.
		{"at the threshold", 985, map[string]int64{"missing_field": 10, "invalid_json": 5},
			map[string]float64{"missing_field": 0.01, "invalid_json": 0.005}, nil, ""},
		{"too few events", 50, map[string]int64{"invalid_json": 40}, map[string]float64{"invalid_json": math.NaN()}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := snapshot(1000)
			s.CurRows = tc.rows
			s.DeadLetters = tc.dead
			v := Evaluate(s, Default(), nil)
			got := map[string]float64{}
			var flagged []string
			for _, r := range v.Rows {
				if r.Method != CheckDeadLetterShare {
					continue
				}
				got[r.Feature] = r.Value
				if r.Drifted {
					flagged = append(flagged, r.Feature)
				}
				if math.IsNaN(r.Value) != (r.Status == StatusInsufficient) || r.Kind != KindDataQuality {
					t.Errorf("%s: value %g, status %s, kind %s", r.Feature, r.Value, r.Status, r.Kind)
				}
			}
			if len(got) != len(tc.want) {
				t.Errorf("rows for %v, want %v", got, tc.want)
			}
			for reason, w := range tc.want {
				g, ok := got[reason]
				if !ok || (math.IsNaN(w) != math.IsNaN(g)) || (!math.IsNaN(w) && !testcheck.Within(g, w, 1e-12)) {
					t.Errorf("%s: share %v, want %v", reason, g, w)
				}
			}
			if !slices.Equal(flagged, tc.drifted) {
				t.Errorf("flagged %v, want %v", flagged, tc.drifted)
			}
			for _, reason := range tc.drifted {
				if !slices.Contains(v.QualityIssues, reason+"/"+CheckDeadLetterShare) {
					t.Errorf("quality issues %v lack %s", v.QualityIssues, reason)
				}
			}
		})
	}
}

func TestValidate(t *testing.T) {
	c := Default()
	c.NumericMethods = append(c.NumericMethods, "magic")
	c.DecideCategorical = []string{stat.MethodHellinger}
	c.Thresholds = map[string]float64{stat.MethodPSI: -1}
	c.MinSamples = 0
	c.MinImportance = 1.5
	err := c.Validate("policy")
	for _, want := range []string{`policy.numeric_methods: "magic" is not a numeric method`, `policy.decide_categorical: "hellinger" is not among categorical_methods`,
		"policy.thresholds.psi: must be positive, got -1", "policy.min_samples: must be at least 1, got 0",
		"policy.min_importance: must be in [0, 1]"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want %q", err, want)
		}
	}
	if err := Default().Validate("policy"); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
}

// TestApplyImportance: two features shifted by 1 sd, sustained; with
// min_importance 0.05 the one of importance 0 leaves Sustained for
// Unimportant and its drift rows say why, still drifted and sustained; the
// important one stays. Without importance, or with min 0, nothing changes.
func TestApplyImportance(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	snap := snapshot(2000, numeric(t, "used", normal(rng, 2000, 0), normal(rng, 2000, 1)),
		numeric(t, "ignored", normal(rng, 2000, 0), normal(rng, 2000, 1)))
	c := Default()
	hist := History{"used": {true}, "ignored": {true}}
	imp := map[string]float64{"used": 1, "ignored": 0}
	for _, tc := range []struct {
		name        string
		imp         map[string]float64
		min         float64
		sustained   []string
		unimportant []string
	}{
		{"weighted", imp, 0.05, []string{"used"}, []string{"ignored"}},
		{"off", imp, 0, []string{"ignored", "used"}, nil},
		{"no importance registered", nil, 0.05, []string{"ignored", "used"}, nil},
		{"feature unknown to the importance", map[string]float64{"used": 1}, 0.05, []string{"ignored", "used"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := Evaluate(snap, c, hist)
			if !slices.Equal(v.Sustained, []string{"ignored", "used"}) {
				t.Fatalf("sustained before %v, want both", v.Sustained)
			}
			ApplyImportance(&v, tc.imp, tc.min)
			if !slices.Equal(v.Sustained, tc.sustained) || !slices.Equal(v.Unimportant, tc.unimportant) {
				t.Errorf("sustained %v unimportant %v, want %v and %v", v.Sustained, v.Unimportant, tc.sustained, tc.unimportant)
			}
			for _, r := range v.Rows {
				noted := strings.HasPrefix(r.Note, NoteBelowMinImportance)
				if want := slices.Contains(tc.unimportant, r.Feature) && r.Kind == KindDrift; noted != want {
					t.Errorf("%s/%s note %q, want below min_importance: %v", r.Feature, r.Method, r.Note, want)
				}
				if r.Feature == "ignored" && r.Method == stat.MethodPSI && !(r.Drifted && r.Sustained) {
					t.Errorf("ignored/psi drifted %v sustained %v, want both kept", r.Drifted, r.Sustained)
				}
			}
		})
	}
}

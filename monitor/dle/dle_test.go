package dle

import (
	"flag"
	"math"
	"testing"

	"github.com/driftwatch/driftwatch/internal/testcheck"
)

// -update regenerates testdata/golden.json with the reference script; it
// needs the venv from `bash scripts/deps.sh python`.
var update = flag.Bool("update", false, "regenerate testdata/golden.json with testdata/golden.py (needs .deps/venv)")

type goldenCase struct {
	Name      string `json:"name"`
	Reference struct {
		Features   []map[string]float64 `json:"features"`
		Prediction []float64            `json:"prediction"`
		Truth      []float64            `json:"truth"`
	} `json:"reference"`
	Window struct {
		Features   []map[string]float64 `json:"features"`
		Prediction []float64            `json:"prediction"`
	} `json:"window"`
	Estimated map[string]struct {
		Value         float64 `json:"value"`
		SamplingError float64 `json:"sampling_error"`
		Lower         float64 `json:"lower"`
		Upper         float64 `json:"upper"`
	} `json:"estimated"`
}

// TestGoldenAgainstSklearn: the ridge models, the clipped estimates and
// NannyML's sampling errors against scikit-learn's Ridge (1e-9 relative).
func TestGoldenAgainstSklearn(t *testing.T) {
	var g struct {
		Cases []goldenCase `json:"cases"`
	}
	testcheck.LoadGolden(t, *update, &g)
	if len(g.Cases) == 0 {
		t.Fatal("no golden cases")
	}
	for _, c := range g.Cases {
		t.Run(c.Name, func(t *testing.T) {
			rows := make([]Row, len(c.Reference.Truth))
			for i := range rows {
				rows[i] = Row{Features: c.Reference.Features[i], Prediction: c.Reference.Prediction[i], Truth: c.Reference.Truth[i]}
			}
			m, err := Fit(rows)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range m.Estimate(m.SumsOf(c.Window.Features, c.Window.Prediction)) {
				want := c.Estimated[e.Name]
				for _, p := range [][2]float64{{e.Value, want.Value}, {e.SamplingError, want.SamplingError}, {e.Lower, want.Lower}, {e.Upper, want.Upper}} {
					if !testcheck.WithinRel(p[0], p[1], 1e-9, 1e-12) {
						t.Errorf("estimated %s = %.12g ± %.12g [%.12g, %.12g], sklearn %.12g ± %.12g [%.12g, %.12g]", e.Name, e.Value, e.SamplingError, e.Lower, e.Upper,
							want.Value, want.SamplingError, want.Lower, want.Upper)
						break
					}
				}
			}
		})
	}
}

func TestFitInsufficient(t *testing.T) {
	if _, err := Fit(make([]Row, 5)); err == nil {
		t.Fatal("5 rows fitted")
	}
	var s Sums
	m := Model{}
	for _, e := range m.Estimate(s) {
		if !math.IsNaN(e.Value) || !math.IsNaN(e.Lower) {
			t.Errorf("%s of an empty window = %v [%v], want NaN", e.Name, e.Value, e.Lower)
		}
	}
}

package cbpe

import (
	"errors"
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
		Score     []float64 `json:"score"`
		Positive  []int     `json:"positive"`
		Predicted []int     `json:"predicted"`
	} `json:"reference"`
	Window struct {
		Score     []float64 `json:"score"`
		Predicted []int     `json:"predicted"`
	} `json:"window"`
	NeedsCalibration        bool `json:"needs_calibration"`
	NannyMLNeedsCalibration bool `json:"nannyml_needs_calibration"`
	Knots                   *struct {
		X []float64 `json:"x"`
		Y []float64 `json:"y"`
	} `json:"knots"`
	Estimated map[string]struct {
		Value         float64 `json:"value"`
		SamplingError float64 `json:"sampling_error"`
		Lower         float64 `json:"lower"`
		Upper         float64 `json:"upper"`
	} `json:"estimated"`
	Realized map[string]float64 `json:"realized"`
}

type goldenEstimate struct {
	Value         float64 `json:"value"`
	SamplingError float64 `json:"sampling_error"`
	Lower         float64 `json:"lower"`
	Upper         float64 `json:"upper"`
}

type multiclassCase struct {
	Name      string `json:"name"`
	Reference struct {
		Probs     []map[string]float64 `json:"probs"`
		Truth     []string             `json:"truth"`
		Predicted []string             `json:"predicted"`
	} `json:"reference"`
	Window struct {
		Probs     []map[string]float64 `json:"probs"`
		Predicted []string             `json:"predicted"`
	} `json:"window"`
	NeedsCalibration []bool                    `json:"needs_calibration"`
	Estimated        map[string]goldenEstimate `json:"estimated"`
}

type golden struct {
	Cases      []goldenCase     `json:"cases"`
	Multiclass []multiclassCase `json:"multiclass"`
}

// loadGolden loads the reference cases; package perf's test reads the
// same file.
func loadGolden(t *testing.T) golden {
	var g golden
	testcheck.LoadGolden(t, *update, &g)
	if len(g.Cases) == 0 || len(g.Multiclass) == 0 {
		t.Fatal("no golden cases")
	}
	return g
}

func (c goldenCase) refRows() []Row {
	rows := make([]Row, len(c.Reference.Score))
	for i := range rows {
		rows[i] = Row{Score: c.Reference.Score[i], Positive: c.Reference.Positive[i] == 1, Predicted: c.Reference.Predicted[i] == 1}
	}
	return rows
}

func (c goldenCase) windowRows() []Row {
	rows := make([]Row, len(c.Window.Score))
	for i := range rows {
		rows[i] = Row{Score: c.Window.Score[i], Predicted: c.Window.Predicted[i] == 1}
	}
	return rows
}

// tolerances: the isotonic fit, the components and the confusion sums
// agree to rounding (1e-9); the estimated ROC AUC to 1e-6, because NannyML
// rounds its cumulative sums to 5 decimals.
const (
	tol    = 1e-9
	aucTol = 1e-6
)

func TestGoldenAgainstNannyML(t *testing.T) {
	for _, c := range loadGolden(t).Cases {
		t.Run(c.Name, func(t *testing.T) {
			ref, err := Fit(c.refRows())
			if err != nil {
				t.Fatal(err)
			}
			if ref.Calibrated != c.NeedsCalibration {
				t.Fatalf("calibrated = %v, want %v", ref.Calibrated, c.NeedsCalibration)
			}
			if c.NannyMLNeedsCalibration != c.NeedsCalibration {
				t.Logf("NannyML's StratifiedShuffleSplit decides %v, the folds %v", c.NannyMLNeedsCalibration, c.NeedsCalibration)
			}
			if c.Knots != nil {
				if len(ref.Calibrator.X) != len(c.Knots.X) {
					t.Fatalf("%d knots, sklearn has %d", len(ref.Calibrator.X), len(c.Knots.X))
				}
				for i := range c.Knots.X {
					if !(math.Abs(ref.Calibrator.X[i]-c.Knots.X[i]) <= tol) || !(math.Abs(ref.Calibrator.Y[i]-c.Knots.Y[i]) <= tol) {
						t.Fatalf("knot %d = (%v, %v), sklearn (%v, %v)", i, ref.Calibrator.X[i], ref.Calibrator.Y[i], c.Knots.X[i], c.Knots.Y[i])
					}
				}
			}
			for _, e := range ref.Estimate(ref.SumsOf(c.windowRows())) {
				want, ok := c.Estimated[e.Name]
				if !ok {
					t.Fatalf("no golden value for %s", e.Name)
				}
				vt := tol
				if e.Name == ROCAUC {
					vt = aucTol
				}
				if !(math.Abs(e.Value-want.Value) <= vt) {
					t.Errorf("estimated %s = %.12g, NannyML %.12g", e.Name, e.Value, want.Value)
				}
				if !(math.Abs(e.SamplingError-want.SamplingError) <= tol) || !(math.Abs(e.Lower-want.Lower) <= vt) || !(math.Abs(e.Upper-want.Upper) <= vt) {
					t.Errorf("%s: sampling error %.12g [%.12g, %.12g], NannyML %.12g [%.12g, %.12g]", e.Name, e.SamplingError, e.Lower, e.Upper,
						want.SamplingError, want.Lower, want.Upper)
				}
			}
		})
	}
}

// TestIsotonicHandComputed: PAVA on 0,1,0,1,1 at x = 1..5 pools (1, 0) at
// x = 2, 3 into ½; the run of ½ keeps both ends, the run of 1 both ends.
func TestIsotonicHandComputed(t *testing.T) {
	iso := FitIsotonic([]float64{1, 2, 3, 4, 5}, []float64{0, 1, 0, 1, 1})
	wantX, wantY := []float64{1, 2, 3, 4, 5}, []float64{0, 0.5, 0.5, 1, 1}
	for i := range wantX {
		if iso.X[i] != wantX[i] || iso.Y[i] != wantY[i] {
			t.Fatalf("knots %v %v, want %v %v", iso.X, iso.Y, wantX, wantY)
		}
	}
	for _, tc := range []struct{ s, want float64 }{{0, 0}, {1.5, 0.25}, {2.5, 0.5}, {3.5, 0.75}, {9, 1}} {
		if got := iso.Predict(tc.s); !(math.Abs(got-tc.want) <= 1e-15) {
			t.Errorf("Predict(%v) = %v, want %v", tc.s, got, tc.want)
		}
	}
}

func TestFitInsufficient(t *testing.T) {
	rows := make([]Row, 50)
	for i := range rows {
		rows[i] = Row{Score: float64(i) / 50, Positive: true}
	}
	if _, err := Fit(rows); !errors.Is(err, ErrInsufficient) {
		t.Fatalf("single class: err = %v, want ErrInsufficient", err)
	}
	if _, err := Fit(rows[:5]); !errors.Is(err, ErrInsufficient) {
		t.Fatalf("5 rows: err = %v, want ErrInsufficient", err)
	}
}

// TestEstimateEmptyWindow: no rows, every estimate NaN (not 0), and so is
// its band.
func TestEstimateEmptyWindow(t *testing.T) {
	rows := make([]Row, 100)
	for i := range rows {
		rows[i] = Row{Score: float64(i) / 100, Positive: i%3 == 0, Predicted: i >= 50}
	}
	ref, err := Fit(rows)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ref.Estimate(Sums{}) {
		if !math.IsNaN(e.Value) || !math.IsNaN(e.Lower) || !math.IsNaN(e.Upper) {
			t.Errorf("%s of an empty window = %v [%v, %v], want NaN", e.Name, e.Value, e.Lower, e.Upper)
		}
	}
}

// TestMulticlassGoldenAgainstNannyML: one-vs-rest calibration, macro
// estimates and multiclass sampling errors against NannyML's formulas.
func TestMulticlassGoldenAgainstNannyML(t *testing.T) {
	for _, c := range loadGolden(t).Multiclass {
		t.Run(c.Name, func(t *testing.T) {
			rows := make([]MultiRow, len(c.Reference.Probs))
			for i := range rows {
				rows[i] = MultiRow{Probs: c.Reference.Probs[i], Truth: c.Reference.Truth[i], Predicted: c.Reference.Predicted[i]}
			}
			ref, err := FitMulticlass(rows)
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range c.NeedsCalibration {
				if ref.Calibrated[k] != want {
					t.Errorf("class %s calibrated = %v, want %v", ref.Classes[k], ref.Calibrated[k], want)
				}
			}
			win := make([]MultiRow, len(c.Window.Probs))
			for i := range win {
				win[i] = MultiRow{Probs: c.Window.Probs[i], Predicted: c.Window.Predicted[i]}
			}
			for _, e := range ref.Estimate(ref.SumsOf(win)) {
				want, ok := c.Estimated[e.Name]
				if !ok {
					t.Fatalf("no golden value for %s", e.Name)
				}
				vt := tol
				if e.Name == ROCAUC {
					vt = aucTol
				}
				if !(math.Abs(e.Value-want.Value) <= vt) || !(math.Abs(e.SamplingError-want.SamplingError) <= tol) ||
					!(math.Abs(e.Lower-want.Lower) <= vt) || !(math.Abs(e.Upper-want.Upper) <= vt) {
					t.Errorf("estimated %s = %.12g ± %.12g [%.12g, %.12g], NannyML %.12g ± %.12g [%.12g, %.12g]", e.Name, e.Value, e.SamplingError, e.Lower, e.Upper,
						want.Value, want.SamplingError, want.Lower, want.Upper)
				}
			}
		})
	}
}

package multivariate

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

type goldenCase struct {
	Name       string      `json:"name"`
	Share      float64     `json:"share"`
	Reference  [][]float64 `json:"reference"`
	Current    [][]float64 `json:"current"`
	Components int         `json:"components"`
	Ratio      []float64   `json:"ratio"`
	RefError   float64     `json:"reference_error"`
	CurError   float64     `json:"current_error"`
}

// close fails on NaN: !(d <= tol).
func closeRel(got, want, rel float64) bool {
	return math.Abs(got-want) <= rel*math.Abs(want)
}

// TestGoldenReconstruction compares FitPCA and MeanError with scikit-learn's
// StandardScaler + PCA (testdata/golden.py): components kept, explained
// variance ratios and mean reconstruction errors to 1e-9 relative.
func TestGoldenReconstruction(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Cases []goldenCase `json:"cases"`
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Cases) == 0 {
		t.Fatal("no golden cases")
	}
	for _, c := range g.Cases {
		t.Run(c.Name, func(t *testing.T) {
			p, err := FitPCA(c.Reference, c.Share)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Comps) != c.Components {
				t.Fatalf("components %d, sklearn %d", len(p.Comps), c.Components)
			}
			for i, r := range c.Ratio {
				if !(math.Abs(p.Ratio[i]-r) <= 1e-9) {
					t.Errorf("ratio[%d] %v, sklearn %v", i, p.Ratio[i], r)
				}
			}
			if got := p.MeanError(c.Reference); !closeRel(got, c.RefError, 1e-9) {
				t.Errorf("reference error %v, sklearn %v", got, c.RefError)
			}
			if got := p.MeanError(c.Current); !closeRel(got, c.CurError, 1e-9) {
				t.Errorf("current error %v, sklearn %v", got, c.CurError)
			}
		})
	}
}

// TestReconstructionCorrelationFlip: the error of a window whose two
// features' correlation flipped sign is far above the reference's own.
func TestReconstructionCorrelationFlip(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Cases []goldenCase `json:"cases"`
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	c := g.Cases[0]
	p, err := FitPCA(c.Reference, 0.65)
	if err != nil {
		t.Fatal(err)
	}
	ref, cur := p.MeanError(c.Reference), p.MeanError(c.Current)
	if !(cur > 2*ref) {
		t.Fatalf("current error %v not above twice the reference's %v", cur, ref)
	}
}

func TestFitPCAInsufficient(t *testing.T) {
	if _, err := FitPCA([][]float64{{1, 2}}, 0.65); err != ErrInsufficient {
		t.Fatalf("one row: %v", err)
	}
	if _, err := FitPCA([][]float64{{1, 2}, {1, 2}}, 0.65); err != ErrInsufficient {
		t.Fatalf("constant rows: %v", err)
	}
	if got := (&PCA{}).MeanError(nil); !math.IsNaN(got) {
		t.Fatalf("no rows: %v", got)
	}
}

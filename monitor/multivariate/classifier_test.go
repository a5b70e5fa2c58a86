package multivariate

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
)

type goldenClassifier struct {
	Name      string      `json:"name"`
	Reference [][]float64 `json:"reference"`
	Current   [][]float64 `json:"current"`
	Folds     int         `json:"folds"`
	CVAUC     float64     `json:"cv_auc"`
	Coef      []float64   `json:"coef"`
}

func domainRows(c goldenClassifier) ([][]float64, []float64, []string) {
	var x [][]float64
	var y []float64
	for i := range c.Reference {
		x, y = append(x, c.Reference[i], c.Current[i]), append(y, 0, 1)
	}
	var names []string
	for j := range c.Reference[0] {
		names = append(names, fmt.Sprintf("f%d", j))
	}
	return x, y, names
}

// TestGoldenClassifier compares the domain classifier (Expand, FitLogistic,
// CrossValidatedAUC) with scikit-learn's LogisticRegression(C=1) and
// roc_auc_score on the same folds (testdata/golden.py): AUC to 1e-6,
// coefficients to 1e-5 (lbfgs stops at tol 1e-12, Newton here at 1e-12 steps).
func TestGoldenClassifier(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Cases []goldenClassifier `json:"cases"`
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Cases) == 0 {
		t.Fatal("no golden cases")
	}
	for _, c := range g.Cases {
		t.Run(c.Name, func(t *testing.T) {
			x, y, names := domainRows(c)
			x, names = Expand(x, names)
			auc, err := CrossValidatedAUC(x, y, c.Folds, 1)
			if err != nil {
				t.Fatal(err)
			}
			if !(math.Abs(auc-c.CVAUC) <= 1e-6) {
				t.Errorf("cv auc %v, sklearn %v", auc, c.CVAUC)
			}
			m, err := FitLogistic(x, y, 1)
			if err != nil {
				t.Fatal(err)
			}
			for j, w := range c.Coef {
				if !(math.Abs(m.Coef[j]-w) <= 1e-5) {
					t.Errorf("coef %s %v, sklearn %v", names[j], m.Coef[j], w)
				}
			}
		})
	}
}

// TestClassifierNamesCorrelatedPair: on the correlation flip the classifier
// separates the windows and leans on the product of the two features.
func TestClassifierNamesCorrelatedPair(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Cases []goldenClassifier `json:"cases"`
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	x, y, names := domainRows(g.Cases[0])
	x, names = Expand(x, names)
	auc, err := CrossValidatedAUC(x, y, 5, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !(auc > 0.9) {
		t.Fatalf("cv auc %v", auc)
	}
	m, err := FitLogistic(x, y, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Leaned(names, 1); len(got) != 1 || got[0] != "f0*f1" {
		t.Fatalf("leaned on %v", got)
	}
}

func TestAUCTiesAndOneClass(t *testing.T) {
	if got := AUC([]float64{0, 1, 0, 1}, []float64{0.5, 0.5, 0.1, 0.9}); !(math.Abs(got-0.875) <= 1e-12) {
		t.Fatalf("auc %v", got)
	}
	if got := AUC([]float64{1, 1}, []float64{0.1, 0.2}); !math.IsNaN(got) {
		t.Fatalf("one class %v", got)
	}
}

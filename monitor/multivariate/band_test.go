package multivariate

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func loadCases(t *testing.T) []goldenClassifier {
	t.Helper()
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
	if len(g.Cases) < 2 {
		t.Fatal("golden cases missing")
	}
	return g.Cases
}

// TestBandAndThresholdFlagFlipOnly: the correlation flip leaves the
// reference band and beats the permutation threshold; the unchanged case
// does neither.
func TestBandAndThresholdFlagFlipOnly(t *testing.T) {
	cases := loadCases(t)
	for i, want := range []bool{true, false} {
		c := cases[i]
		p, err := FitPCA(c.Reference, 0.65)
		if err != nil {
			t.Fatal(err)
		}
		band, err := ReferenceBand(p, c.Reference, 10, 3)
		if err != nil {
			t.Fatal(err)
		}
		e := p.MeanError(c.Current)
		if got := band.Outside(e); got != want {
			t.Errorf("%s: error %v band [%v, %v] outside=%v", c.Name, e, band.Lower, band.Upper, got)
		}
		x, y, names := domainRows(c)
		x, _ = Expand(x, names)
		auc, err := CrossValidatedAUC(x, y, 5, 1)
		if err != nil {
			t.Fatal(err)
		}
		thr, err := PermutationThreshold(x, y, 5, 1, 20, 0.95, 1)
		if err != nil {
			t.Fatal(err)
		}
		if got := auc > thr; got != want {
			t.Errorf("%s: auc %v threshold %v", c.Name, auc, thr)
		}
	}
}

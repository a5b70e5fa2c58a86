package multivariate

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestEncoder(t *testing.T) {
	// 100 reference rows of color: 50 red, 30 blue, 19 green, 1 pink
	// (1 % exactly); shape: "" (missing) in every row but 10 "sq".
	ref := make([][]string, 0, 100)
	for i := range 100 {
		c := "red"
		switch {
		case i >= 99:
			c = "pink"
		case i >= 80:
			c = "green"
		case i >= 50:
			c = "blue"
		}
		s := ""
		if i%10 == 0 {
			s = "sq"
		}
		ref = append(ref, []string{c, s})
	}
	feats := []string{"color", "shape"}
	tests := []struct {
		name     string
		top      int
		share    float64
		columns  string
		features []string
		rows     [][]string
		want     string
	}{
		{"top categories by count, then name", 10, 0.01, "color=red color=blue color=green color=pink shape=sq", feats,
			[][]string{{"red", "sq"}, {"blue", ""}, {"pink", "sq"}}, "[[1 0 0 0 1] [0 1 0 0 0] [0 0 0 1 1]]"},
		{"at most top per feature", 2, 0.01, "color=red color=blue shape=sq", feats,
			[][]string{{"green", "sq"}, {"blue", ""}}, "[[0 0 1] [0 1 0]]"},
		{"rarer than the share: no column", 10, 0.05, "color=red color=blue color=green shape=sq", feats,
			[][]string{{"pink", ""}}, "[[0 0 0 0]]"},
		{"new and missing categories are all zeros", 10, 0.01, "color=red color=blue color=green color=pink shape=sq", feats,
			[][]string{{"violet", ""}, {"", "round"}}, "[[0 0 0 0 0] [0 0 0 0 0]]"},
		{"current features matched by name", 10, 0.01, "color=red color=blue color=green color=pink shape=sq", []string{"shape", "other", "color"},
			[][]string{{"sq", "x", "green"}}, "[[0 0 1 0 1]]"},
		{"a feature the current window lacks", 10, 0.01, "color=red color=blue color=green color=pink shape=sq", []string{"shape"},
			[][]string{{"sq"}}, "[[0 0 0 0 1]]"},
		{"a feature no category of which is kept", 10, 0.2, "color=red color=blue", feats,
			[][]string{{"blue", "sq"}}, "[[0 1]]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := FitEncoder(feats, ref, tc.top, tc.share)
			names, origins := e.Columns()
			if got := strings.Join(names, " "); got != tc.columns {
				t.Fatalf("columns %q, want %q", got, tc.columns)
			}
			for i, n := range names {
				if !strings.HasPrefix(n, origins[i]+"=") {
					t.Errorf("column %s of feature %s", n, origins[i])
				}
			}
			if got := fmt.Sprint(e.Encode(tc.features, tc.rows)); got != tc.want {
				t.Errorf("encoded %s, want %s", got, tc.want)
			}
		})
	}
}

// TestClassifierLeansOnCategory: a categorical feature c whose association
// with numeric x flips (c = "a" has the high x before, the low x after)
// while both marginals stay: the classifier leans on the product x*c=a and
// names both features; no pair is of two columns of c.
func TestClassifierLeansOnCategory(t *testing.T) {
	gen := func(seed uint64, flip bool) ([][]float64, [][]string) {
		rng := rand.New(rand.NewPCG(seed, 1))
		var num [][]float64
		var cat [][]string
		for range 3000 {
			x := rng.NormFloat64()
			c := "b"
			if (x > 0) != flip {
				c = "a"
			}
			if rng.Float64() < 0.2 { // not a function of x
				c = "c"
			}
			num = append(num, []float64{x, rng.NormFloat64()})
			cat = append(cat, []string{c})
		}
		return num, cat
	}
	rn, rc := gen(1, false)
	cn, cc := gen(2, true)
	e := FitEncoder([]string{"c"}, rc, TopCategories, MinCategoryShare)
	oneHot, origins := e.Columns()
	names := append([]string{"x", "y"}, oneHot...)
	origins = append([]string{"x", "y"}, origins...)
	for i, r := range e.Encode([]string{"c"}, rc) {
		rn[i] = append(rn[i], r...)
	}
	for i, r := range e.Encode([]string{"c"}, cc) {
		cn[i] = append(cn[i], r...)
	}
	res, err := ClassifyColumns(rn, cn, names, origins, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Drifted || len(res.Leaned) == 0 {
		t.Fatalf("not drifted: AUC %v, threshold %v", res.AUC, res.Threshold)
	}
	top := res.Leaned[0]
	if !strings.HasPrefix(top.Column, "x*c=") || !slices.Equal(top.Features, []string{"x", "c"}) {
		t.Errorf("leaned first on %s (features %v), want x*c=… of x and c", top.Column, top.Features)
	}
	for _, l := range res.Leaned {
		if len(l.Features) == 2 && l.Features[0] == l.Features[1] {
			t.Errorf("a pair of one feature: %s", l.Column)
		}
	}
	rec, err := Reconstruct(rn, cn, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if !rec.Drifted {
		t.Errorf("reconstruction error %v inside the band [%v, %v]", rec.Error, rec.Band.Lower, rec.Band.Upper)
	}
}

// TestGoldenCategorical compares the one-hot encoding, FitPCA and
// MeanError on numeric and categorical columns with testdata/categorical.py
// (the kept categories chosen in Python, scikit-learn's OneHotEncoder,
// StandardScaler and PCA): kept categories, components, explained
// variance ratios and mean reconstruction errors to 1e-9 relative.
func TestGoldenCategorical(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "categorical.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Cases []struct {
			goldenCase
			RefCats []string `json:"reference_categories"`
			CurCats []string `json:"current_categories"`
			Kept    []string `json:"kept"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Cases) != 2 {
		t.Fatalf("%d golden cases, want 2", len(g.Cases))
	}
	column := func(cats []string) [][]string {
		out := make([][]string, len(cats))
		for i, c := range cats {
			out[i] = []string{c}
		}
		return out
	}
	for _, c := range g.Cases {
		t.Run(c.Name, func(t *testing.T) {
			e := FitEncoder([]string{"c"}, column(c.RefCats), TopCategories, MinCategoryShare)
			names, _ := e.Columns()
			want := make([]string, len(c.Kept))
			for i, k := range c.Kept {
				want[i] = "c=" + k
			}
			if !slices.Equal(names, want) {
				t.Fatalf("columns %v, want %v", names, want)
			}
			join := func(num [][]float64, cats []string) [][]float64 {
				oh := e.Encode([]string{"c"}, column(cats))
				out := make([][]float64, len(num))
				for i := range num {
					out[i] = append(slices.Clone(num[i]), oh[i]...)
				}
				return out
			}
			ref, cur := join(c.Reference, c.RefCats), join(c.Current, c.CurCats)
			p, err := FitPCA(ref, c.Share)
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
			if got := p.MeanError(ref); !closeRel(got, c.RefError, 1e-9) {
				t.Errorf("reference error %v, sklearn %v", got, c.RefError)
			}
			if got := p.MeanError(cur); !closeRel(got, c.CurError, 1e-9) {
				t.Errorf("current error %v, sklearn %v", got, c.CurError)
			}
		})
	}
}

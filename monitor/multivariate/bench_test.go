package multivariate

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func benchRows(n, d int, seed uint64) [][]float64 {
	rng := rand.New(rand.NewPCG(seed, 1))
	rows := make([][]float64, n)
	for i := range rows {
		rows[i] = make([]float64, d)
		for j := range rows[i] {
			rows[i][j] = rng.NormFloat64()
		}
	}
	return rows
}

// BenchmarkReconstruction: fit, band and current error on samples of 10 000
// rows per window.
func BenchmarkReconstruction(b *testing.B) {
	for _, d := range []int{10, 60} {
		ref, cur := benchRows(10000, d, 1), benchRows(10000, d, 2)
		b.Run(fmt.Sprintf("d=%d", d), func(b *testing.B) {
			for b.Loop() {
				p, err := FitPCA(ref, 0.65)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := ReferenceBand(p, ref, 10, 3); err != nil {
					b.Fatal(err)
				}
				_ = p.MeanError(cur)
			}
		})
	}
}

// BenchmarkClassifier: 5-fold AUC on 2 000 + 2 000 rows of 10 columns
// (55 columns with the products).
func BenchmarkClassifier(b *testing.B) {
	ref, cur := benchRows(2000, 10, 1), benchRows(2000, 10, 2)
	var x [][]float64
	var y []float64
	names := make([]string, 10)
	for i := range ref {
		x, y = append(x, ref[i], cur[i]), append(y, 0, 1)
	}
	x, _ = Expand(x, names)
	for b.Loop() {
		if _, err := CrossValidatedAUC(x, y, 5, 1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDefaults: Reconstruct and Classify with DefaultConfig on the
// joint samples policy.multivariate fetches (5 000 rows per window), 10 and
// 60 features.
func BenchmarkDefaults(b *testing.B) {
	c := DefaultConfig()
	for _, d := range []int{10, 60} {
		ref, cur := benchRows(c.Rows, d, 1), benchRows(c.Rows, d, 2)
		names := make([]string, d)
		for j := range names {
			names[j] = fmt.Sprintf("f%d", j)
		}
		b.Run(fmt.Sprintf("reconstruct/d=%d", d), func(b *testing.B) {
			for b.Loop() {
				if _, err := Reconstruct(ref, cur, c); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("classify/d=%d", d), func(b *testing.B) {
			for b.Loop() {
				if _, err := Classify(ref, cur, names, c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDefaultsCategorical: BenchmarkDefaults' 60 numeric features
// with 10 categorical ones of 10 equally frequent categories, one-hot into
// 100 more columns (the most TopCategories allows): 160 columns.
func BenchmarkDefaultsCategorical(b *testing.B) {
	c := DefaultConfig()
	const d, k, cats = 60, 10, 10
	ref, cur := benchRows(c.Rows, d, 1), benchRows(c.Rows, d, 2)
	catNames := make([]string, k)
	for j := range catNames {
		catNames[j] = fmt.Sprintf("c%d", j)
	}
	draw := func(seed uint64) [][]string {
		rng := rand.New(rand.NewPCG(seed, 3))
		out := make([][]string, c.Rows)
		for i := range out {
			out[i] = make([]string, k)
			for j := range out[i] {
				out[i][j] = fmt.Sprintf("v%d", rng.IntN(cats))
			}
		}
		return out
	}
	rc, cc := draw(1), draw(2)
	e := FitEncoder(catNames, rc, TopCategories, MinCategoryShare)
	oneHot, origins := e.Columns()
	names := make([]string, d)
	for j := range names {
		names[j] = fmt.Sprintf("f%d", j)
	}
	origins = append(append([]string(nil), names...), origins...)
	names = append(names, oneHot...)
	for i, r := range e.Encode(catNames, rc) {
		ref[i] = append(ref[i], r...)
	}
	for i, r := range e.Encode(catNames, cc) {
		cur[i] = append(cur[i], r...)
	}
	b.Run(fmt.Sprintf("reconstruct/d=%d", len(names)), func(b *testing.B) {
		for b.Loop() {
			if _, err := Reconstruct(ref, cur, c); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run(fmt.Sprintf("classify/d=%d", len(names)), func(b *testing.B) {
		for b.Loop() {
			if _, err := ClassifyColumns(ref, cur, names, origins, c); err != nil {
				b.Fatal(err)
			}
		}
	})
}

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

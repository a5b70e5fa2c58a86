package stat

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

const benchRows = 1_000_000

// benchSamples returns two sorted one-row-per-value samples of benchRows
// normal values, the current shifted by 0.01 standard deviations.
func benchSamples(b *testing.B) (Sample, Sample) {
	b.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float64, benchRows)
	y := make([]float64, benchRows)
	for i := range x {
		x[i] = r.NormFloat64()
		y[i] = r.NormFloat64() + 0.01
	}
	slices.Sort(x)
	slices.Sort(y)
	return Sample{Values: x}, Sample{Values: y}
}

func benchPair(b *testing.B, f func(a, c Sample) (Result, error)) {
	ref, cur := benchSamples(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := f(ref, cur); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKS(b *testing.B)              { benchPair(b, KS) }
func BenchmarkWasserstein(b *testing.B)     { benchPair(b, Wasserstein) }
func BenchmarkWassersteinNorm(b *testing.B) { benchPair(b, WassersteinNorm) }
func BenchmarkCramerVonMises(b *testing.B)  { benchPair(b, CramerVonMises) }
func BenchmarkAndersonDarling(b *testing.B) {
	benchPair(b, func(a, c Sample) (Result, error) { return AndersonDarling(a, c) })
}

// The most expensive exact KS p-value 'auto' takes: unequal sizes just
// under the 10,000-row limit (Hodges' lattice recursion, O(n₁·n₂)).
func BenchmarkKSExactWorst(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	x := make([]float64, 10000)
	y := make([]float64, 9999)
	for i := range x {
		x[i] = r.NormFloat64()
	}
	for i := range y {
		y[i] = r.NormFloat64() + 0.05
	}
	slices.Sort(x)
	slices.Sort(y)
	for b.Loop() {
		if _, err := KS(Sample{Values: x}, Sample{Values: y}); err != nil {
			b.Fatal(err)
		}
	}
}

// The largest exact Cramér–von Mises p-value 'auto' takes: 20 × 20 rows.
func BenchmarkCramerVonMisesExact20(b *testing.B) {
	x, y := make([]float64, 20), make([]float64, 20)
	for i := range x {
		x[i], y[i] = float64(2*i), float64(2*i+1)+0.5
	}
	for b.Loop() {
		if _, err := CramerVonMises(Sample{Values: x}, Sample{Values: y}); err != nil {
			b.Fatal(err)
		}
	}
}

// benchCounts returns 1,000,000 bins (or categories) of counts.
func benchCounts() Counts {
	r := rand.New(rand.NewPCG(5, 6))
	c := Counts{Reference: make([]int64, benchRows), Current: make([]int64, benchRows)}
	for i := range c.Reference {
		c.Reference[i] = r.Int64N(100)
		c.Current[i] = r.Int64N(100)
	}
	return c
}

func benchCountsMethod(b *testing.B, f func(Counts) (Result, error)) {
	c := benchCounts()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := f(c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPSI(b *testing.B)           { benchCountsMethod(b, PSI) }
func BenchmarkJensenShannon(b *testing.B) { benchCountsMethod(b, JensenShannon) }
func BenchmarkHellinger(b *testing.B)     { benchCountsMethod(b, Hellinger) }
func BenchmarkChiSquare(b *testing.B)     { benchCountsMethod(b, ChiSquare) }
func BenchmarkLInfinity(b *testing.B)     { benchCountsMethod(b, LInfinity) }
func BenchmarkUnseenShare(b *testing.B)   { benchCountsMethod(b, UnseenShare) }

// Binning 1,000,000 rows into 10 reference-quantile bins, for when the
// monitor bins in Go instead of in ClickHouse.
func BenchmarkQuantileEdgesAndBinCounts(b *testing.B) {
	ref, cur := benchSamples(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		e, err := QuantileEdges(ref, DefaultBins)
		if err != nil {
			b.Fatal(err)
		}
		_ = BinCounts(e, cur)
	}
}

func BenchmarkBenjaminiHochberg(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{100, benchRows} {
		ps := make([]float64, n)
		for i := range ps {
			ps[i] = r.Float64()
		}
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			for b.Loop() {
				if _, _, err := BenjaminiHochberg(ps, 0.05); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWalk compares the pooled-CDF walk of two compact samples (100k
// distinct values with counts, the monitor's form) with the general walk
// on the same samples: compactWalk against ecdfWalk.
func BenchmarkWalk(b *testing.B) {
	ref, cur := benchSamples(b)
	compact := func(s Sample) Sample {
		v, c := make([]float64, 100_000), make([]int64, 100_000)
		for i := range c {
			v[i], c[i] = s.Values[10*i], 1+int64(i%3)
		}
		return Sample{Values: v, Counts: c}
	}
	r, c := compact(ref), compact(cur)
	n1, compact1, err1 := r.check("reference")
	n2, compact2, err2 := c.check("current")
	if err1 != nil || err2 != nil || !compact1 || !compact2 {
		b.Fatalf("samples not compact: %v %v %v %v", compact1, compact2, err1, err2)
	}
	b.Run("general", func(b *testing.B) {
		for b.Loop() {
			ecdfWalk(r, c, n1, n2)
		}
	})
	b.Run("compact", func(b *testing.B) {
		for b.Loop() {
			compactWalk(r, c, n1, n2)
		}
	})
}

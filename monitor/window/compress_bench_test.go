package window

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// compressBelowRef is compressBelow as it reads: filter, then compress.
func compressBelowRef(vs, hs []float64, rate float64) ([]float64, []int64) {
	var kept []float64
	for k, h := range hs {
		if h < rate {
			kept = append(kept, vs[k])
		}
	}
	return compress(kept)
}

func TestCompressBelow(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	nan := math.NaN()
	for _, c := range []struct {
		name   string
		vs, hs []float64
		rate   float64
	}{
		{"empty", nil, nil, 0.5},
		{"none below", []float64{1, 2}, []float64{0.6, 0.7}, 0.5},
		{"all below", []float64{1, 2, 2, 3}, []float64{0.1, 0.2, 0.3, 0.4}, 0.5},
		{"ties split by the rate", []float64{1, 1, 1, 2, 2}, []float64{0.1, 0.9, 0.2, 0.9, 0.3}, 0.5},
		{"last above", []float64{1, 2, 3}, []float64{0.1, 0.2, 0.9}, 0.5},
		{"NaN last, never merged", []float64{1, nan, nan}, []float64{0.1, 0.2, 0.3}, 0.5},
		{"random with ties", nil, nil, 0.1},
	} {
		t.Run(c.name, func(t *testing.T) {
			vs, hs := c.vs, c.hs
			if vs == nil && c.name == "random with ties" {
				for range 5000 {
					vs = append(vs, float64(r.IntN(300)))
					hs = append(hs, r.Float64()*0.125)
				}
				slices.Sort(vs)
			}
			gv, gc := compressBelow(vs, hs, c.rate)
			wv, wc := compressBelowRef(vs, hs, c.rate)
			if len(gv) != len(wv) || len(gc) != len(wc) {
				t.Fatalf("compressBelow: %d values, %d counts; want %d, %d", len(gv), len(gc), len(wv), len(wc))
			}
			for i := range wv {
				same := gv[i] == wv[i] || (math.IsNaN(gv[i]) && math.IsNaN(wv[i]))
				if !same || gc[i] != wc[i] {
					t.Fatalf("compressBelow entry %d: (%v, %d), want (%v, %d)", i, gv[i], gc[i], wv[i], wc[i])
				}
			}
		})
	}
}

// BenchmarkCompressBelow filters one feature's cached values as a 1M-row
// window does (125,000 cached, the rate keeping 100,000).
func BenchmarkCompressBelow(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	vs, hs := make([]float64, 125000), make([]float64, 125000)
	for i := range vs {
		vs[i] = r.NormFloat64()
		hs[i] = r.Float64() * 0.125
	}
	slices.Sort(vs)
	b.Run("branch-free", func(b *testing.B) {
		for b.Loop() {
			compressBelow(vs, hs, 0.1)
		}
	})
	b.Run("two passes", func(b *testing.B) {
		for b.Loop() {
			compressBelowTwoPasses(vs, hs, 0.1)
		}
	})
}

// compressBelowTwoPasses is the compressBelow before: a pass counting, a
// pass writing, each branching on the rate.
func compressBelowTwoPasses(vs, hs []float64, rate float64) ([]float64, []int64) {
	n, prev := 0, 0.0
	for k, h := range hs {
		if h < rate {
			if n == 0 || vs[k] != prev {
				n++
			}
			prev = vs[k]
		}
	}
	if n == 0 {
		return nil, nil
	}
	v, c := make([]float64, 0, n), make([]int64, 0, n)
	for k, h := range hs {
		if h < rate {
			x := vs[k]
			if m := len(v); m > 0 && v[m-1] == x {
				c[m-1]++
				continue
			}
			v = append(v, x)
			c = append(c, 1)
		}
	}
	return v, c
}

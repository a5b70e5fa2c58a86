package window

import (
	"cmp"
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

// TestMergeDropsDying slides a window of buckets over a feature's cached
// values as the cache does at every step (the oldest bucket marked dying,
// the new bucket's values merged in the same pass) and checks them, and
// the arrays' accounting, against a plain model: the surviving values and
// the new ones, sorted by value (an old value before a new equal one).
func TestMergeDropsDying(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	type entry struct {
		v, h float64
		b    uint16
	}
	var (
		cv    cachedValues
		model []entry
	)
	const window = 6
	for step := range 40 {
		var es []cacheEntry
		for range 50 + r.IntN(100) {
			es = append(es, cacheEntry{float64(r.IntN(200)) / 4, r.Float64(), uint16(step)})
		}
		slices.SortFunc(es, func(a, b cacheEntry) int { return cmpFloat(a.v, b.v) })
		var dying *[1 << 16]bool
		if step >= window && step%7 != 3 { // now and then a step without a drop
			dying = new([1 << 16]bool)
			dying[uint16(step-window)] = true
			if step%5 == 0 {
				dying[uint16(step-window+1)] = true // two at once
			}
		}
		cv.merge(es, dying)
		// The model.
		var kept []entry
		for _, e := range model {
			if dying == nil || !dying[e.b] {
				kept = append(kept, e)
			}
		}
		for _, e := range es {
			kept = append(kept, entry{e.v, e.h, e.b})
		}
		slices.SortStableFunc(kept, func(a, b entry) int { return cmpFloat(a.v, b.v) })
		model = kept
		if len(cv.v) != len(model) || len(cv.h) != len(model) || len(cv.b) != len(model) {
			t.Fatalf("step %d: %d/%d/%d values, want %d", step, len(cv.v), len(cv.h), len(cv.b), len(model))
		}
		for i, e := range model {
			if cv.v[i] != e.v || cv.h[i] != e.h || cv.b[i] != e.b {
				t.Fatalf("step %d: value %d is (%v, %v, %d), want (%v, %v, %d)", step, i, cv.v[i], cv.h[i], cv.b[i], e.v, e.h, e.b)
			}
		}
		if cv.front < 0 || cap(cv.v) < len(cv.v) {
			t.Fatalf("step %d: front %d, cap %d, len %d", step, cv.front, cap(cv.v), len(cv.v))
		}
	}
	// The same with compact for a step without new values.
	dying := new([1 << 16]bool)
	dying[uint16(39-window)] = true
	cv.compact(dying)
	var kept []entry
	for _, e := range model {
		if !dying[e.b] {
			kept = append(kept, e)
		}
	}
	if len(cv.v) != len(kept) {
		t.Fatalf("compact: %d values, want %d", len(cv.v), len(kept))
	}
	for i, e := range kept {
		if cv.v[i] != e.v || cv.b[i] != e.b {
			t.Fatalf("compact: value %d is (%v, %d), want (%v, %d)", i, cv.v[i], cv.b[i], e.v, e.b)
		}
	}
}

func TestAbove(t *testing.T) {
	nan := math.NaN()
	xs := []float64{math.Inf(-1), -1, 0, 1, 2, math.Inf(1), nan}
	for _, x := range xs {
		for _, y := range xs {
			if got, want := above(x, y), cmp.Compare(x, y) > 0; got != want {
				t.Errorf("above(%v, %v) = %v, want %v (cmp.Compare)", x, y, got, want)
			}
		}
	}
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// BenchmarkMergeDropping is one step's merge of a bucket's values into a
// feature's cached values with the departed bucket's dropped: in the
// merge's pass (merge with dying), or in a pass of their own before it
// (compact, then merge), as before.
func BenchmarkMergeDropping(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 8))
	const buckets, per = 60, 2000
	base := cachedValues{}
	var all []cacheEntry
	for bk := range buckets {
		for range per {
			all = append(all, cacheEntry{r.NormFloat64(), r.Float64(), uint16(bk)})
		}
	}
	slices.SortFunc(all, func(a, b cacheEntry) int { return cmpFloat(a.v, b.v) })
	for _, e := range all {
		base.v, base.h, base.b = append(base.v, e.v), append(base.h, e.h), append(base.b, e.b)
	}
	var es []cacheEntry
	for range per {
		es = append(es, cacheEntry{r.NormFloat64(), r.Float64(), buckets})
	}
	slices.SortFunc(es, func(a, b cacheEntry) int { return cmpFloat(a.v, b.v) })
	dying := new([1 << 16]bool)
	dying[0] = true
	for _, c := range []struct {
		name  string
		fused bool
	}{{"fused", true}, {"separate", false}} {
		b.Run(c.name, func(b *testing.B) {
			n := len(base.v)
			v, h, bs := make([]float64, n, n+2*per), make([]float64, n, n+2*per), make([]uint16, n, n+2*per)
			var cv cachedValues
			for b.Loop() {
				b.StopTimer()
				cv.v, cv.h, cv.b, cv.front = v, h, bs, 0
				copy(cv.v, base.v)
				copy(cv.h, base.h)
				copy(cv.b, base.b)
				b.StartTimer()
				if c.fused {
					cv.merge(es, dying)
				} else {
					cv.compact(dying)
					cv.merge(es, nil)
				}
			}
		})
	}
}

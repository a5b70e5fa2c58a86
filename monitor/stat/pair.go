package stat

import (
	"fmt"
	"math"
)

// Pair is a reference and a current sample compared by several methods:
// it validates them and walks their pooled empirical CDFs once, and the
// KS and Wasserstein results are read from that walk. The results are
// those of KS, KSAsymptotic, Wasserstein and WassersteinNorm called one by
// one (the same arithmetic in the same order).
type Pair struct {
	ref, cur Sample
	n1, n2   int64
	err      error
	checked  bool
	compact  bool // both samples (see Sample.check)
	walked   bool
	// The walk: the largest and least F_ref − F_cur, and W₁.
	maxS, minD, w float64
}

// NewPair returns ref and cur ready to compare; they are validated when
// first compared.
func NewPair(ref, cur Sample) *Pair { return &Pair{ref: ref, cur: cur} }

func (p *Pair) walk() {
	if !p.walked {
		if p.compact {
			p.maxS, p.minD, p.w = compactWalk(p.ref, p.cur, p.n1, p.n2)
		} else {
			p.maxS, p.minD, p.w = ecdfWalk(p.ref, p.cur, p.n1, p.n2)
		}
		p.walked = true
	}
}

// check returns p's validation error, named for method.
func (p *Pair) check(method string) error {
	if !p.checked {
		p.n1, p.n2, p.compact, p.err = twoChecked(method, p.ref, p.cur, 1)
		p.checked = true
	}
	if p.err == nil {
		return nil
	}
	_, _, err := twoSamples(method, p.ref, p.cur, 1)
	return err
}

// KS is KS(ref, cur), or KSAsymptotic(ref, cur) when exact is false.
func (p *Pair) KS(exact bool) (Result, error) {
	if err := p.check(MethodKS); err != nil {
		return Result{}, err
	}
	p.walk()
	return ksResult(p.n1, p.n2, p.maxS, p.minD, exact), nil
}

// Wasserstein is Wasserstein(ref, cur).
func (p *Pair) Wasserstein() (Result, error) {
	if err := p.check(MethodWasserstein); err != nil {
		return Result{}, err
	}
	p.walk()
	return noP(MethodWasserstein, p.w, p.n1, p.n2), nil
}

// WassersteinNorm is WassersteinNorm(ref, cur).
func (p *Pair) WassersteinNorm() (Result, error) {
	if err := p.check(MethodWassersteinNorm); err != nil {
		return Result{}, err
	}
	sd := stddev(p.ref, p.n1)
	if sd == 0 {
		return Result{}, fmt.Errorf("%s: reference is constant: %w", MethodWassersteinNorm, ErrUndefined)
	}
	p.walk()
	return noP(MethodWassersteinNorm, p.w/sd, p.n1, p.n2), nil
}

// ecdfWalk walks the distinct pooled values of a and b in ascending order
// (as merge does, without its per-value call) and returns the largest and
// the least F_a − F_b (0 bounds both) and W₁ = Σ |F_a − F_b|·(z_{j+1} − z_j).
func ecdfWalk(a, b Sample, n1, n2 int64) (maxS, minD, w float64) {
	av, ac, bv, bc := a.Values, a.Counts, b.Values, b.Counts
	fn1, fn2 := float64(n1), float64(n2)
	var (
		i, j      int
		c1, c2    int64
		prev, gap float64
		first     = true
	)
	for {
		for ac != nil && i < len(av) && ac[i] <= 0 {
			i++
		}
		for bc != nil && j < len(bv) && bc[j] <= 0 {
			j++
		}
		oka, okb := i < len(av), j < len(bv)
		var v float64
		switch {
		case !oka && !okb:
			return maxS, minD, w
		case oka && (!okb || av[i] <= bv[j]):
			v = av[i]
		default:
			v = bv[j]
		}
		for i < len(av) && av[i] == v {
			if ac == nil {
				c1++
			} else {
				c1 += ac[i]
			}
			i++
		}
		for j < len(bv) && bv[j] == v {
			if bc == nil {
				c2++
			} else {
				c2 += bc[j]
			}
			j++
		}
		if !first {
			w += gap * (v - prev)
		}
		first = false
		diff := float64(c1)/fn1 - float64(c2)/fn2
		// Not math.Max and math.Min: not inlined, and diff is never NaN.
		if diff > maxS {
			maxS = diff
		}
		if diff < minD {
			minD = diff
		}
		gap = math.Abs(diff)
		prev = v
	}
}

// compactWalk is ecdfWalk for compact samples (distinct ascending values,
// positive counts: see Sample.check), the same steps and arithmetic in the
// same order, without the general walk's loops over ties and zero counts.
// A first step's W₁ term is 0·v, which adds nothing (v is finite).
func compactWalk(a, b Sample, n1, n2 int64) (maxS, minD, w float64) {
	av, ac, bv, bc := a.Values, a.Counts, b.Values, b.Counts
	fn1, fn2 := float64(n1), float64(n2)
	var (
		i, j      int
		c1, c2    int64
		prev, gap float64
	)
	for {
		var v float64
		if i < len(av) {
			x := av[i]
			if j < len(bv) {
				y := bv[j]
				switch {
				case x < y:
					v, c1, i = x, c1+ac[i], i+1
				case y < x:
					v, c2, j = y, c2+bc[j], j+1
				default:
					v, c1, c2, i, j = x, c1+ac[i], c2+bc[j], i+1, j+1
				}
			} else {
				v, c1, i = x, c1+ac[i], i+1
			}
		} else if j < len(bv) {
			v, c2, j = bv[j], c2+bc[j], j+1
		} else {
			return maxS, minD, w
		}
		w += gap * (v - prev)
		diff := float64(c1)/fn1 - float64(c2)/fn2
		if diff > maxS {
			maxS = diff
		}
		if diff < minD {
			minD = diff
		}
		gap = math.Abs(diff)
		prev = v
	}
}

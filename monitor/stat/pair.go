package stat

import (
	"fmt"
	"math"
	"sync"
)

// Pair is a reference and a current sample compared by several methods:
// it validates them and walks their pooled empirical CDFs once, and the
// KS and Wasserstein results are read from that walk. The results are
// those of KS, KSAsymptotic, Wasserstein and WassersteinNorm called one by
// one (the same arithmetic in the same order).
type Pair struct {
	ref, cur Sample
	refSum   *Summary // nil: validate ref with cur
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

// NewPairSummarized is NewPair with the reference already validated:
// rs is Summarize(ref), which a pinned reference compared at every step
// keeps instead of validating its sample (and computing its standard
// deviation) each time. rs is ignored unless it summarises ref itself (the
// same arrays), so a stale summary cannot change a result. The results
// and errors are NewPair's.
func NewPairSummarized(ref Sample, rs *Summary, cur Sample) *Pair {
	if rs == nil || !rs.of(ref) {
		return NewPair(ref, cur)
	}
	return &Pair{ref: ref, refSum: rs, cur: cur}
}

// Summary is what validating a reference sample finds, and its standard
// deviation once asked for. Safe for concurrent use.
type Summary struct {
	s       Sample // kept: its arrays cannot be reused while rs lives
	n       int64
	compact bool
	err     error // of Sample.check, unwrapped
	sdOnce  sync.Once
	sd      float64
}

// Summarize validates s as a reference sample.
func Summarize(s Sample) *Summary {
	n, compact, err := s.check("reference")
	return &Summary{s: s, n: n, compact: compact, err: err}
}

// of says whether rs summarises s: the same arrays, of the same lengths.
func (rs *Summary) of(s Sample) bool {
	same := func(a, b []float64) bool { return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0]) }
	sameN := func(a, b []int64) bool {
		return len(a) == len(b) && (a == nil) == (b == nil) && (len(a) == 0 || &a[0] == &b[0])
	}
	return same(rs.s.Values, s.Values) && sameN(rs.s.Counts, s.Counts)
}

// stddev is stddev(s, n) of the sample rs summarises.
func (rs *Summary) stddev(s Sample) float64 {
	rs.sdOnce.Do(func() { rs.sd = stddev(s, rs.n) })
	return rs.sd
}
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
		if p.refSum == nil {
			p.n1, p.n2, p.compact, p.err = twoChecked(method, p.ref, p.cur, 1)
		} else {
			p.n1, p.n2, p.compact, p.err = twoCheckedRef(method, p.refSum.n, p.refSum.compact, p.refSum.err, p.cur, 1)
		}
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
	var sd float64
	if p.refSum != nil {
		sd = p.refSum.stddev(p.ref)
	} else {
		sd = stddev(p.ref, p.n1)
	}
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

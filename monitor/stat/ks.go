package stat

import (
	"math"
)

// ksMaxExactN is scipy's MAX_AUTO_N: method='auto' computes the exact
// p-value when both samples have at most this many rows.
const ksMaxExactN = 10000

// KS returns the two-sample Kolmogorov–Smirnov test of the current window
// against the reference, two-sided, as scipy.stats.ks_2samp(ref, cur,
// alternative='two-sided', method='auto'):
//
//	D = sup_x |F_ref(x) − F_cur(x)|  (right-continuous empirical CDFs; ties are
//	counted as one step, so Samples given as value→count work directly)
//
// P-value: when max(n₁, n₂) ≤ 10000, exact. D is first rounded to the lattice
// h/lcm(n₁, n₂) with h = round(D·lcm) (the reported Value is that rounded D,
// as in scipy), then p = Pr(D_{n,n} ≥ h/n) by the alternating binomial sum
// when n₁ = n₂, else by Hodges' lattice-path "inside" recursion in Viehmann's
// form for 1 − p. Otherwise (or if the exact value fails) asymptotic:
// p = kstwo.sf(D, round(n₁n₂/(n₁+n₂))), the one-sample Kolmogorov
// distribution at the effective size (see kolmogorovSF). Ties make the test
// conservative, as in scipy. Needs at least one row in each window.
func KS(ref, cur Sample) (Result, error) { return ks(ref, cur, true) }

// KSAsymptotic is KS with the asymptotic p-value whatever the sizes: for
// samples drawn from larger windows, whose exact null distribution is that
// of the draw and not of the rows, and whose exact p-value at a few
// thousand rows a side (Hodges' recursion is O(n₁n₂)) costs more than the
// rest of an evaluation. At the sizes it is used for (5,000 rows a side or
// more) the two p-values agree to a few parts in a thousand
// (TestKSAsymptoticNearExact).
func KSAsymptotic(ref, cur Sample) (Result, error) { return ks(ref, cur, false) }

func ks(ref, cur Sample, exact bool) (Result, error) {
	n1, n2, err := twoSamples(MethodKS, ref, cur, 1)
	if err != nil {
		return Result{}, err
	}
	maxS, minD, _ := ecdfWalk(ref, cur, n1, n2)
	return ksResult(n1, n2, maxS, minD, exact), nil
}

// ksResult is the KS result of a walk's largest and least F_ref − F_cur.
func ksResult(n1, n2 int64, maxS, minD float64, exact bool) Result {
	d := maxS
	if minS := math.Min(-minD, 1); minS > maxS {
		d = minS
	}
	res := Result{Method: MethodKS, Reference: n1, Current: n2}
	if exact && max(n1, n2) <= ksMaxExactN {
		ok, dd, p := ksExact(n1, n2, d)
		if ok {
			res.Value, res.PValue, res.PValueMethod = dd, clip01(p), PValueExact
			return res
		}
		d = dd // scipy falls back to the asymptotic p-value with the rounded D
	}
	m, n := float64(max(n1, n2)), float64(min(n1, n2))
	en := m * n / (m + n)
	res.Value = d
	res.PValue = clip01(kolmogorovSF(int64(math.RoundToEven(en)), d))
	res.PValueMethod = PValueAsymptotic
	return res
}

// ksExact is scipy's _attempt_exact_2kssamp for the two-sided alternative.
func ksExact(n1, n2 int64, d float64) (ok bool, dd, p float64) {
	g := gcd(n1, n2)
	lcm := (n1 / g) * n2
	h := int64(math.RoundToEven(d * float64(lcm)))
	dd = float64(h) / float64(lcm)
	if h == 0 {
		return true, dd, 1
	}
	if n1 == n2 {
		p = ksProbOutsideSquare(n1, h)
	} else {
		p = ksProbOutsideInside(n1, n2, g, h)
	}
	if math.IsNaN(p) || math.IsInf(p, 0) || p < 0 || p > 1 {
		return false, dd, p
	}
	return true, dd, p
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

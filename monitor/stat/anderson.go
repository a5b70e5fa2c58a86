package stat

import (
	"fmt"
	"math"
)

// AndersonDarling returns the k-sample Anderson–Darling test (Scholz &
// Stephens 1987) of the given samples, normally (reference, current), as
// scipy.stats.anderson_ksamp(samples) with its defaults (midrank version,
// tabulated p-value). The statistic is the midrank A²_akN (their eq. 7),
// valid with ties:
//
//	A²_akN = (N−1)/N · Σ_i 1/n_i · Σ_j l_j/N · (N·M_ij − B_j·n_i)² / (B_j(N−B_j) − N·l_j/4)
//
// over distinct pooled values z_j with l_j ties, B_j = #{pooled < z_j} + l_j/2,
// M_ij = #{sample i ≤ z_j} − f_ij/2; Value is the standardised
// T = (A²_akN − (k−1)) / σ_N with σ_N² from their eq. 4 (can be negative).
//
// P-value: like scipy, interpolated: a quadratic is fitted by least squares
// to log(α) against the critical values of Scholz & Stephens' table 2 for
// α ∈ {0.25, 0.1, 0.05, 0.025, 0.01, 0.005, 0.001} (adjusted for k−1) and
// evaluated at T. Outside the table scipy caps the p-value at 0.25 (T below
// every critical value) or floors it at 0.001 (T above every one) and warns;
// this function returns the same numbers and says so in PValueMethod
// (PValueCapped: the true p-value is ≥ 0.25; PValueFloored: ≤ 0.001).
//
// Needs ≥ 1 row per sample and ≥ 4 rows in all (σ_N² divides by
// (N−1)(N−2)(N−3); scipy fails or returns a meaningless number below that):
// ErrInsufficient. All pooled values equal: ErrUndefined (scipy raises).
func AndersonDarling(samples ...Sample) (Result, error) {
	k := len(samples)
	if k < 2 {
		return Result{}, fmt.Errorf("%s needs at least two samples, have %d: %w", MethodAndersonDarling, k, ErrInvalid)
	}
	n := make([]int64, k)
	var N int64
	for i, s := range samples {
		c, err := s.validate(fmt.Sprintf("sample %d", i))
		if err != nil {
			return Result{}, fmt.Errorf("%s: %w", MethodAndersonDarling, err)
		}
		if c == 0 {
			return Result{}, fmt.Errorf("%s: sample %d is empty: %w", MethodAndersonDarling, i, ErrInsufficient)
		}
		n[i] = c
		N += c
	}
	res := Result{Method: MethodAndersonDarling, Reference: n[0], Current: n[1]}
	if N < 4 {
		return Result{}, fmt.Errorf("%s needs at least 4 rows in all, have %d: %w", MethodAndersonDarling, N, ErrInsufficient)
	}
	fN := float64(N)
	curs := make([]cursor, k)
	for i := range samples {
		curs[i] = cursor{s: samples[i]}
	}
	f := make([]int64, k)   // rows of sample i at z_j
	cum := make([]int64, k) // rows of sample i ≤ z_j
	inner := make([]float64, k)
	var below int64 // pooled rows < z_j
	distinct := 0
	for {
		z, found := 0.0, false
		for i := range curs {
			if v, ok := curs[i].peek(); ok && (!found || v < z) {
				z, found = v, true
			}
		}
		if !found {
			break
		}
		distinct++
		var l int64
		for i := range curs {
			f[i] = 0
			if v, ok := curs[i].peek(); ok && v == z {
				f[i] = curs[i].take(z)
			}
			cum[i] += f[i]
			l += f[i]
		}
		fl := float64(l)
		B := float64(below) + fl/2
		den := B*(fN-B) - fN*fl/4
		for i := range curs {
			M := float64(cum[i]) - float64(f[i])/2
			d := fN*M - B*float64(n[i])
			inner[i] += fl / fN * d * d / den
		}
		below += l
	}
	if distinct < 2 {
		return Result{}, fmt.Errorf("%s: all %d values are equal: %w", MethodAndersonDarling, N, ErrUndefined)
	}
	var a2 float64
	for i := range inner {
		a2 += inner[i] / float64(n[i])
	}
	a2 *= (fN - 1) / fN

	var H float64
	for _, c := range n {
		H += 1 / float64(c)
	}
	// hs_cs[t] = Σ_{s=0}^{t} 1/(N−1−s) for t = 0 … N−3; h = hs_cs[N−3] + 1,
	// g = Σ_t hs_cs[t]/(t+2).
	var hs, g float64
	for t := int64(0); t <= N-3; t++ {
		hs += 1 / float64(N-1-t)
		g += hs / float64(t+2)
	}
	h := hs + 1
	fk := float64(k)
	a := (4*g-6)*(fk-1) + (10-6*g)*H
	b := (2*g-4)*fk*fk + 8*h*fk + (2*g-14*h-4)*H - 8*h + 4*g - 6
	c := (6*h+2*g-2)*fk*fk + (4*h-4*g+6)*fk + (2*h-6)*H + 4*h
	d := (2*h+6)*fk*fk - 4*h*fk
	sigmasq := (a*fN*fN*fN + b*fN*fN + c*fN + d) / ((fN - 1) * (fN - 2) * (fN - 3))
	m := fk - 1
	A2 := (a2 - m) / math.Sqrt(sigmasq)
	res.Value = A2
	res.PValue, res.PValueMethod = adPValue(A2, m)
	return res, nil
}

// adPValue interpolates scipy's table of critical values (Scholz & Stephens
// 1987, table 2) for m = k−1.
func adPValue(A2, m float64) (float64, string) {
	b0 := [7]float64{0.675, 1.281, 1.645, 1.96, 2.326, 2.573, 3.085}
	b1 := [7]float64{-0.245, 0.25, 0.678, 1.149, 1.822, 2.364, 3.615}
	b2 := [7]float64{-0.105, -0.305, -0.362, -0.391, -0.396, -0.345, -0.154}
	sig := [7]float64{0.25, 0.1, 0.05, 0.025, 0.01, 0.005, 0.001}
	var crit, logSig [7]float64
	lo, hi := math.Inf(1), math.Inf(-1)
	for i := range crit {
		crit[i] = b0[i] + b1[i]/math.Sqrt(m) + b2[i]/m
		logSig[i] = math.Log(sig[i])
		lo, hi = math.Min(lo, crit[i]), math.Max(hi, crit[i])
	}
	switch {
	case A2 < lo:
		return 0.25, PValueCapped
	case A2 > hi:
		return 0.001, PValueFloored
	}
	c := polyfit2(crit[:], logSig[:])
	return math.Exp((c[0]*A2+c[1])*A2 + c[2]), PValueInterpolate
}

// polyfit2 returns the least-squares quadratic c0·x² + c1·x + c2 through the
// points (numpy.polyfit(x, y, 2)), by Householder QR of the column-scaled
// Vandermonde matrix.
func polyfit2(x, y []float64) [3]float64 {
	n := len(x)
	A := make([][3]float64, n)
	rhs := make([]float64, n)
	var scale [3]float64
	for i := range x {
		A[i] = [3]float64{x[i] * x[i], x[i], 1}
		rhs[i] = y[i]
		for j := 0; j < 3; j++ {
			scale[j] += A[i][j] * A[i][j]
		}
	}
	for j := range scale {
		scale[j] = math.Sqrt(scale[j])
		for i := range A {
			A[i][j] /= scale[j]
		}
	}
	for j := 0; j < 3; j++ {
		var norm float64
		for i := j; i < n; i++ {
			norm += A[i][j] * A[i][j]
		}
		norm = math.Sqrt(norm)
		if A[j][j] > 0 {
			norm = -norm
		}
		v := make([]float64, n)
		v[j] = A[j][j] - norm
		for i := j + 1; i < n; i++ {
			v[i] = A[i][j]
		}
		var vv float64
		for i := j; i < n; i++ {
			vv += v[i] * v[i]
		}
		if vv == 0 {
			continue
		}
		for col := j; col < 3; col++ {
			var s float64
			for i := j; i < n; i++ {
				s += v[i] * A[i][col]
			}
			s = 2 * s / vv
			for i := j; i < n; i++ {
				A[i][col] -= s * v[i]
			}
		}
		var s float64
		for i := j; i < n; i++ {
			s += v[i] * rhs[i]
		}
		s = 2 * s / vv
		for i := j; i < n; i++ {
			rhs[i] -= s * v[i]
		}
	}
	var c [3]float64
	for j := 2; j >= 0; j-- {
		s := rhs[j]
		for col := j + 1; col < 3; col++ {
			s -= A[j][col] * c[col]
		}
		c[j] = s / A[j][j]
	}
	for j := range c {
		c[j] /= scale[j]
	}
	return c
}

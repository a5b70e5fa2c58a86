package stat

import "math"

// chi2SF is the survival function of the chi-square distribution with k
// degrees of freedom: Q(k/2, x/2), the regularized upper incomplete gamma
// function.
func chi2SF(x, k float64) float64 {
	if x <= 0 {
		return 1
	}
	return gammaQ(k/2, x/2)
}

// gammaQ is the regularized upper incomplete gamma function
// Q(a, x) = Γ(a, x)/Γ(a) for a > 0, x ≥ 0: the power series of P = 1 − Q
// for x < a+1, Legendre's continued fraction (modified Lentz) otherwise.
func gammaQ(a, x float64) float64 {
	switch {
	case x <= 0:
		return 1
	case math.IsInf(x, 1):
		return 0
	}
	lg, _ := math.Lgamma(a)
	logPre := a*math.Log(x) - x - lg // log(x^a e^-x / Γ(a))
	if x < a+1 {
		// P(a,x) = x^a e^-x / Γ(a+1) · Σ_n x^n / ((a+1)…(a+n))
		sum, term := 1/a, 1/a
		for n := 1; n < 100000; n++ {
			term *= x / (a + float64(n))
			sum += term
			if math.Abs(term) < math.Abs(sum)*1e-17 {
				break
			}
		}
		return 1 - math.Exp(logPre)*sum
	}
	const tiny = 1e-300
	b := x + 1 - a
	c := 1 / tiny
	d := 1 / b
	h := d
	for i := 1; i < 100000; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = b + an/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < 1e-16 {
			break
		}
	}
	return math.Exp(logPre) * h
}

// expBesselK is exp(−x)·K_ν(x), the exponentially scaled modified Bessel
// function of the second kind, for x > 0. It integrates
// K_ν(x) = ∫₀^∞ exp(−x·cosh t)·cosh(νt) dt with the trapezoidal rule, which
// converges geometrically fast for this analytic, doubly-exponentially
// decaying integrand (step 1/32 gives full double precision).
func expBesselK(nu, x float64) float64 {
	const h = 1.0 / 32
	// exp(−x(1+cosh t)) is below e^−745 (underflow) once x(1+cosh t) > 745.
	sum := 0.5 * math.Exp(-2*x)
	for i := 1; ; i++ {
		t := float64(i) * h
		e := x * (1 + math.Cosh(t))
		if e > 745 {
			break
		}
		sum += math.Exp(-e) * math.Cosh(nu*t)
	}
	return sum * h
}

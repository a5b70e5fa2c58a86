package stat

import "math"

// This file ports the distribution functions scipy 1.15 uses for the
// two-sample Kolmogorov–Smirnov p-value (scipy/stats/_stats_py.py,
// _stats_pythran.py and _ksstats.py), so that KS p-values agree with
// scipy.stats.ks_2samp(method='auto') to well below 1e-6. The algorithm
// selection mirrors scipy's on purpose: kolmogorovSF is exact in some
// regions and an approximation (Pelz–Good) in others, and matching scipy
// means taking the same branch.

var (
	ep128 = math.Ldexp(1, 128)
	em128 = math.Ldexp(1, -128)
)

// ksProbOutsideSquare is Pr(D_{n,n} ≥ h/n) for two samples of equal size n
// (scipy _compute_prob_outside_square): 2·Σ_k (−1)^{k+1} C(2n, n−kh)/C(2n, n)
// evaluated Horner-like to avoid cancellation.
func ksProbOutsideSquare(n, h int64) float64 {
	p := 0.0
	for k := n / h; k >= 0; k-- {
		p1 := 1.0
		for j := int64(0); j < h; j++ {
			p1 = float64(n-k*h-j) * p1 / float64(n+k*h+j+1)
		}
		p = p1 * (1 - p)
	}
	return 2 * p
}

// ksProbOutsideInside is Pr(D_{m,n} ≥ h/lcm(m,n)) for two samples of sizes m
// and n with g = gcd(m, n): one minus the share of lattice paths from (0,0)
// to (m,n) that stay strictly inside |x/m − y/n| < h/lcm (Hodges' inside
// method with Viehmann's recursion for 1 − p; scipy
// _compute_outer_prob_inside_method).
func ksProbOutsideInside(m, n, g, h int64) float64 {
	if m < n {
		m, n = n, m
	}
	mg, ng := m/g, n/g
	minj := int64(0)
	maxj := min(int64(math.Ceil(float64(h)/float64(mg))), n+1)
	curlen := maxj - minj
	lenA := min(2*maxj+2, n+1)
	a := make([]float64, lenA)
	for i := range a {
		a[i] = 1
	}
	for i := minj; i < maxj; i++ {
		a[i] = 0
	}
	for i := int64(1); i <= m; i++ {
		lastminj, lastlen := minj, curlen
		minj = max(int64(math.Floor(float64(ng*i-h)/float64(mg)))+1, 0)
		minj = min(minj, n)
		maxj = min(int64(math.Ceil(float64(ng*i+h)/float64(mg))), n+1)
		if maxj <= minj {
			return 1
		}
		val := 1.0
		if minj == 0 {
			val = 0
		}
		fi := float64(i)
		for jj := int64(0); jj < maxj-minj; jj++ {
			j := jj + minj
			val = (a[jj+minj-lastminj]*fi + val*float64(j)) / (fi + float64(j))
			a[jj] = val
		}
		curlen = maxj - minj
		if lastlen > curlen {
			for x := maxj - minj; x < maxj-minj+(lastlen-curlen) && x < int64(len(a)); x++ {
				a[x] = 1
			}
		}
	}
	return a[maxj-minj-1]
}

// kolmogorovSF is the survival function Pr(D_n > x) of the two-sided
// one-sample Kolmogorov statistic D_n (scipy.stats.kstwo.sf(x, n)), following
// Simard & L'Ecuyer (2011) as scipy's _kolmogn does: Ruben–Gambino closed
// forms at the ends, the Durbin matrix (Marsaglia–Tsang–Wang) or Pomeranz
// recursion for small n·x², twice the exact one-sided Smirnov tail for large
// n·x², and the Pelz–Good expansion for large n.
func kolmogorovSF(n int64, x float64) float64 {
	// kstwo's support is [1/(2n), 1]; rv_continuous.sf returns 1 and 0 outside.
	fn := float64(n)
	if x <= 0.5/fn {
		return 1
	}
	if x >= 1 {
		return 0
	}
	t := fn * x
	if t <= 1 {
		var cdf float64
		if n <= 140 {
			cdf = 1
			for i := int64(1); i <= n; i++ {
				cdf *= float64(i) * (1 / fn) * (2*t - 1)
			}
		} else {
			cdf = math.Exp(logNFactorialDivNPowN(fn) + fn*math.Log(2*t-1))
		}
		return clip01(1 - cdf)
	}
	if t >= fn-1 {
		return clip01(2 * math.Pow(1-x, fn))
	}
	if x >= 0.5 {
		return clip01(2 * smirnovSF(n, x))
	}
	nx2 := t * x
	if n <= 140 {
		switch {
		case nx2 <= 0.754693:
			return clip01(1 - kolmogorovDMTW(n, x))
		case nx2 <= 4:
			return clip01(1 - kolmogorovPomeranz(n, x))
		default:
			return clip01(2 * smirnovSF(n, x))
		}
	}
	if nx2 >= 370 {
		return 0
	}
	if nx2 >= 2.2 {
		return clip01(2 * smirnovSF(n, x))
	}
	var cdf float64
	if n <= 100000 && fn*math.Pow(x, 1.5) <= 1.4 {
		cdf = kolmogorovDMTW(n, x)
	} else {
		cdf = kolmogorovPelzGood(n, x)
	}
	return clip01(1 - cdf)
}

func clip01(p float64) float64 { return math.Min(math.Max(p, 0), 1) }

// logNFactorialDivNPowN is log(n!/n^n) by Stirling's series.
func logNFactorialDivNPowN(n float64) float64 {
	coeffs := [...]float64{-2.955065359477124183e-2, 6.4102564102564102564e-3,
		-1.9175269175269175269e-3, 8.4175084175084175084e-4,
		-5.952380952380952381e-4, 7.9365079365079365079e-4,
		-2.7777777777777777778e-3, 8.3333333333333333333e-2}
	rn := 1 / n
	z := rn / n
	poly := 0.0
	for _, c := range coeffs {
		poly = poly*z + c
	}
	return math.Log(n)/2 - n + math.Log(2*math.Pi)/2 + rn*poly
}

// smirnovSF is Pr(D⁺_n ≥ x), the exact one-sided Smirnov tail
// (scipy.special.smirnov), by the Birnbaum–Tingey sum
// x·Σ_{j=0}^{⌊n(1−x)⌋} C(n,j)·(x + j/n)^{j−1}·(1 − x − j/n)^{n−j}, summed in
// log space.
func smirnovSF(n int64, x float64) float64 {
	if x <= 0 {
		return 1
	}
	if x >= 1 {
		return 0
	}
	fn := float64(n)
	jmax := int64(math.Floor(fn * (1 - x)))
	sum := 0.0
	lc := 0.0 // log C(n, j)
	for j := int64(0); j <= jmax; j++ {
		if j > 0 {
			lc += math.Log(float64(n-j+1) / float64(j))
		}
		fj := float64(j)
		a := x + fj/fn
		b := (fn - fj - fn*x) / fn
		if b <= 0 {
			continue
		}
		lt := lc + (fj-1)*math.Log(a) + (fn-fj)*math.Log(b)
		if lt > -745 {
			sum += math.Exp(lt)
		}
	}
	return sum * x
}

// kolmogorovDMTW is Pr(D_n ≤ d) by Durbin's matrix method as implemented by
// Marsaglia, Tsang and Wang (2003), with exponent tracking against overflow.
func kolmogorovDMTW(n int64, d float64) float64 {
	fn := float64(n)
	if d >= 1 {
		return 1
	}
	nd := fn * d
	if nd <= 0.5 {
		return 0
	}
	k := int(math.Ceil(nd))
	h := float64(k) - nd
	m := 2*k - 1
	H := newMat(m)
	v := make([]float64, m)
	w := make([]float64, m)
	fac := 1.0
	for j := 1; j <= m; j++ {
		v[j-1] = 1 - math.Pow(h, float64(j))
		w[j-1] = fac
		fac /= float64(j)
		v[j-1] *= fac
	}
	tt := math.Pow(math.Max(2*h-1, 0), float64(m)) - 2*math.Pow(h, float64(m))
	v[m-1] = (1 + tt) * fac
	for i := 1; i < m; i++ {
		for r := i - 1; r < m; r++ {
			H.set(r, i, w[r-(i-1)])
		}
	}
	for r := 0; r < m; r++ {
		H.set(r, 0, v[r])
	}
	for c := 0; c < m; c++ {
		H.set(m-1, c, v[m-1-c])
	}
	P := identity(m)
	expnt, hexpnt := 0, 0
	for nn := n; nn > 0; nn /= 2 {
		if nn%2 == 1 {
			P = P.mul(H)
			expnt += hexpnt
		}
		H = H.mul(H)
		hexpnt *= 2
		if math.Abs(H.at(k-1, k-1)) > ep128 {
			for i := range H.a {
				H.a[i] /= ep128
			}
			hexpnt += 128
		}
	}
	p := P.at(k-1, k-1)
	for i := int64(1); i <= n; i++ {
		p = float64(i) * p / fn
		if math.Abs(p) < em128 {
			p *= ep128
			expnt -= 128
		}
	}
	if expnt != 0 {
		p = math.Ldexp(p, expnt)
	}
	return clip01(p)
}

type mat struct {
	n int
	a []float64
}

func newMat(n int) mat            { return mat{n: n, a: make([]float64, n*n)} }
func (m mat) at(i, j int) float64 { return m.a[i*m.n+j] }
func (m mat) set(i, j int, v float64) {
	m.a[i*m.n+j] = v
}

func identity(n int) mat {
	m := newMat(n)
	for i := 0; i < n; i++ {
		m.a[i*n+i] = 1
	}
	return m
}

func (m mat) mul(o mat) mat {
	n := m.n
	r := newMat(n)
	for i := 0; i < n; i++ {
		ri := r.a[i*n : (i+1)*n]
		for k := 0; k < n; k++ {
			x := m.a[i*n+k]
			if x == 0 {
				continue
			}
			ok := o.a[k*n : (k+1)*n]
			for j := range ri {
				ri[j] += x * ok[j]
			}
		}
	}
	return r
}

// pomeranzJ1J2 returns the column interval of row i of Pomeranz's recursion.
func pomeranzJ1J2(i, n, ll, ceilf, roundf int) (int, int) {
	var j1, j2 int
	if i == 0 {
		j1, j2 = -ll-ceilf-1, ll+ceilf-1
	} else {
		ip1div2, ip1mod2 := (i+1)/2, (i+1)%2
		if ip1mod2 == 0 {
			if ip1div2 == n+1 {
				j1, j2 = n-ll-ceilf-1, n+ll+ceilf-1
			} else {
				j1, j2 = ip1div2-1-ll-roundf-1, ip1div2+ll-1+ceilf-1
			}
		} else {
			j1, j2 = ip1div2-1-ll-1, ip1div2+ll+roundf-1
		}
	}
	return max(j1+2, 0), min(j2, n)
}

// kolmogorovPomeranz is Pr(D_n ≤ x) by Pomeranz's (1974) recursion.
func kolmogorovPomeranz(n64 int64, x float64) float64 {
	n := int(n64)
	fn := float64(n)
	t := fn * x
	ll := int(math.Floor(t))
	f := t - float64(ll)
	g := math.Min(f, 1-f)
	ceilf, roundf := 0, 0
	if f > 0 {
		ceilf = 1
	}
	if f > 0.5 {
		roundf = 1
	}
	npwrs := 2 * (ll + 1)
	gp := make([]float64, npwrs)
	g2p := make([]float64, npwrs)
	g12p := make([]float64, npwrs)
	gp[0], g2p[0], g12p[0] = 1, 1, 1
	gn, g2n, g12n := g/fn, 2*g/fn, (1-2*g)/fn
	for m := 1; m < npwrs; m++ {
		gp[m] = gp[m-1] * gn / float64(m)
		g2p[m] = g2p[m-1] * g2n / float64(m)
		g12p[m] = g12p[m-1] * g12n / float64(m)
	}
	V0 := make([]float64, npwrs)
	V1 := make([]float64, npwrs)
	V1[0] = 1
	V0s, V1s := 0, 0
	expnt := 0
	j1, _ := pomeranzJ1J2(0, n, ll, ceilf, roundf)
	var j2 int
	for i := 1; i < 2*n+2; i++ {
		k1 := j1
		V0, V1 = V1, V0
		V0s, V1s = V1s, V0s
		clear(V1)
		j1, j2 = pomeranzJ1J2(i, n, ll, ceilf, roundf)
		pw := g12p
		switch {
		case i == 1 || i == 2*n+1:
			pw = gp
		case i%2 == 1:
			pw = g2p
		}
		ln2 := j2 - k1 + 1
		if ln2 > 0 {
			// seg = V0[k1-V0s : k1-V0s+ln2] (clipped like a numpy slice),
			// conv = full convolution of seg and pw[:ln2].
			lo := k1 - V0s
			hi := min(lo+ln2, npwrs)
			seg := V0[lo:hi]
			pws := pw[:min(ln2, npwrs)]
			start := j1 - k1
			clen := j2 - j1 + 1
			maxv := 0.0
			for o := 0; o < clen; o++ {
				idx := start + o
				s := 0.0
				for a := max(0, idx-len(pws)+1); a <= idx && a < len(seg); a++ {
					s += seg[a] * pws[idx-a]
				}
				V1[o] = s
				maxv = math.Max(maxv, s)
			}
			if maxv > 0 && maxv < em128 {
				for o := range V1 {
					V1[o] *= ep128
				}
				expnt -= 128
			}
			V1s = V0s + j1 - k1
		}
	}
	ans := V1[n-V1s]
	for m := 1; m <= n; m++ {
		if math.Abs(ans) > ep128 {
			ans *= em128
			expnt += 128
		}
		ans *= float64(m)
	}
	if expnt != 0 {
		ans = math.Ldexp(ans, expnt)
	}
	return clip01(ans)
}

// kolmogorovPelzGood is the Pelz–Good (1976) approximation of Pr(D_n ≤ x).
func kolmogorovPelzGood(n int64, x float64) float64 {
	if x <= 0 {
		return 0
	}
	if x >= 1 {
		return 1
	}
	fn := float64(n)
	z := math.Sqrt(fn) * x
	z2, z3, z4, z6 := z*z, z*z*z, z*z*z*z, math.Pow(z, 6)
	pi2, pi4, pi6 := math.Pi*math.Pi, math.Pow(math.Pi, 4), math.Pow(math.Pi, 6)
	qlog := -pi2 / 8 / z2
	if qlog < -708 {
		return 0
	}
	q := math.Exp(qlog)
	k1a, k1b := -z2, pi2/4
	k2a := 6*z6 + 2*z4
	k2b := (2*z4 - 5*z2) * pi2 / 4
	k2c := pi4 * (1 - 2*z2) / 16
	k3d := pi6 * (5 - 30*z2) / 64
	k3c := pi4 * (-60*z2 + 212*z4) / 16
	k3b := pi2 * (135*z4 - 96*z6) / 4
	k3a := -30*z6 - 90*math.Pow(z, 8)
	var K [4]float64
	maxk := int(math.Ceil(16 * z / math.Pi))
	for k := maxk; k > 0; k-- {
		m := float64(2*k - 1)
		m2, m4, m6 := m*m, math.Pow(m, 4), math.Pow(m, 6)
		qp := math.Pow(q, float64(8*k))
		c := [4]float64{1, k1a + k1b*m2, k2a + k2b*m2 + k2c*m4, k3a + k3b*m2 + k3c*m4 + k3d*m6}
		for i := range K {
			K[i] = K[i]*qp + c[i]
		}
	}
	sq2pi := math.Sqrt(2 * math.Pi)
	div := [4]float64{z, 6 * z4, 72 * math.Pow(z, 7), 6480 * math.Pow(z, 10)}
	for i := range K {
		K[i] = K[i] * q * sq2pi / div[i]
	}
	q = math.Exp(-pi2 / 2 / z2)
	var k2extra, k3extra float64
	sqrt3z := math.Sqrt(3) * z
	for k := maxk; k > 0; k-- {
		fk := float64(k)
		ks2 := fk * fk
		qp := math.Pow(q, ks2)
		k2extra += ks2 * qp
		kspi := math.Pi * fk
		k3extra += (sqrt3z + kspi) * (sqrt3z - kspi) * ks2 * qp
	}
	K[2] += k2extra * pi2 * sq2pi / (-36 * z3)
	K[3] += k3extra * pi2 * sq2pi / (216 * z6)
	sum := 0.0
	for i := range K {
		sum += K[i] / math.Pow(fn, float64(i)/2)
	}
	return sum
}

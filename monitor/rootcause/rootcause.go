// Package rootcause ranks the slices of a population by their
// contribution to a drift, and splits each slice's contribution into a
// mix shift (the slice's share of the traffic moved) and a within-slice
// shift (the slice's own distribution moved), with a decomposition that
// adds up: the contributions of the slices of one key sum to the
// population's figure exactly. It is pure: it sees bin or category counts.
//
// # The decomposition of PSI
//
// Write the population's (smoothed) share of bin b in window t (0 the
// reference, 1 the current) as a sum over the slices s of one key:
//
//	p_t(b) = Σ_s w_t(s)·q_t(s,b)
//
// with w_t(s) the slice's share of the window's rows and q_t(s,b) the share
// of the slice's rows in bin b. The rows of no slice (without the key, or
// in slices too small to evaluate) and PSI's smoothing pseudo-counts form
// one more term, the rest, so the identity is exact. PSI is
//
//	PSI = Σ_b (p_1(b) − p_0(b))·L(b),   L(b) = ln(p_1(b)/p_0(b))
//
// and, with the exact identity w1·q1 − w0·q0 = (w1 − w0)·q0 + w1·(q1 − q0),
//
//	PSI = Σ_s [ (w_1(s) − w_0(s))·Σ_b q_0(s,b)·L(b) ]     mix shift of s
//	    + Σ_s [ w_1(s)·Σ_b (q_1(s,b) − q_0(s,b))·L(b) ]   within-slice shift of s
//
// The weights L(b) are the population's, so a slice's contribution is what
// it adds to the population's PSI: a slice that grows while its rows sit in
// bins the population moved into contributes mix; a slice whose rows moved
// contributes within. Contributions can be negative (a slice that moved
// against the population's shift).
//
// # The decomposition of a mean-type metric (performance)
//
// A metric that is a mean over the rows it scores (accuracy: the mean of
// "prediction correct"; MAE: of |y − ŷ|; log_loss, brier, and MSE) is, over
// the slices s of one key plus the rest,
//
//	M_t = Σ_s w_t(s)·m_t(s)
//
// with w_t(s) = n_t(s)/N_t the slice's share of the window's scored rows
// and m_t(s) its own metric. With the exact identity
// w1·m1 − w0·m0 = (w1 − w0)·m1 + w0·(m1 − m0),
//
//	M_1 − M_0 = Σ_s [ (w_1(s) − w_0(s))·(m_1(s) − M_0) ]   mix shift of s
//	          + Σ_s [ w_0(s)·(m_1(s) − m_0(s)) ]           within-slice shift of s
//
// The mix term is centred on the reference's population metric M_0, which
// changes no sum (the shares of the slices and the rest sum to 1 in both
// windows, so Σ_s (w_1(s) − w_0(s))·M_0 = 0) but makes a slice's mix say
// what its move did: a slice that grows while worse than the reference
// average pulls the metric down, one that shrinks while better too.
// Uncentred, every slice that grows would show a positive mix whatever
// its metric. A slice absent from the current window has no m_1: its m_1
// is taken as m_0, so its contribution is all mix (−w_0·(m_0 − M_0)); a
// slice new in the current window has w_0 = 0, so its contribution is all
// mix (w_1·(m_1 − M_0)). Both leave the identity exact.
package rootcause

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/driftwatch/driftwatch/monitor/stat"
)

// Smoothing is the pseudo-count per non-empty bin PSI adds, so that
// Decompose sums to the PSI the monitor reports.
const Smoothing = stat.PSISmoothing

// RestSegment names the rows of no slice (and the smoothing) in the
// contributions.
const RestSegment = "(rest)"

// Slice is one slice's counts per bin (or category), aligned with the
// population's.
type Slice struct {
	Name     string
	Ref, Cur []int64
}

// Contribution is one slice's part of the population's PSI.
type Contribution struct {
	Segment string `json:"segment"`
	// Mix and Within are the mix-shift and within-slice parts; Total is
	// their sum.
	Mix    float64 `json:"mix"`
	Within float64 `json:"within"`
	Total  float64 `json:"total"`
	// RefShare and CurShare are the slice's share of the rows in the two
	// windows (w_0 and w_1, smoothing included).
	RefShare float64 `json:"reference_share"`
	CurShare float64 `json:"current_share"`
}

// Kind says which part dominates: "mix" or "within".
func (c Contribution) Kind() string {
	if math.Abs(c.Mix) > math.Abs(c.Within) {
		return KindMix
	}
	return KindWithin
}

// Kinds of a contribution.
const (
	KindMix    = "mix"
	KindWithin = "within"
)

// ErrNotPartition means the slices hold more rows in a bin than the
// population: they are not slices of one key.
var ErrNotPartition = errors.New("the slices hold more rows than the population")

// Decompose splits the PSI of the population counts (ref, cur per bin)
// into the contributions of slices, all of one key (disjoint), plus the
// rest, ranked by |Total|, largest first. It returns the population's
// PSI, equal to the sum of the contributions' Totals up to rounding.
func Decompose(ref, cur []int64, slices []Slice) (float64, []Contribution, error) {
	if len(ref) != len(cur) {
		return math.NaN(), nil, fmt.Errorf("reference has %d bins, current %d", len(ref), len(cur))
	}
	var nr, nc, nb float64
	for b := range ref {
		nr += float64(ref[b])
		nc += float64(cur[b])
		if ref[b]+cur[b] > 0 {
			nb++
		}
	}
	if nr == 0 || nc == 0 {
		return math.NaN(), nil, errors.New("a window without rows")
	}
	dr, dc := nr+Smoothing*nb, nc+Smoothing*nb
	// L(b) over the bins PSI sums (those with rows in either window).
	L := make([]float64, len(ref))
	for b := range ref {
		if ref[b]+cur[b] == 0 {
			continue
		}
		L[b] = math.Log(((float64(cur[b]) + Smoothing) / dc) / ((float64(ref[b]) + Smoothing) / dr))
	}
	restR := make([]float64, len(ref))
	restC := make([]float64, len(ref))
	for b := range ref {
		if ref[b]+cur[b] > 0 {
			restR[b], restC[b] = float64(ref[b])+Smoothing, float64(cur[b])+Smoothing
		}
	}
	part := func(name string, r, c []float64) Contribution {
		var sr, sc float64
		for b := range r {
			sr += r[b]
			sc += c[b]
		}
		x := Contribution{Segment: name, RefShare: sr / dr, CurShare: sc / dc}
		var l0, l1 float64 // Σ_b q_0(s,b)·L(b), Σ_b q_1(s,b)·L(b)
		for b := range r {
			if sr > 0 {
				l0 += r[b] / sr * L[b]
			}
			if sc > 0 {
				l1 += c[b] / sc * L[b]
			}
		}
		x.Mix = (x.CurShare - x.RefShare) * l0
		if sc > 0 {
			if sr > 0 {
				x.Within = x.CurShare * (l1 - l0)
			} else {
				// A slice new in the current window: all of it is mix
				// (it had no distribution to move from).
				x.Mix = x.CurShare*l1 - x.RefShare*l0
			}
		}
		x.Total = x.Mix + x.Within
		return x
	}
	out := make([]Contribution, 0, len(slices)+1)
	for _, s := range slices {
		if len(s.Ref) != len(ref) || len(s.Cur) != len(cur) {
			return math.NaN(), nil, fmt.Errorf("slice %s has %d and %d bins, the population %d", s.Name, len(s.Ref), len(s.Cur), len(ref))
		}
		r := make([]float64, len(ref))
		c := make([]float64, len(ref))
		for b := range ref {
			r[b], c[b] = float64(s.Ref[b]), float64(s.Cur[b])
			restR[b] -= r[b]
			restC[b] -= c[b]
			if restR[b] < 0 || restC[b] < 0 {
				return math.NaN(), nil, fmt.Errorf("bin %d: %w", b, ErrNotPartition)
			}
		}
		out = append(out, part(s.Name, r, c))
	}
	out = append(out, part(RestSegment, restR, restC))
	var psi float64
	for b := range ref {
		if ref[b]+cur[b] == 0 {
			continue
		}
		psi += ((float64(cur[b])+Smoothing)/dc - (float64(ref[b])+Smoothing)/dr) * L[b]
	}
	sort.SliceStable(out, func(i, j int) bool { return math.Abs(out[i].Total) > math.Abs(out[j].Total) })
	return psi, out, nil
}

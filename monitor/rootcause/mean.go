package rootcause

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// MeanSums is a window's scored rows and the sum of the metric's per-row
// values over them (the metric is Sum/N): for accuracy, N scored rows and
// Sum the correct ones; for MAE the sum of |y − ŷ|.
type MeanSums struct {
	N   int64
	Sum float64
}

// Mean is Sum/N, NaN without rows.
func (s MeanSums) Mean() float64 {
	if s.N == 0 {
		return math.NaN()
	}
	return s.Sum / float64(s.N)
}

// MeanSlice is one slice's sums in the reference and the current window.
type MeanSlice struct {
	Name     string
	Ref, Cur MeanSums
}

// DecomposeMean splits the change of a mean-type metric between the
// population's ref and cur sums into the contributions of slices, all of
// one key (disjoint), plus the rest (the rows of no slice: the
// population's sums minus the slices'), ranked by |Total|, largest
// first. It returns the population's change M_1 − M_0, equal to the sum
// of the contributions' Totals up to rounding.
func DecomposeMean(ref, cur MeanSums, slices []MeanSlice) (float64, []Contribution, error) {
	if ref.N <= 0 || cur.N <= 0 {
		return math.NaN(), nil, errors.New("a window without scored rows")
	}
	rest := MeanSlice{Name: RestSegment, Ref: ref, Cur: cur}
	for _, s := range slices {
		if s.Ref.N < 0 || s.Cur.N < 0 {
			return math.NaN(), nil, fmt.Errorf("slice %s: negative rows", s.Name)
		}
		rest.Ref.N -= s.Ref.N
		rest.Cur.N -= s.Cur.N
		rest.Ref.Sum -= s.Ref.Sum
		rest.Cur.Sum -= s.Cur.Sum
		if rest.Ref.N < 0 || rest.Cur.N < 0 {
			return math.NaN(), nil, fmt.Errorf("slice %s: %w", s.Name, ErrNotPartition)
		}
	}
	m0pop := ref.Mean()
	part := func(s MeanSlice) Contribution {
		x := Contribution{Segment: s.Name, RefShare: float64(s.Ref.N) / float64(ref.N), CurShare: float64(s.Cur.N) / float64(cur.N)}
		switch {
		case s.Ref.N == 0 && s.Cur.N == 0:
		case s.Cur.N == 0:
			x.Mix = -x.RefShare * (s.Ref.Mean() - m0pop)
		case s.Ref.N == 0:
			x.Mix = x.CurShare * (s.Cur.Mean() - m0pop)
		default:
			m0, m1 := s.Ref.Mean(), s.Cur.Mean()
			x.Mix = (x.CurShare - x.RefShare) * (m1 - m0pop)
			x.Within = x.RefShare * (m1 - m0)
		}
		x.Total = x.Mix + x.Within
		return x
	}
	out := make([]Contribution, 0, len(slices)+1)
	for _, s := range slices {
		out = append(out, part(s))
	}
	// The rest is the population minus the slices: its sums may carry
	// rounding (a tiny negative Sum), never rows it does not have.
	out = append(out, part(rest))
	sort.SliceStable(out, func(i, j int) bool { return math.Abs(out[i].Total) > math.Abs(out[j].Total) })
	return cur.Mean() - ref.Mean(), out, nil
}

// Rescale multiplies every contribution by to/from, so that
// contributions that sum to from sum to to: the root cause of RMSE is
// that of MSE rescaled by ΔRMSE/ΔMSE (the same sign, sqrt being
// increasing), which keeps each slice's share of the change and its mix
// and within parts. A from of 0 leaves zeros.
func Rescale(cs []Contribution, from, to float64) []Contribution {
	f := 0.0
	if from != 0 {
		f = to / from
	}
	out := make([]Contribution, len(cs))
	for i, c := range cs {
		c.Mix, c.Within, c.Total = c.Mix*f, c.Within*f, c.Total*f
		out[i] = c
	}
	return out
}

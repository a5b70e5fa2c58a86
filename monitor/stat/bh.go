package stat

import (
	"fmt"
	"math"
	"slices"
)

// BenjaminiHochberg controls the false discovery rate over a family of m
// tests (for example every feature of a model in one window). It returns the
// BH-adjusted p-values, in the order given (scipy.stats.
// false_discovery_control(ps, method='bh')):
//
//	p̃_(i) = min_{j ≥ i} min(1, p_(j)·m/j)   for the ascending p_(1) ≤ … ≤ p_(m)
//
// and which hypotheses are rejected at false discovery rate q: those with
// p̃ ≤ q (equivalently, the step-up rule p_(i) ≤ i·q/m). P-values must lie in
// [0, 1]; NaN (a test without a p-value) is ErrInvalid: leave such tests out
// of the family.
func BenjaminiHochberg(ps []float64, q float64) (adjusted []float64, reject []bool, err error) {
	if math.IsNaN(q) || q < 0 || q > 1 {
		return nil, nil, fmt.Errorf("benjamini-hochberg: q = %v outside [0, 1]: %w", q, ErrInvalid)
	}
	for i, p := range ps {
		if !(p >= 0 && p <= 1) {
			return nil, nil, fmt.Errorf("benjamini-hochberg: p-value %d = %v outside [0, 1]: %w", i, p, ErrInvalid)
		}
	}
	m := len(ps)
	order := make([]int, m)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case ps[a] < ps[b]:
			return -1
		case ps[a] > ps[b]:
			return 1
		}
		return 0
	})
	adjusted = make([]float64, m)
	running := math.Inf(1)
	for r := m - 1; r >= 0; r-- {
		v := ps[order[r]] * (float64(m) / float64(r+1))
		running = math.Min(running, v)
		adjusted[order[r]] = math.Min(running, 1)
	}
	reject = make([]bool, m)
	for i, a := range adjusted {
		reject[i] = a <= q
	}
	return adjusted, reject, nil
}

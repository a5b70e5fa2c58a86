package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
)

// DefaultResamples is the number of bootstrap resamples when
// BootstrapOptions.Resamples is 0.
const DefaultResamples = 1000

// BootstrapOptions configure BootstrapDiff.
type BootstrapOptions struct {
	// Resamples is the number B of resamples (0 → 1000).
	Resamples int `json:"resamples" yaml:"resamples"`
	// Seed makes the resamples reproducible: resample b draws from a PCG
	// seeded with (Seed, b), whatever the number of workers.
	Seed uint64 `json:"seed" yaml:"seed"`
	// Level is the confidence level of the interval (0 → 0.95).
	Level float64 `json:"level" yaml:"level"`
	// Workers is the number of goroutines (0 → GOMAXPROCS).
	Workers int `json:"-" yaml:"-"`
}

// DiffCI is a paired bootstrap confidence interval of
// metric(challenger) − metric(champion) on the same rows.
type DiffCI struct {
	Metric     Metric  `json:"metric"`
	Champion   float64 `json:"champion"`   // on all rows
	Challenger float64 `json:"challenger"` // on all rows
	Diff       float64 `json:"diff"`       // Challenger − Champion
	Lo         float64 `json:"lo"`         // percentile interval of the resampled differences
	Hi         float64 `json:"hi"`
	Level      float64 `json:"level"`
	Resamples  int     `json:"resamples"`
	// Undefined counts resamples on which the metric was undefined (a
	// resample with one class for ROC AUC); they are left out.
	Undefined int `json:"undefined"`
}

// ExcludesZero says whether the interval lies entirely on one side of 0.
func (d DiffCI) ExcludesZero() bool { return d.Lo > 0 || d.Hi < 0 }

// Improvement is the difference signed so that positive means the
// challenger is better, whichever direction the metric improves in.
func (d DiffCI) Improvement() float64 {
	if d.Metric.HigherIsBetter() {
		return d.Diff
	}
	return -d.Diff
}

// ChallengerBetter says whether the challenger improves on the champion by
// at least margin (in the metric's units) and the interval of the
// difference excludes zero on the challenger's side.
func (d DiffCI) ChallengerBetter(margin float64) bool {
	if d.Improvement() < margin {
		return false
	}
	if d.Metric.HigherIsBetter() {
		return d.Lo > 0
	}
	return d.Hi < 0
}

// BootstrapDiff computes a paired percentile bootstrap interval of the
// difference of metric m between two prediction vectors for the same rows
// y: each resample draws len(y) rows with replacement and evaluates both
// models on the same draw.
func BootstrapDiff(m Metric, y, champion, challenger []float64, opts BootstrapOptions) (DiffCI, error) {
	ci := DiffCI{Metric: m, Resamples: opts.Resamples, Level: opts.Level}
	if ci.Resamples == 0 {
		ci.Resamples = DefaultResamples
	}
	if ci.Level == 0 {
		ci.Level = 0.95
	}
	if ci.Resamples < 0 || !(ci.Level > 0 && ci.Level < 1) {
		return ci, fmt.Errorf("%w: resamples %d, level %v", ErrInput, ci.Resamples, ci.Level)
	}
	a, err := prepare(m, y, champion)
	if err != nil {
		return ci, fmt.Errorf("champion: %w", err)
	}
	b, err := prepare(m, y, challenger)
	if err != nil {
		return ci, fmt.Errorf("challenger: %w", err)
	}
	if ci.Champion, err = a.eval(nil); err != nil {
		return ci, fmt.Errorf("champion: %w", err)
	}
	if ci.Challenger, err = b.eval(nil); err != nil {
		return ci, fmt.Errorf("challenger: %w", err)
	}
	ci.Diff = ci.Challenger - ci.Champion

	diffs := make([]float64, ci.Resamples)
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = max(1, min(workers, ci.Resamples))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			counts := make([]float64, len(y))
			for r := w; r < ci.Resamples; r += workers {
				resample(counts, opts.Seed, uint64(r))
				va, errA := a.eval(counts)
				vb, errB := b.eval(counts)
				if errA != nil || errB != nil {
					diffs[r] = math.NaN()
					continue
				}
				diffs[r] = vb - va
			}
		})
	}
	wg.Wait()
	diffs = slices.DeleteFunc(diffs, math.IsNaN)
	ci.Undefined = ci.Resamples - len(diffs)
	if len(diffs) == 0 {
		return ci, fmt.Errorf("%w: %s on every resample", ErrUndefined, m)
	}
	slices.Sort(diffs)
	alpha := 1 - ci.Level
	ci.Lo = Percentile(diffs, 100*alpha/2)
	ci.Hi = Percentile(diffs, 100*(1-alpha/2))
	return ci, nil
}

// resample fills counts with how often each row is drawn in resample r.
func resample(counts []float64, seed, r uint64) {
	clear(counts)
	rng := rand.New(rand.NewPCG(seed, r))
	n := uint64(len(counts))
	for range n {
		counts[rng.Uint64N(n)]++
	}
}

// Percentile returns the q-th percentile (0–100) of the sorted values with
// linear interpolation between order statistics, numpy.percentile's
// default method.
func Percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	pos := q / 100 * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	if lo >= len(sorted)-1 {
		return sorted[len(sorted)-1]
	}
	if lo < 0 {
		return sorted[0]
	}
	t := pos - float64(lo)
	a, b := sorted[lo], sorted[lo+1]
	return a + (b-a)*t
}

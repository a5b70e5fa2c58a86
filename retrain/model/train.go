package model

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
)

// Defaults of Config.
const (
	DefaultC       = 1.0
	DefaultAlpha   = 1.0
	DefaultMaxIter = 100
	DefaultTol     = 1e-10
)

// ErrNoRows is returned when the training data hold no labelled row.
var ErrNoRows = errors.New("no labelled training rows")

// ErrSingleClass is returned when classification training data hold only
// one class: the logistic regression optimum is then at infinity.
var ErrSingleClass = errors.New("training labels hold only one class")

// ErrNotConverged is returned when the solver reached MaxIter.
var ErrNotConverged = errors.New("solver did not converge")

// Config configures a built-in trainer: logistic regression for
// classification targets, ridge regression for regression targets.
type Config struct {
	Target     Target            `json:"target" yaml:"target"`
	Preprocess PreprocessOptions `json:"preprocess" yaml:"preprocess"`
	// C is the inverse L2 strength of logistic regression (0 → 1).
	C float64 `json:"c" yaml:"c"`
	// Alpha is the L2 strength of ridge regression (0 → 1).
	Alpha float64 `json:"alpha" yaml:"alpha"`
	// MaxIter bounds the Newton iterations (0 → 100).
	MaxIter int `json:"max_iter" yaml:"max_iter"`
	// Tol stops Newton when max|step| ≤ Tol·(1 + max|coefficient|)
	// (0 → 1e-10).
	Tol float64 `json:"tol" yaml:"tol"`
	// Workers is the number of goroutines a pass uses (0 → GOMAXPROCS).
	Workers int `json:"-" yaml:"workers"`
}

func (c Config) withDefaults() Config {
	if c.C == 0 {
		c.C = DefaultC
	}
	if c.Alpha == 0 {
		c.Alpha = DefaultAlpha
	}
	if c.MaxIter == 0 {
		c.MaxIter = DefaultMaxIter
	}
	if c.Tol == 0 {
		c.Tol = DefaultTol
	}
	if c.Workers == 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	return c
}

// Validate reports every invalid field at once.
func (c Config) Validate() error {
	var errs []error
	if err := c.Target.validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Preprocess.TopK < 0 {
		errs = append(errs, fmt.Errorf("preprocess.top_k: %d is negative", c.Preprocess.TopK))
	}
	if c.Preprocess.MaxFeatures < 0 {
		errs = append(errs, fmt.Errorf("preprocess.max_features: %d is negative", c.Preprocess.MaxFeatures))
	}
	if c.C < 0 || math.IsNaN(c.C) || math.IsInf(c.C, 0) {
		errs = append(errs, fmt.Errorf("c: %v must be positive and finite", c.C))
	}
	if c.Alpha < 0 || math.IsNaN(c.Alpha) || math.IsInf(c.Alpha, 0) {
		errs = append(errs, fmt.Errorf("alpha: %v must be positive and finite", c.Alpha))
	}
	if c.MaxIter < 0 {
		errs = append(errs, fmt.Errorf("max_iter: %d is negative", c.MaxIter))
	}
	if c.Tol < 0 || math.IsNaN(c.Tol) {
		errs = append(errs, fmt.Errorf("tol: %v is negative", c.Tol))
	}
	if c.Workers < 0 {
		errs = append(errs, fmt.Errorf("workers: %d is negative", c.Workers))
	}
	return errors.Join(errs...)
}

// Report describes a training run.
type Report struct {
	Rows        int64 `json:"rows"`
	SkippedRows int64 `json:"skipped_rows"` // null or NaN label
	Columns     int   `json:"columns"`
	Passes      int   `json:"passes"` // over the data, including the preprocessor's
	Iterations  int   `json:"iterations"`
	// Objective is the minimised objective (for logistic regression at
	// the coefficients before Newton's last, sub-tolerance step).
	Objective float64       `json:"objective"`
	Converged bool          `json:"converged"`
	Duration  time.Duration `json:"duration_ns"`
}

// Train fits the preprocessor and the model on data: L2-regularised
// logistic regression for a classification target, ridge regression for a
// regression target.
func Train(ctx context.Context, data Batches, cfg Config) (*Model, Report, error) {
	start := time.Now()
	var rep Report
	if err := cfg.Validate(); err != nil {
		return nil, rep, fmt.Errorf("invalid trainer config: %w", err)
	}
	cfg = cfg.withDefaults()
	pp, err := FitPreprocessor(ctx, data, cfg.Target, cfg.Preprocess)
	if err != nil {
		return nil, rep, fmt.Errorf("fit preprocessor: %w", err)
	}
	rep.Passes = 1
	m := &Model{Format: FormatV1, Target: cfg.Target, Preprocessor: *pp}
	enc := newEncoder(pp)
	rep.Columns = enc.ncols
	t := &trainer{cfg: cfg, data: data, enc: enc, d: enc.ncols + 1}
	var beta []float64
	if cfg.Target.Task == Classification {
		m.Kind, m.C = KindLogistic, cfg.C
		beta, err = t.logistic(ctx, &rep)
	} else {
		m.Kind, m.Alpha = KindRidge, cfg.Alpha
		beta, err = t.ridge(ctx, &rep)
	}
	rep.Duration = time.Since(start)
	if err != nil {
		return nil, rep, err
	}
	m.Coef = beta[:enc.ncols]
	m.Intercept = beta[enc.ncols]
	m.Columns = pp.Columns()
	return m, rep, nil
}

type trainer struct {
	cfg  Config
	data Batches
	enc  *encoder
	d    int // columns + intercept
}

// accumulator holds one worker's sums for one pass.
type accumulator struct {
	rows, skipped int64
	pos           int64
	loss          float64
	grad          []float64 // d
	hess          []float64 // d×d, upper triangle
	x             []float64 // scratch block
	y             []float64
}

func (t *trainer) newAccumulators() []*accumulator {
	accs := make([]*accumulator, t.cfg.Workers)
	for i := range accs {
		accs[i] = &accumulator{grad: make([]float64, t.d), hess: make([]float64, t.d*t.d)}
	}
	return accs
}

// sum adds the accumulators in worker order into the first one.
func sum(accs []*accumulator) *accumulator {
	a := accs[0]
	for _, b := range accs[1:] {
		a.rows += b.rows
		a.skipped += b.skipped
		a.pos += b.pos
		a.loss += b.loss
		for i := range a.grad {
			a.grad[i] += b.grad[i]
		}
		for i := range a.hess {
			a.hess[i] += b.hess[i]
		}
	}
	return a
}

// block encodes rec into the accumulator's scratch block and reads its
// labels; it returns the number of rows.
func (t *trainer) block(a *accumulator, rec arrow.Record) (int, error) {
	c, err := featureColumns(rec)
	if err != nil {
		return 0, err
	}
	if a.y, err = t.cfg.Target.Labels(rec, a.y); err != nil {
		return 0, err
	}
	n := len(a.y)
	if cap(a.x) < n*t.d {
		a.x = make([]float64, n*t.d)
	}
	a.x = a.x[:n*t.d]
	t.enc.encode(c, 0, n, a.x, t.d)
	for i := range n {
		a.x[i*t.d+t.d-1] = 1
	}
	return n, nil
}

// pass runs fn on every batch of the data, spreading batches round-robin
// over the workers; fn(a, rec) is only ever called for one record at a
// time per accumulator.
func (t *trainer) pass(ctx context.Context, accs []*accumulator, fn func(a *accumulator, rec arrow.Record) error) error {
	if len(accs) == 1 {
		for rec, err := range t.data(ctx) {
			if err != nil {
				return fmt.Errorf("read training batch: %w", err)
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(accs[0], rec); err != nil {
				return err
			}
		}
		return nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	chans := make([]chan arrow.Record, len(accs))
	var wg sync.WaitGroup
	for w := range accs {
		chans[w] = make(chan arrow.Record, 2)
		wg.Go(func() {
			for rec := range chans[w] {
				if ctx.Err() == nil {
					if err := fn(accs[w], rec); err != nil {
						cancel(err)
					}
				}
				rec.Release()
			}
		})
	}
	var readErr error
	k := 0
	for rec, err := range t.data(ctx) {
		if err != nil {
			readErr = fmt.Errorf("read training batch: %w", err)
			break
		}
		rec.Retain()
		select {
		case chans[k%len(chans)] <- rec:
			k++
		case <-ctx.Done():
			rec.Release()
		}
		if ctx.Err() != nil {
			break
		}
	}
	for _, ch := range chans {
		close(ch)
	}
	wg.Wait()
	if readErr != nil {
		return readErr
	}
	return context.Cause(ctx)
}

// logistic runs Newton's method with Armijo backtracking.
func (t *trainer) logistic(ctx context.Context, rep *Report) ([]float64, error) {
	d, lambda := t.d, 1/t.cfg.C
	beta := make([]float64, d)
	accs := t.newAccumulators()
	// evaluate computes objective, gradient and Hessian at b.
	evaluate := func(b []float64) (*accumulator, error) {
		for _, a := range accs {
			a.rows, a.skipped, a.pos, a.loss = 0, 0, 0, 0
			clear(a.grad)
			clear(a.hess)
		}
		err := t.pass(ctx, accs, func(a *accumulator, rec arrow.Record) error {
			n, err := t.block(a, rec)
			if err != nil {
				return err
			}
			logisticBlock(a, a.x[:n*d], a.y, b, d)
			return nil
		})
		rep.Passes++
		if err != nil {
			return nil, err
		}
		s := sum(accs)
		for j := range d - 1 {
			s.loss += 0.5 * lambda * b[j] * b[j]
			s.grad[j] += lambda * b[j]
			s.hess[j*d+j] += lambda
		}
		return s, nil
	}
	s, err := evaluate(beta)
	if err != nil {
		return nil, err
	}
	rep.Rows, rep.SkippedRows = s.rows, s.skipped
	if s.rows == 0 {
		return nil, ErrNoRows
	}
	if s.pos == 0 || s.pos == s.rows {
		return nil, ErrSingleClass
	}
	step := make([]float64, d)
	trial := make([]float64, d)
	var prevStep float64
	for rep.Iterations < t.cfg.MaxIter {
		rep.Iterations++
		if err := cholesky(s.hess, d); err != nil {
			return nil, fmt.Errorf("newton iteration %d: %w", rep.Iterations, err)
		}
		for j := range d {
			step[j] = -s.grad[j]
		}
		choleskySolve(s.hess, d, step)
		var slope, maxStep, maxBeta float64
		for j := range d {
			slope += s.grad[j] * step[j]
			maxStep = max(maxStep, math.Abs(step[j]))
			maxBeta = max(maxBeta, math.Abs(beta[j]))
		}
		// Stop when the step is below the tolerance, or when it stopped
		// shrinking at a size only rounding of the sums can explain (the
		// floor grows with the rows; quadratic convergence would halve it).
		stalled := prevStep > 0 && maxStep > prevStep/2 && maxStep <= 1e-6*(1+maxBeta)
		if maxStep <= t.cfg.Tol*(1+maxBeta) || stalled {
			// Take the remaining step without another pass: Newton's last
			// step is the most accurate.
			for j := range d {
				beta[j] += step[j]
			}
			rep.Objective, rep.Converged = s.loss, true
			return beta, nil
		}
		prevStep = maxStep
		// Near the optimum the predicted decrease −slope falls to the
		// rounding noise of the objective, where an Armijo test rejects
		// good steps at random; there the full Newton step is taken.
		quadratic := -slope <= 1e-10*(1+math.Abs(s.loss))
		f0 := s.loss
		for stepLen := 1.0; ; stepLen /= 2 {
			for j := range d {
				trial[j] = beta[j] + stepLen*step[j]
			}
			if s, err = evaluate(trial); err != nil {
				return nil, err
			}
			if quadratic || s.loss <= f0+1e-4*stepLen*slope || stepLen < 1e-10 {
				break
			}
		}
		copy(beta, trial)
		rep.Objective = s.loss
	}
	return nil, fmt.Errorf("logistic regression after %d iterations: %w", rep.Iterations, ErrNotConverged)
}

// logisticBlock adds one block's log-loss, gradient and Hessian to a.
func logisticBlock(a *accumulator, x, y, beta []float64, d int) {
	grad, hess := a.grad[:d], a.hess[:d*d]
	for i, yi := range y {
		if math.IsNaN(yi) {
			a.skipped++
			continue
		}
		a.rows++
		if yi == 1 {
			a.pos++
		}
		xi := x[i*d : i*d+d]
		var z float64
		for j, v := range xi {
			z += v * beta[j]
		}
		e := math.Exp(-math.Abs(z))
		var p float64
		if z >= 0 {
			p = 1 / (1 + e)
		} else {
			p = e / (1 + e)
		}
		a.loss += max(z, 0) + math.Log1p(e) - yi*z
		r, w := p-yi, p*(1-p)
		for j, v := range xi {
			if v == 0 {
				continue
			}
			grad[j] += r * v
			wv := w * v
			row := hess[j*d+j : j*d+d]
			xs := xi[j:]
			for k := range row {
				row[k] += wv * xs[k]
			}
		}
	}
}

// ridge solves the penalised normal equations in one pass.
func (t *trainer) ridge(ctx context.Context, rep *Report) ([]float64, error) {
	d := t.d
	accs := t.newAccumulators()
	err := t.pass(ctx, accs, func(a *accumulator, rec arrow.Record) error {
		n, err := t.block(a, rec)
		if err != nil {
			return err
		}
		x := a.x[:n*d]
		for i, yi := range a.y {
			if math.IsNaN(yi) {
				a.skipped++
				continue
			}
			a.rows++
			a.loss += yi * yi
			xi := x[i*d : i*d+d]
			for j, v := range xi {
				if v == 0 {
					continue
				}
				a.grad[j] += yi * v
				row := a.hess[j*d+j : j*d+d]
				xs := xi[j:]
				for k := range row {
					row[k] += v * xs[k]
				}
			}
		}
		return nil
	})
	rep.Passes++
	if err != nil {
		return nil, err
	}
	s := sum(accs)
	rep.Rows, rep.SkippedRows, rep.Iterations = s.rows, s.skipped, 1
	if s.rows == 0 {
		return nil, ErrNoRows
	}
	for j := range d - 1 {
		s.hess[j*d+j] += t.cfg.Alpha
	}
	a := slices.Clone(s.hess) // A = XᵀX + αI', upper triangle
	if err := cholesky(s.hess, d); err != nil {
		return nil, fmt.Errorf("ridge normal equations: %w", err)
	}
	beta := slices.Clone(s.grad)
	choleskySolve(s.hess, d, beta)
	// Σ(y − Xβ)² + α‖w‖² = Σy² − 2βᵀXᵀy + βᵀAβ.
	obj := s.loss
	for j := range d {
		obj -= 2 * beta[j] * s.grad[j]
		obj += beta[j] * beta[j] * a[j*d+j]
		for k := j + 1; k < d; k++ {
			obj += 2 * beta[j] * beta[k] * a[j*d+k]
		}
	}
	rep.Objective, rep.Converged = obj, true
	return beta, nil
}

// Package cbpe estimates a classifier's performance before its labels
// arrive: confidence-based performance estimation (CBPE) as NannyML 0.13.1
// does it (nannyml/performance_estimation/confidence_based, nannyml/calibration.py,
// nannyml/sampling_error/binary_classification.py).
//
// A Reference is fitted once on the labelled reference rows (score, truth,
// predicted class): the isotonic calibration of the scores, used only when
// it lowers the expected calibration error (NeedsCalibration), and the
// reference's sampling-error components. Per window the caller (package
// perf, in ClickHouse) sums the expected confusion matrix over the window's
// rows from the calibrated probabilities p — TP = Σ p·ŷ, FP = Σ (1−p)·ŷ,
// FN = Σ p·(1−ŷ), TN = Σ (1−p)·(1−ŷ) — and the estimated ROC AUC; Estimate
// turns them into the estimated accuracy, precision, recall, F1 and ROC AUC,
// each with its sampling error and the band ±3 sampling errors clipped to
// [0, 1] (NannyML's SAMPLING_ERROR_RANGE).
//
// Where this differs from NannyML, on purpose:
//
//   - NeedsCalibration's cross-validation: NannyML draws 10
//     StratifiedShuffleSplit splits (10 % test, random_state 42); here the
//     rows, ordered by (score, truth), are dealt per class into 10 folds
//     (row i of a class into fold i mod 10), so every row is tested once and
//     the decision is reproducible without numpy's generator. The rest
//     (isotonic fit on the training part, ECE over 10 equal-count bins of
//     the pooled test predictions, calibrate when the ECE falls) is
//     NannyML's.
//   - The estimated ROC AUC sorts by the uncalibrated score as NannyML does,
//     but counts rows with equal scores as one step (ties count ½), where
//     NannyML's order of tied rows is numpy's argsort's; NannyML also rounds
//     the cumulative sums to 5 decimals. With distinct scores the two agree
//     to about 1e-9.
//   - Tied reference scores: NannyML's ROC AUC sampling error ranks rows by
//     numpy's (unstable) argsort, so its value with ties is arbitrary; here
//     tied rows rank negatives first. The golden cases have distinct scores.
//
// The package is pure: no ClickHouse, Kafka or Prometheus.
package cbpe

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// ErrInsufficient reports a reference CBPE cannot be fitted on: fewer than
// MinReference labelled rows with a score, or a single class.
var ErrInsufficient = errors.New("reference too small for performance estimation")

// MinReference is the fewest labelled reference rows Fit accepts: NannyML's
// ECE needs at least 2 bins of 2 rows in the pooled test predictions, and
// the folds need rows of both classes.
const MinReference = 20

// Band is how many sampling errors the confidence band spans on each side
// of the estimate (NannyML's SAMPLING_ERROR_RANGE).
const Band = 3

// Folds and Bins are NeedsCalibration's split count and ECE bin count
// (NannyML's defaults).
const (
	Folds = 10
	Bins  = 10
)

// Metric names, without the "estimated_" prefix the caller adds: the same
// names as the realized metrics of package perf.
const (
	Accuracy  = "accuracy"
	Precision = "precision"
	Recall    = "recall"
	F1        = "f1"
	ROCAUC    = "roc_auc"
)

// Metrics lists the estimated metrics in the order Estimate returns them.
var Metrics = []string{Accuracy, Precision, Recall, F1, ROCAUC}

// Row is one labelled reference row.
type Row struct {
	Score     float64 // the model's score for the positive class
	Positive  bool    // the truth
	Predicted bool    // the predicted class is the positive one
}

// Reference is what CBPE keeps from the labelled reference.
type Reference struct {
	// Calibrator maps a score to the probability used in the expected
	// confusion matrix; the identity when Calibrated is false.
	Calibrator Isotonic
	Calibrated bool
	// Rows is the number of reference rows fitted on.
	Rows int
	// components: per metric the reference's observation-level standard
	// deviation and the fraction of rows the metric's denominator counts
	// (NannyML's sampling_error_components).
	std, fraction map[string]float64
}

// Fit fits CBPE on the labelled reference rows.
func Fit(rows []Row) (Reference, error) {
	var pos int
	for _, r := range rows {
		if math.IsNaN(r.Score) {
			return Reference{}, fmt.Errorf("reference score is NaN: %w", ErrInsufficient)
		}
		if r.Positive {
			pos++
		}
	}
	if len(rows) < MinReference || pos == 0 || pos == len(rows) {
		return Reference{}, fmt.Errorf("%d labelled reference rows, %d positive (need %d of both classes): %w", len(rows), pos, MinReference, ErrInsufficient)
	}
	sorted := append([]Row(nil), rows...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].Score != sorted[j].Score {
			return sorted[i].Score < sorted[j].Score
		}
		return !sorted[i].Positive && sorted[j].Positive
	})
	ref := Reference{Rows: len(rows), std: map[string]float64{}, fraction: map[string]float64{}}
	ref.Calibrated = NeedsCalibration(sorted)
	if ref.Calibrated {
		ref.Calibrator = FitIsotonic(scores(sorted), truths(sorted))
	}
	ref.components(sorted)
	return ref, nil
}

// Calibrate maps a score to its calibrated probability.
func (r Reference) Calibrate(s float64) float64 {
	if !r.Calibrated {
		return s
	}
	return r.Calibrator.Predict(s)
}

func scores(rows []Row) []float64 {
	out := make([]float64, len(rows))
	for i, r := range rows {
		out[i] = r.Score
	}
	return out
}

func truths(rows []Row) []float64 {
	out := make([]float64, len(rows))
	for i, r := range rows {
		if r.Positive {
			out[i] = 1
		}
	}
	return out
}

// NeedsCalibration reports whether isotonic calibration lowers the expected
// calibration error of rows' scores (sorted by score, then truth), as
// nannyml.calibration.needs_calibration decides it, with the folds
// described in the package doc. Scores that already separate the classes
// (ROC AUC > 0.999) or a single class need none.
func NeedsCalibration(rows []Row) bool {
	if auc := rocAUC(rows); !(auc <= 0.999) {
		return false
	}
	fold := make([]int, len(rows))
	var seen [2]int
	for i, r := range rows {
		c := 0
		if r.Positive {
			c = 1
		}
		fold[i] = seen[c] % Folds
		seen[c]++
	}
	var testY, raw, cal []float64
	for k := range Folds {
		var trX, trY []float64
		var te []Row
		for i, r := range rows {
			if fold[i] == k {
				te = append(te, r)
				continue
			}
			trX = append(trX, r.Score)
			trY = append(trY, truths(rows[i : i+1])[0])
		}
		if len(te) == 0 || len(trX) == 0 {
			continue
		}
		iso := FitIsotonic(trX, trY)
		for _, r := range te {
			testY = append(testY, truths([]Row{r})[0])
			raw = append(raw, r.Score)
			cal = append(cal, iso.Predict(r.Score))
		}
	}
	edges, err := binEdges(len(raw), Bins)
	if err != nil {
		return false
	}
	return ece(testY, raw, edges) > ece(testY, cal, edges)
}

// binEdges is nannyml's _get_bin_index_edges: bins of n/count rows, the
// last one taking the remainder.
func binEdges(n, count int) ([][2]int, error) {
	if n <= 2*count {
		count = n / 2
		if count < 2 {
			return nil, fmt.Errorf("%d rows cannot make 2 bins: %w", n, ErrInsufficient)
		}
	}
	width := n / count
	var edges []int
	for e := 0; e <= n; e += width {
		edges = append(edges, e)
	}
	edges[len(edges)-1] = n
	out := make([][2]int, 0, len(edges)-1)
	for i := 1; i < len(edges); i++ {
		out = append(out, [2]int{edges[i-1], edges[i]})
	}
	return out, nil
}

// ece is nannyml's _calculate_expected_calibration_error: rows sorted by
// probability, Σ_bins weight·|mean p − mean y|.
func ece(y, p []float64, edges [][2]int) float64 {
	idx := make([]int, len(p))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return p[idx[a]] < p[idx[b]] })
	var sum float64
	for _, e := range edges {
		var mp, my float64
		for _, i := range idx[e[0]:e[1]] {
			mp += p[i]
			my += y[i]
		}
		n := float64(e[1] - e[0])
		sum += n / float64(len(p)) * math.Abs(mp/n-my/n)
	}
	return sum
}

// rocAUC is the realized ROC AUC of rows sorted by score (ties ½).
func rocAUC(rows []Row) float64 {
	var pos, neg, u, negBelow float64
	for i := 0; i < len(rows); {
		j := i
		var p, n float64
		for ; j < len(rows) && rows[j].Score == rows[i].Score; j++ {
			if rows[j].Positive {
				p++
			} else {
				n++
			}
		}
		u += p * (negBelow + n/2)
		negBelow += n
		pos += p
		neg += n
		i = j
	}
	return u / (pos * neg)
}

// components computes NannyML's sampling-error components from rows sorted
// by score (nannyml/sampling_error/binary_classification.py).
func (r *Reference) components(rows []Row) {
	n := float64(len(rows))
	var correct, tp, fp, fn, predPos, pos float64
	for _, x := range rows {
		switch {
		case x.Predicted && x.Positive:
			tp++
		case x.Predicted:
			fp++
		case x.Positive:
			fn++
		}
		if x.Predicted == x.Positive {
			correct++
		}
		if x.Predicted {
			predPos++
		}
		if x.Positive {
			pos++
		}
	}
	// accuracy: std of the 0/1 correct table over √n.
	r.std[Accuracy], r.fraction[Accuracy] = bernoulliStd(correct, n), 1
	// precision: std over the predicted positives (TP 1, FP 0), fraction of
	// predicted positives.
	r.std[Precision], r.fraction[Precision] = bernoulliStd(tp, tp+fp), predPos/n
	// recall: std over the positives (TP 1, FN 0), fraction of positives.
	r.std[Recall], r.fraction[Recall] = bernoulliStd(tp, tp+fn), pos/n
	// f1: TP as 1, FP and FN as 0, scaled by len / (0.5·(FN+FP) + TP).
	if m := tp + fp + fn; m > 0 {
		r.std[F1] = bernoulliStd(tp, m) * m / (0.5*(fn+fp) + tp)
		r.fraction[F1] = m / n
	} else {
		r.std[F1], r.fraction[F1] = math.NaN(), 0
	}
	r.std[ROCAUC], r.fraction[ROCAUC] = aucComponents(rows)
}

// bernoulliStd is the population standard deviation of k ones among m
// values that are otherwise zero (numpy's np.std); NaN for m = 0.
func bernoulliStd(k, m float64) float64 {
	if m == 0 {
		return math.NaN()
	}
	q := k / m
	return math.Sqrt(q * (1 - q))
}

// aucComponents is auroc_sampling_error_components: with the minority class
// as positive, over rows sorted by score, the ranks r_i of the positives
// (0-based, rank 0 dropped as NannyML's np.unique(...)[1:] drops it) give
// ser_i = (r_i − i) / n_neg, the number of negatives below each positive as
// a share; the components are np.std(ser) and n_pos / n.
func aucComponents(rows []Row) (float64, float64) {
	var pos float64
	for _, x := range rows {
		if x.Positive {
			pos++
		}
	}
	flip := pos/float64(len(rows)) > 0.5
	order := rows
	if flip {
		// 1 − score reverses the order; NannyML's argsort of the flipped
		// scores puts ties in its own order, here they stay reversed.
		order = make([]Row, len(rows))
		for i, x := range rows {
			order[len(rows)-1-i] = Row{Score: 1 - x.Score, Positive: !x.Positive, Predicted: x.Predicted}
		}
	}
	var ser []float64
	var nPos float64
	for rank, x := range order {
		if !x.Positive {
			continue
		}
		nPos++
		if rank == 0 {
			continue
		}
		ser = append(ser, float64(rank-len(ser)))
	}
	nNeg := float64(len(rows)) - nPos
	if len(ser) == 0 || nNeg == 0 {
		return math.NaN(), 0
	}
	var mean float64
	for i := range ser {
		ser[i] /= nNeg
		mean += ser[i]
	}
	mean /= float64(len(ser))
	var v float64
	for _, s := range ser {
		v += (s - mean) * (s - mean)
	}
	return math.Sqrt(v / float64(len(ser))), nPos / float64(len(rows))
}

// Sums are a window's expected confusion matrix from the calibrated
// probabilities, over its rows with a score and a predicted class, and the
// pieces of its estimated ROC AUC.
type Sums struct {
	// N counts the rows.
	N float64
	// TP, FP, FN, TN are the expected confusion-matrix cells.
	TP, FP, FN, TN float64
	// AUCNum is Σ over distinct scores s, highest first, of
	// Σ_{score=s}(1−p) · (Σ_{score>s} p + ½ Σ_{score=s} p); the estimated
	// ROC AUC is AUCNum / (ΣP·ΣN) with ΣP = TP+FN and ΣN = FP+TN.
	AUCNum float64
}

// Estimate is one estimated metric of a window.
type Estimate struct {
	Name string
	// Value is the estimate; NaN when it is undefined (no rows, or ROC AUC
	// with no expected positive or negative).
	Value float64
	// SamplingError is the reference's standard deviation over
	// √(N·fraction); Lower and Upper are Value ∓ Band·SamplingError
	// clipped to [0, 1].
	SamplingError, Lower, Upper float64
}

// Estimate returns the estimated metrics of a window, in Metrics order.
func (r Reference) Estimate(s Sums) []Estimate {
	ratio := func(a, b float64) float64 {
		if b == 0 {
			return 0 // NannyML's estimate_precision/recall/f1 for a 0 denominator
		}
		return a / b
	}
	vals := map[string]float64{
		Accuracy:  math.NaN(),
		Precision: ratio(s.TP, s.TP+s.FP),
		Recall:    ratio(s.TP, s.TP+s.FN),
		F1:        ratio(s.TP, s.TP+0.5*(s.FP+s.FN)),
		ROCAUC:    math.NaN(),
	}
	if s.N > 0 {
		vals[Accuracy] = (s.TP + s.TN) / s.N
		if p, n := s.TP+s.FN, s.FP+s.TN; p > 0 && n > 0 {
			vals[ROCAUC] = s.AUCNum / (p * n)
		}
	} else {
		vals[Precision], vals[Recall], vals[F1] = math.NaN(), math.NaN(), math.NaN()
	}
	out := make([]Estimate, 0, len(Metrics))
	for _, m := range Metrics {
		e := Estimate{Name: m, Value: vals[m], SamplingError: r.std[m] / math.Sqrt(s.N*r.fraction[m])}
		e.Lower = math.Max(0, e.Value-Band*e.SamplingError)
		e.Upper = math.Min(1, e.Value+Band*e.SamplingError)
		if math.IsNaN(e.Value) || math.IsNaN(e.SamplingError) {
			e.Lower, e.Upper = math.NaN(), math.NaN()
		}
		out = append(out, e)
	}
	return out
}

// SumsOf computes Sums from rows in Go: what package perf computes in
// ClickHouse, for tests and small callers.
func (r Reference) SumsOf(rows []Row) Sums {
	sorted := append([]Row(nil), rows...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Score > sorted[j].Score })
	var s Sums
	var above float64
	for i := 0; i < len(sorted); {
		var sp, sn float64
		j := i
		for ; j < len(sorted) && sorted[j].Score == sorted[i].Score; j++ {
			p := r.Calibrate(sorted[j].Score)
			sp += p
			sn += 1 - p
			if sorted[j].Predicted {
				s.TP += p
				s.FP += 1 - p
			} else {
				s.FN += p
				s.TN += 1 - p
			}
			s.N++
		}
		s.AUCNum += sn * (above + sp/2)
		above += sp
		i = j
	}
	return s
}

package cbpe

import (
	"fmt"
	"math"
	"sort"
)

// Multiclass CBPE, one-vs-rest, as NannyML 0.13.1's CBPE for
// CLASSIFICATION_MULTICLASS: each class's probability is calibrated on its
// own (isotonic when NeedsCalibration says so for that class against the
// rest), the calibrated probabilities of a row are renormalised to sum to 1
// (uniform when they sum to 0), and the estimates are NannyML's:
// accuracy is the mean calibrated probability of the predicted class;
// precision, recall, F1 and ROC AUC are the macro averages of each class's
// binary estimate (ROC AUC sorting by the class's uncalibrated
// probability). Sampling errors follow nannyml/sampling_error/
// multiclass_classification.py: accuracy std/√n of the 0/1 correct table;
// the others √(Σ_k var_k / (n·fraction_k)) / K, ×1.2 for ROC AUC.

// MultiRow is one row of a multiclass model.
type MultiRow struct {
	// Probs are the class probabilities (prediction_probabilities); a class
	// without one counts as 0.
	Probs map[string]float64
	// Truth is the true class (reference rows only), Predicted the
	// predicted one.
	Truth, Predicted string
}

// MultiReference is what multiclass CBPE keeps from the labelled reference.
type MultiReference struct {
	// Classes are the reference's probability keys, sorted (NannyML's
	// sorted(y_pred_proba.keys())).
	Classes []string
	// Calibrators[k] calibrates class k's probability when Calibrated[k].
	Calibrators []Isotonic
	Calibrated  []bool
	Rows        int
	accStd      float64
	// per metric, per class: the variance and the fraction.
	variance, fraction map[string][]float64
}

// FitMulticlass fits multiclass CBPE on the labelled reference rows.
func FitMulticlass(rows []MultiRow) (MultiReference, error) {
	set := map[string]bool{}
	for _, r := range rows {
		for k, p := range r.Probs {
			if math.IsNaN(p) {
				return MultiReference{}, fmt.Errorf("reference probability of %q is NaN: %w", k, ErrInsufficient)
			}
			set[k] = true
		}
	}
	ref := MultiReference{Rows: len(rows), variance: map[string][]float64{}, fraction: map[string][]float64{}}
	for k := range set {
		ref.Classes = append(ref.Classes, k)
	}
	sort.Strings(ref.Classes)
	if len(rows) < MinReference || len(ref.Classes) < 3 {
		return MultiReference{}, fmt.Errorf("%d labelled reference rows with %d classes (need %d rows, 3 classes): %w", len(rows), len(ref.Classes), MinReference, ErrInsufficient)
	}
	n := float64(len(rows))
	var correct float64
	for _, r := range rows {
		if r.Truth == r.Predicted {
			correct++
		}
	}
	ref.accStd = bernoulliStd(correct, n)
	for _, k := range ref.Classes {
		bin := make([]Row, len(rows))
		var tp, fp, fn, predPos, pos float64
		for i, r := range rows {
			bin[i] = Row{Score: r.Probs[k], Positive: r.Truth == k, Predicted: r.Predicted == k}
			switch x := bin[i]; {
			case x.Predicted && x.Positive:
				tp++
			case x.Predicted:
				fp++
			case x.Positive:
				fn++
			}
			if bin[i].Predicted {
				predPos++
			}
			if bin[i].Positive {
				pos++
			}
		}
		sort.SliceStable(bin, func(i, j int) bool {
			if bin[i].Score != bin[j].Score {
				return bin[i].Score < bin[j].Score
			}
			return !bin[i].Positive && bin[j].Positive
		})
		cal := pos > 0 && pos < n && NeedsCalibration(bin)
		ref.Calibrated = append(ref.Calibrated, cal)
		var iso Isotonic
		if cal {
			iso = FitIsotonic(scores(bin), truths(bin))
		}
		ref.Calibrators = append(ref.Calibrators, iso)
		sq := func(x float64) float64 { return x * x }
		ref.addComponent(Precision, sq(bernoulliStd(tp, tp+fp)), predPos/n)
		ref.addComponent(Recall, sq(bernoulliStd(tp, tp+fn)), pos/n)
		ref.addComponent(F1, sq(bernoulliStd(tp, tp+fp+fn)), (tp+fp+fn)/n)
		std, frac := aucComponents(bin)
		ref.addComponent(ROCAUC, std*std, frac)
	}
	return ref, nil
}

func (r *MultiReference) addComponent(metric string, variance, fraction float64) {
	r.variance[metric] = append(r.variance[metric], variance)
	r.fraction[metric] = append(r.fraction[metric], fraction)
}

// Calibrate returns a row's calibrated, renormalised probabilities in
// Classes order.
func (r MultiReference) Calibrate(probs map[string]float64) []float64 {
	out := make([]float64, len(r.Classes))
	var sum float64
	for i, k := range r.Classes {
		out[i] = probs[k]
		if r.Calibrated[i] {
			out[i] = r.Calibrators[i].Predict(out[i])
		}
		sum += out[i]
	}
	for i := range out {
		if sum == 0 {
			out[i] = 1 / float64(len(out))
		} else {
			out[i] /= sum
		}
	}
	return out
}

// MultiSums are a window's one-vs-rest sums: per class (Classes order) the
// expected TP, FP, FN and the ROC AUC numerator over the class's
// uncalibrated probability (as Sums.AUCNum), and Correct = Σ p(predicted
// class).
type MultiSums struct {
	N, Correct     float64
	TP, FP, FN, PN []float64 // PN: Σ p_k, the expected positives of class k
	AUCNum         []float64
}

// Estimate returns the estimated metrics of a window, in Metrics order.
func (r MultiReference) Estimate(s MultiSums) []Estimate {
	k := float64(len(r.Classes))
	vals := map[string]float64{}
	if s.N == 0 {
		for _, m := range Metrics {
			vals[m] = math.NaN()
		}
	} else {
		vals[Accuracy] = s.Correct / s.N
		ratio := func(a, b float64) float64 {
			if b == 0 {
				return 0
			}
			return a / b
		}
		for i := range r.Classes {
			vals[Precision] += ratio(s.TP[i], s.TP[i]+s.FP[i]) / k
			vals[Recall] += ratio(s.TP[i], s.TP[i]+s.FN[i]) / k
			vals[F1] += ratio(s.TP[i], s.TP[i]+0.5*(s.FP[i]+s.FN[i])) / k
			pos, neg := s.PN[i], s.N-s.PN[i]
			auc := math.NaN()
			if pos > 0 && neg > 0 {
				auc = s.AUCNum[i] / (pos * neg)
			}
			vals[ROCAUC] += auc / k
		}
	}
	out := make([]Estimate, 0, len(Metrics))
	for _, m := range Metrics {
		var se float64
		if m == Accuracy {
			se = r.accStd / math.Sqrt(s.N)
		} else {
			var v float64
			for i := range r.Classes {
				v += r.variance[m][i] / (s.N * r.fraction[m][i])
			}
			se = math.Sqrt(v) / k
			if m == ROCAUC {
				se *= 1.2
			}
		}
		e := Estimate{Name: m, Value: vals[m], SamplingError: se}
		e.Lower = math.Max(0, e.Value-Band*se)
		e.Upper = math.Min(1, e.Value+Band*se)
		if math.IsNaN(e.Value) || math.IsNaN(se) {
			e.Lower, e.Upper = math.NaN(), math.NaN()
		}
		out = append(out, e)
	}
	return out
}

// SumsOf computes MultiSums from rows in Go: what package perf computes in
// ClickHouse.
func (r MultiReference) SumsOf(rows []MultiRow) MultiSums {
	nc := len(r.Classes)
	s := MultiSums{TP: make([]float64, nc), FP: make([]float64, nc), FN: make([]float64, nc), PN: make([]float64, nc), AUCNum: make([]float64, nc)}
	cal := make([][]float64, len(rows))
	for i, row := range rows {
		cal[i] = r.Calibrate(row.Probs)
		s.N++
		for k, c := range r.Classes {
			p := cal[i][k]
			s.PN[k] += p
			if row.Predicted == c {
				s.TP[k] += p
				s.FP[k] += 1 - p
				s.Correct += p
			} else {
				s.FN[k] += p
			}
		}
	}
	idx := make([]int, len(rows))
	for k, c := range r.Classes {
		for i := range idx {
			idx[i] = i
		}
		raw := func(i int) float64 { return rows[i].Probs[c] }
		sort.SliceStable(idx, func(a, b int) bool { return raw(idx[a]) > raw(idx[b]) })
		var above float64
		for i := 0; i < len(idx); {
			var sp, sn float64
			j := i
			for ; j < len(idx) && raw(idx[j]) == raw(idx[i]); j++ {
				sp += cal[idx[j]][k]
				sn += 1 - cal[idx[j]][k]
			}
			s.AUCNum[k] += sn * (above + sp/2)
			above += sp
			i = j
		}
	}
	return s
}

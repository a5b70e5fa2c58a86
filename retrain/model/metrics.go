package model

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Metric names an evaluation metric. Each is defined like the scikit-learn
// function named in its comment, on labels y (0 or 1 for classification
// metrics) and predictions p (probabilities of the positive class, or
// values).
type Metric string

// Metrics.
const (
	AUC       Metric = "roc_auc"   // roc_auc_score; tied scores count one half
	LogLoss   Metric = "log_loss"  // log_loss; p clipped to [ε, 1−ε], ε = 2⁻⁵²
	Brier     Metric = "brier"     // brier_score_loss
	Accuracy  Metric = "accuracy"  // accuracy_score of p ≥ 0.5
	Precision Metric = "precision" // precision_score of p ≥ 0.5; 0 without predicted positives
	Recall    Metric = "recall"    // recall_score of p ≥ 0.5; 0 without positives
	F1        Metric = "f1"        // f1_score of p ≥ 0.5; 0 when precision and recall are 0
	RMSE      Metric = "rmse"      // root_mean_squared_error
	MAE       Metric = "mae"       // mean_absolute_error
	R2        Metric = "r2"        // r2_score (1 or 0 when y is constant, like force_finite)
)

// Threshold is the probability at and above which a prediction counts as
// positive for accuracy, precision, recall and F1.
const Threshold = 0.5

// Metrics lists every metric.
var Metrics = []Metric{AUC, LogLoss, Brier, Accuracy, Precision, Recall, F1, RMSE, MAE, R2}

// ErrUndefined is returned when a metric is not defined on the data, for
// example ROC AUC when y holds one class only.
var ErrUndefined = errors.New("metric undefined")

// ErrInput is returned (wrapped) for unusable inputs: lengths that differ,
// no rows, NaN, a classification label other than 0 or 1, or an unknown
// metric.
var ErrInput = errors.New("invalid metric input")

// HigherIsBetter says in which direction the metric improves.
func (m Metric) HigherIsBetter() bool {
	switch m {
	case AUC, Accuracy, Precision, Recall, F1, R2:
		return true
	}
	return false
}

// Classification says whether the metric needs 0/1 labels.
func (m Metric) Classification() bool {
	switch m {
	case RMSE, MAE, R2:
		return false
	}
	return true
}

func (m Metric) known() bool { return slices.Contains(Metrics, m) }

// Compute returns the metric of predictions p against labels y.
func (m Metric) Compute(y, p []float64) (float64, error) {
	pr, err := prepare(m, y, p)
	if err != nil {
		return 0, err
	}
	return pr.eval(nil)
}

// prepared holds checked inputs, and for ROC AUC the rows ordered by
// descending score, so weighted evaluations (bootstrap resamples) take
// linear time.
type prepared struct {
	m     Metric
	y, p  []float64
	order []int32
}

func prepare(m Metric, y, p []float64) (*prepared, error) {
	if !m.known() {
		return nil, fmt.Errorf("%w: unknown metric %q", ErrInput, m)
	}
	if len(y) != len(p) {
		return nil, fmt.Errorf("%w: %d labels, %d predictions", ErrInput, len(y), len(p))
	}
	if len(y) == 0 {
		return nil, fmt.Errorf("%w: no rows", ErrInput)
	}
	if len(y) > math.MaxInt32 {
		return nil, fmt.Errorf("%w: %d rows", ErrInput, len(y))
	}
	for i := range y {
		if math.IsNaN(y[i]) || math.IsNaN(p[i]) {
			return nil, fmt.Errorf("%w: NaN at row %d", ErrInput, i)
		}
		if m.Classification() && y[i] != 0 && y[i] != 1 {
			return nil, fmt.Errorf("%w: label %v at row %d is neither 0 nor 1", ErrInput, y[i], i)
		}
	}
	pr := &prepared{m: m, y: y, p: p}
	if m == AUC {
		pr.order = make([]int32, len(p))
		for i := range pr.order {
			pr.order[i] = int32(i)
		}
		slices.SortFunc(pr.order, func(a, b int32) int { return cmp.Compare(p[b], p[a]) })
	}
	return pr, nil
}

// eval computes the metric with row weights w (nil: all 1). Bootstrap
// resamples are weights that count how often each row was drawn.
func (pr *prepared) eval(w []float64) (float64, error) {
	y, p := pr.y, pr.p
	wt := func(i int) float64 {
		if w == nil {
			return 1
		}
		return w[i]
	}
	switch pr.m {
	case AUC:
		// Trapezoidal area under the ROC curve through the distinct
		// thresholds: a group of tied scores with pos positive and neg
		// negative weight adds neg·(positives above + pos/2).
		var area, posAbove, negTotal float64
		o := pr.order
		for g := 0; g < len(o); {
			var pos, neg float64
			s := p[o[g]]
			for ; g < len(o) && p[o[g]] == s; g++ {
				i := int(o[g])
				if y[i] == 1 {
					pos += wt(i)
				} else {
					neg += wt(i)
				}
			}
			area += neg * (posAbove + pos/2)
			posAbove += pos
			negTotal += neg
		}
		if posAbove == 0 || negTotal == 0 {
			return math.NaN(), fmt.Errorf("%w: ROC AUC needs both classes", ErrUndefined)
		}
		return area / (posAbove * negTotal), nil
	case LogLoss:
		const eps = 0x1p-52
		var s, n float64
		for i := range y {
			var q float64
			if y[i] == 1 {
				q = p[i]
			} else {
				q = 1 - p[i]
			}
			q = min(max(q, eps), 1-eps)
			s -= wt(i) * math.Log(q)
			n += wt(i)
		}
		return s / n, nil
	case Brier, RMSE:
		var s, n float64
		for i := range y {
			d := p[i] - y[i]
			s += wt(i) * d * d
			n += wt(i)
		}
		if pr.m == RMSE {
			return math.Sqrt(s / n), nil
		}
		return s / n, nil
	case MAE:
		var s, n float64
		for i := range y {
			s += wt(i) * math.Abs(p[i]-y[i])
			n += wt(i)
		}
		return s / n, nil
	case R2:
		var sy, n float64
		for i := range y {
			sy += wt(i) * y[i]
			n += wt(i)
		}
		mean := sy / n
		var res, tot float64
		for i := range y {
			d, e := y[i]-p[i], y[i]-mean
			res += wt(i) * d * d
			tot += wt(i) * e * e
		}
		if tot == 0 {
			if res == 0 {
				return 1, nil
			}
			return 0, nil
		}
		return 1 - res/tot, nil
	default: // Accuracy, Precision, Recall, F1
		var tp, fp, fn, tn float64
		for i := range y {
			pos := p[i] >= Threshold
			switch {
			case pos && y[i] == 1:
				tp += wt(i)
			case pos:
				fp += wt(i)
			case y[i] == 1:
				fn += wt(i)
			default:
				tn += wt(i)
			}
		}
		switch pr.m {
		case Accuracy:
			return (tp + tn) / (tp + fp + fn + tn), nil
		case Precision:
			return ratio(tp, tp+fp), nil
		case Recall:
			return ratio(tp, tp+fn), nil
		default:
			return ratio(2*tp, 2*tp+fp+fn), nil
		}
	}
}

// ratio is a/b, or 0 when b is 0 (scikit-learn's zero_division default).
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// Evaluate computes the given metrics (all of the task's when metrics is
// empty) and returns them by name. A metric undefined on the data is left
// out rather than failing the others.
func Evaluate(task Task, y, p []float64, metrics ...Metric) (map[Metric]float64, error) {
	if len(metrics) == 0 {
		for _, m := range Metrics {
			if m.Classification() == (task == Classification) {
				metrics = append(metrics, m)
			}
		}
	}
	out := make(map[Metric]float64, len(metrics))
	for _, m := range metrics {
		v, err := m.Compute(y, p)
		if errors.Is(err, ErrUndefined) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("compute %s: %w", m, err)
		}
		out[m] = v
	}
	return out, nil
}

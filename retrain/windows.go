package retrain

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/driftwatch/driftwatch/internal/chsql"
)

// The trainer's windows come from the data, not only from the clock. A row
// is matured once it is older than the p99 label delay of the model's
// recent labels (bounded by MaxMaturity) unless Maturity is set. The
// evaluation window is the most recent EvalWindow of matured labelled
// rows, but at most EvalMaxShare of them and at least MinEvalRows, so the
// training range keeps at least MinTrainRows while there is enough data.

// ErrTooFewRows is wrapped by the reason of a run that had too few
// labelled rows with matured labels for its splits.
var ErrTooFewRows = errors.New("too few labelled rows")

// labelDelayWindow is how far back from the newest label the label delays
// that set the automatic maturity reach: the recent labels.
const labelDelayWindow = 24 * time.Hour

// windows are a run's data ranges: training [From, EvalFrom), evaluation
// [EvalFrom, To); To is now − Maturity.
type windows struct {
	From, EvalFrom, To time.Time
	Maturity           time.Duration
	// Auto says Maturity came from the observed label delays.
	Auto bool
}

// plan picks the windows of a run of model starting at now. It returns the
// clock's windows and an error wrapping ErrTooFewRows when the labelled
// rows cannot fill both splits, or the query's error.
func (t *Trainer) plan(ctx context.Context, mc ModelConfig, modelID string, now time.Time) (windows, error) {
	s := t.store()
	w := windows{Maturity: mc.Maturity, Auto: mc.Maturity == 0}
	if w.Auto {
		w.Maturity = mc.MaxMaturity
	}
	clock := func() {
		w.To = now.Add(-w.Maturity)
		w.From = w.To.Add(-mc.EvalWindow - mc.TrainWindow)
		w.EvalFrom = w.To.Add(-mc.EvalWindow)
	}
	clock()
	if w.Auto {
		p99, n, err := s.labelDelayP99(ctx, modelID, now, w.From)
		if err != nil {
			return w, err
		}
		if n > 0 {
			w.Maturity = min(p99.Round(time.Second)+time.Second, mc.MaxMaturity)
			clock()
		}
	}
	labelled, err := s.labelledRows(ctx, modelID, w.From, w.To)
	if err != nil {
		return w, err
	}
	inWindow, err := s.labelledRows(ctx, modelID, w.EvalFrom, w.To)
	if err != nil {
		return w, err
	}
	k, err := splitRows(labelled, inWindow, int64(mc.MinEvalRows), int64(mc.MinTrainRows), mc.EvalMaxShare)
	if err != nil {
		all, err2 := s.labelledRows(ctx, modelID, w.From, now.Add(time.Millisecond))
		if err2 != nil {
			return w, err2
		}
		rate, span, err2 := s.labelRate(ctx, modelID, now)
		if err2 != nil {
			return w, err2
		}
		mat := w.Maturity.String() + ", the configured maturity"
		if w.Auto {
			mat = w.Maturity.String() + ", the p99 label delay"
		}
		return w, fmt.Errorf("%w: %w: %d labelled rows, %d of them matured (older than %s); %v; %s", ErrRunFailed, ErrTooFewRows,
			all, labelled, mat, err, eta(labelled, int64(mc.MinEvalRows+mc.MinTrainRows), rate, span, now))
	}
	if k != inWindow {
		if w.EvalFrom, err = s.nthNewest(ctx, modelID, w.To, k); err != nil {
			return w, err
		}
	}
	return w, nil
}

// splitRows returns how many of the labelled matured rows the evaluation
// window takes: inWindow (the rows of the last EvalWindow) capped at
// maxShare of labelled and raised to minEval; an error saying what is
// needed when the rest cannot hold minTrain.
func splitRows(labelled, inWindow, minEval, minTrain int64, maxShare float64) (int64, error) {
	k := min(inWindow, int64(math.Floor(maxShare*float64(labelled))))
	k = max(k, minEval)
	if labelled-k < minTrain {
		return 0, fmt.Errorf("the evaluation window needs at least %d and training %d (%d in all)", minEval, minTrain, minEval+minTrain)
	}
	return k, nil
}

// eta says when need matured labelled rows will exist, from have, at the
// rate (rows an hour) measured over span, or that no labels arrive.
func eta(have, need int64, rate float64, span time.Duration, now time.Time) string {
	if rate <= 0 {
		return "no labelled inference in the last hour, so none are maturing"
	}
	wait := time.Duration(float64(need-have) / rate * float64(time.Hour))
	return fmt.Sprintf("at the rate of the last %s (%.0f labelled inferences an hour) enough will have matured at about %s (in %s)",
		span.Round(time.Minute), rate, now.Add(wait).UTC().Format(time.RFC3339), wait.Round(time.Minute))
}

// labelRate is model's labelled inferences an hour over the last hour
// before now, or since its first inference when that is later (but over
// at least a minute), and that span.
func (s store) labelRate(ctx context.Context, model string, now time.Time) (float64, time.Duration, error) {
	var n uint64
	var first time.Time
	q := fmt.Sprintf("SELECT count(), min(timestamp) FROM inferences_labeled WHERE model_id = %s AND NOT shadow AND timestamp >= %s AND timestamp <= %s",
		chsql.String(model), chsql.Time(now.Add(-time.Hour)), chsql.Time(now))
	if err := s.conn.QueryRow(ctx, q).Scan(&n, &first); err != nil {
		return 0, 0, fmt.Errorf("label rate of %s: %w", model, err)
	}
	if n == 0 {
		return 0, time.Hour, nil
	}
	span := min(max(now.Sub(first), time.Minute), time.Hour)
	return float64(n) / span.Hours(), span, nil
}

// labelDelayP99 returns the p99 label delay of model's labels of the last
// labelDelayWindow before now (counted back from the newest label), of
// inferences since since, and how many labels that is.
func (s store) labelDelayP99(ctx context.Context, model string, now, since time.Time) (time.Duration, uint64, error) {
	var p99 float64
	var n uint64
	m := chsql.String(model)
	q := fmt.Sprintf(`SELECT toFloat64(quantileExact(0.99)(label_delay_ms)), count() FROM inferences_labeled
WHERE model_id = %s AND timestamp >= %s AND label_timestamp <= %s
  AND label_timestamp >= (SELECT max(timestamp) FROM outcomes WHERE model_id = %s AND timestamp <= %s) - INTERVAL %d SECOND`,
		m, chsql.Time(since), chsql.Time(now), m, chsql.Time(now), int64(labelDelayWindow/time.Second))
	if err := s.conn.QueryRow(ctx, q).Scan(&p99, &n); err != nil {
		return 0, 0, fmt.Errorf("label delay of %s: %w", model, err)
	}
	if n == 0 || math.IsNaN(p99) {
		return 0, 0, nil
	}
	return time.Duration(max(p99, 0) * float64(time.Millisecond)), n, nil
}

// labelledRows counts model's labelled inferences in [from, to).
func (s store) labelledRows(ctx context.Context, model string, from, to time.Time) (int64, error) {
	var n uint64
	q := fmt.Sprintf("SELECT count() FROM inferences_labeled WHERE model_id = %s AND NOT shadow AND timestamp >= %s AND timestamp < %s",
		chsql.String(model), chsql.Time(from), chsql.Time(to))
	if err := s.conn.QueryRow(ctx, q).Scan(&n); err != nil {
		return 0, fmt.Errorf("count labelled rows of %s: %w", model, err)
	}
	return int64(n), nil
}

// nthNewest returns the timestamp of the k-th newest labelled inference of
// model before to: the start of an evaluation window of k rows.
func (s store) nthNewest(ctx context.Context, model string, to time.Time, k int64) (time.Time, error) {
	var ts time.Time
	q := fmt.Sprintf("SELECT timestamp FROM inferences_labeled WHERE model_id = %s AND NOT shadow AND timestamp < %s ORDER BY timestamp DESC, event_id DESC LIMIT 1 OFFSET %d",
		chsql.String(model), chsql.Time(to), k-1)
	if err := s.conn.QueryRow(ctx, q).Scan(&ts); err != nil {
		return time.Time{}, fmt.Errorf("start of the evaluation window of %s: %w", model, err)
	}
	return ts.UTC(), nil
}

package retrain

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"

	"github.com/driftwatch/driftwatch/retrain/dataset"
	"github.com/driftwatch/driftwatch/retrain/model"
)

// Decisions (training_runs.decision).
const (
	DecisionPromote = "promote"
	DecisionReject  = "reject"
)

// predictor gives the challenger's predictions for a record's rows.
type predictor interface {
	predict(rec arrow.Record, ids *array.String, dst []float64) ([]float64, error)
}

type builtin struct{ m *model.Model }

func (b builtin) predict(rec arrow.Record, _ *array.String, dst []float64) ([]float64, error) {
	return b.m.Predict(rec, dst)
}

// evaluation is the comparison of champion and challenger on the same
// evaluation rows.
type evaluation struct {
	rows       int
	champion   map[string]float64
	challenger map[string]float64
	ci         model.DiffCI
	decision   string
	reason     string
	// importance is the built-in challenger's normalised permutation
	// importance on the evaluation rows (nil for an external trainer).
	importance map[string]float64
}

// evaluate judges both on the evaluation window: the champion by the
// predictions its inferences recorded, the challenger by its own. Rows
// where the champion recorded no prediction or the label is missing are
// left out of both.
func evaluate(ctx context.Context, mc ModelConfig, target model.Target, ds *dataset.Manifest, ch predictor) (*evaluation, error) {
	var y, champ, chall, buf, lbl, design, rows []float64
	bm, isBuiltin := ch.(builtin)
	for rec, err := range ds.Batches(dataset.Eval)(ctx) {
		if err != nil {
			return nil, fmt.Errorf("read evaluation rows: %w", err)
		}
		var err2 error
		if lbl, err2 = target.Labels(rec, lbl); err2 != nil {
			return nil, fmt.Errorf("%w: evaluation labels: %w", ErrRunFailed, err2)
		}
		col := dataset.ColumnPredictionScore
		if mc.Task == model.Regression {
			col = dataset.ColumnPredictionValue
		}
		cp := rec.Column(rec.Schema().FieldIndices(col)[0]).(*array.Float64)
		ids := rec.Column(rec.Schema().FieldIndices(dataset.ColumnEventID)[0]).(*array.String)
		if buf, err2 = ch.predict(rec, ids, buf); err2 != nil {
			return nil, fmt.Errorf("%w: challenger predictions: %w", ErrRunFailed, err2)
		}
		if isBuiltin {
			if rows, err2 = bm.m.Design(rec, rows[:0]); err2 != nil {
				return nil, fmt.Errorf("%w: challenger design rows: %w", ErrRunFailed, err2)
			}
		}
		p := 0
		if isBuiltin {
			p = len(bm.m.Coef)
		}
		for i := range lbl {
			if math.IsNaN(lbl[i]) || cp.IsNull(i) {
				continue
			}
			y, champ, chall = append(y, lbl[i]), append(champ, cp.Value(i)), append(chall, buf[i])
			if isBuiltin {
				design = append(design, rows[i*p:(i+1)*p]...)
			}
		}
	}
	if len(y) == 0 {
		return nil, fmt.Errorf("%w: no evaluation row has both a label and a recorded champion prediction", ErrRunFailed)
	}
	metrics := append([]model.Metric{mc.Metric}, guardMetrics(mc.Guardrails)...)
	cm, err := model.Evaluate(mc.Task, y, champ, metrics...)
	if err != nil {
		return nil, fmt.Errorf("%w: champion metrics: %w", ErrRunFailed, err)
	}
	xm, err := model.Evaluate(mc.Task, y, chall, metrics...)
	if err != nil {
		return nil, fmt.Errorf("%w: challenger metrics: %w", ErrRunFailed, err)
	}
	ci, err := model.BootstrapDiff(mc.Metric, y, champ, chall, model.BootstrapOptions{Resamples: mc.Resamples, Level: mc.Level, Seed: 1})
	if err != nil {
		return nil, fmt.Errorf("%w: bootstrap of %s: %w", ErrRunFailed, mc.Metric, err)
	}
	ev := &evaluation{rows: len(y), champion: names(cm), challenger: names(xm), ci: ci}
	if isBuiltin {
		// Permutation importance of the challenger on the same rows, for the
		// monitor's importance-weighted drift (docs/monitor.md).
		if ev.importance, _, err = bm.m.FeaturePermutationImportance(mc.Metric, y, design, model.PermutationOptions{Repeats: 3, Seed: 1, MaxRows: 20000}); err != nil {
			return nil, fmt.Errorf("%w: permutation importance: %w", ErrRunFailed, err)
		}
	}
	ev.decision, ev.reason = decide(mc, ci, cm, xm)
	return ev, nil
}

func names(m map[model.Metric]float64) map[string]float64 {
	out := make(map[string]float64, len(m))
	for k, v := range m {
		out[string(k)] = v
	}
	return out
}

// decide promotes only when the challenger beats the champion on the
// primary metric by the margin, the bootstrap interval of the difference
// excludes zero on the challenger's side, and no guardrail is broken.
func decide(mc ModelConfig, ci model.DiffCI, champ, chall map[model.Metric]float64) (string, string) {
	cmp := fmt.Sprintf("%s challenger %.4f vs champion %.4f (diff %+.4f, %g%% CI [%+.4f, %+.4f], margin %g)",
		mc.Metric, ci.Challenger, ci.Champion, ci.Diff, 100*ci.Level, ci.Lo, ci.Hi, mc.Margin)
	if !ci.ChallengerBetter(mc.Margin) {
		why := "improvement below the margin"
		if ci.Improvement() >= mc.Margin {
			why = "interval of the difference includes zero"
		}
		return DecisionReject, "not better: " + why + ": " + cmp
	}
	var broken []string
	for _, g := range mc.Guardrails {
		c, okc := champ[g.Metric]
		x, okx := chall[g.Metric]
		if !okc || !okx {
			continue
		}
		worse := x - c
		if g.Metric.HigherIsBetter() {
			worse = c - x
		}
		if worse > g.MaxDegradation {
			broken = append(broken, fmt.Sprintf("%s %.4f vs %.4f (worse by %.4f > %g)", g.Metric, x, c, worse, g.MaxDegradation))
		}
	}
	if len(broken) > 0 {
		return DecisionReject, "guardrail broken: " + strings.Join(broken, "; ") + "; " + cmp
	}
	return DecisionPromote, "better: " + cmp
}

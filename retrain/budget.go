package retrain

import (
	"context"
	"fmt"
	"time"

	"github.com/driftwatch/driftwatch/schemas"
)

// RunSkipped is the training_runs status of a trigger that did not run
// because the model was over its retrain budget; its decision_reason
// starts with "budget: ".
const RunSkipped = "skipped"

// Budget causes: the reason label of driftwatch_trainer_budget_skipped_total.
const (
	BudgetMaxRunsPerDay = "max_runs_per_day"
	BudgetMinInterval   = "min_interval"
)

// budgetPrefix starts the decision_reason of a run skipped over budget.
const budgetPrefix = "budget: "

// overBudget says whether a trigger may start a new run of a model whose
// counted runs (every run but skipped ones) started at starts. It returns
// the cause and the reason when it may not. Manual triggers are held to
// MaxRunsPerDay only; a negative MaxRunsPerDay or MinInterval disables
// that limit.
func overBudget(mc ModelConfig, manual bool, now time.Time, starts []time.Time) (cause, reason string) {
	mc = mc.withDefaults()
	dayAgo := now.Add(-24 * time.Hour)
	var inDay int
	var oldest, last time.Time
	for _, s := range starts {
		if s.After(last) {
			last = s
		}
		if s.After(dayAgo) {
			inDay++
			if oldest.IsZero() || s.Before(oldest) {
				oldest = s
			}
		}
	}
	if mc.MaxRunsPerDay > 0 && inDay >= mc.MaxRunsPerDay {
		return BudgetMaxRunsPerDay, fmt.Sprintf("%smax_runs_per_day %d reached: %d runs started in the 24 hours before %s; the next may start at %s",
			budgetPrefix, mc.MaxRunsPerDay, inDay, now.UTC().Format(time.RFC3339), oldest.Add(24*time.Hour).UTC().Format(time.RFC3339))
	}
	if !manual && mc.MinInterval > 0 && !last.IsZero() && now.Sub(last) < mc.MinInterval {
		return BudgetMinInterval, fmt.Sprintf("%smin_interval %s not elapsed: the last run started at %s (%s before); the next may start at %s",
			budgetPrefix, mc.MinInterval, last.UTC().Format(time.RFC3339), now.Sub(last).Round(time.Second), last.Add(mc.MinInterval).UTC().Format(time.RFC3339))
	}
	return "", ""
}

// checkBudget records trig as a skipped run and returns it when its model
// is over budget; nil when the trigger may run.
func (t *Trainer) checkBudget(ctx context.Context, trig schemas.RetrainTrigger, mc ModelConfig, runID string, now time.Time) (*Run, error) {
	if mc.MaxRunsPerDay < 0 && mc.MinInterval < 0 {
		return nil, nil
	}
	// Runs of the last day, plus the latest before it for min_interval
	// (which may be longer than a day).
	horizon := 24 * time.Hour
	if mc.MinInterval > horizon {
		horizon = mc.MinInterval
	}
	runs, err := t.store().attemptedRunsSince(ctx, trig.ModelID, now.Add(-horizon))
	if err != nil {
		return nil, err
	}
	starts := make([]time.Time, 0, len(runs))
	for _, r := range runs {
		starts = append(starts, r.StartedAt)
	}
	cause, reason := overBudget(mc, trig.Reason == schemas.TriggerManual, now, starts)
	if cause == "" {
		return nil, nil
	}
	r := &Run{RunID: runID, ModelID: trig.ModelID, TriggerID: trig.TriggerID, DedupKey: trig.DedupKey, Attempt: 1, Reason: string(trig.Reason),
		Trainer: mc.Trainer, Status: RunSkipped, DecisionReason: reason, StepSeconds: map[string]float64{}, StartedAt: now, FinishedAt: &now}
	if err := t.store().writeRun(ctx, r); err != nil {
		return nil, err
	}
	t.m.budgetSkipped.WithLabelValues(cause).Inc()
	t.log.Info("trigger over the retrain budget; skipped", "model", trig.ModelID, "trigger_id", trig.TriggerID, "run_id", runID, "reason", reason)
	return r, nil
}

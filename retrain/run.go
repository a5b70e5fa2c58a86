package retrain

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/driftwatch/driftwatch/retrain/dataset"
	"github.com/driftwatch/driftwatch/retrain/model"
	"github.com/driftwatch/driftwatch/schemas"
)

// Run statuses (training_runs.status) and model statuses (models.status).
const (
	RunRunning   = "running"
	RunSucceeded = "succeeded"
	RunRejected  = "rejected"
	RunFailed    = "failed"

	StatusCandidate = "candidate"
	StatusChampion  = "champion"
	StatusRejected  = "rejected"
	StatusFailed    = "failed"
	StatusRetired   = "retired"
)

// interruptedReason starts the decision_reason of a run cut short by a
// crash or a shutdown; such a run is retried when its trigger comes again.
const interruptedReason = "interrupted"

// ErrRunFailed is wrapped by the reason of a run that failed on its own
// terms (no data, a trainer error, malformed output), as opposed to an
// infrastructure error that is retried.
var ErrRunFailed = errors.New("training run failed")

// Run is one row of training_runs.
type Run struct {
	RunID           string
	ModelID         string
	Version         string
	TriggerID       string
	DedupKey        string
	ParentVersion   string
	Attempt         uint32
	Reason          string
	Trainer         string
	Status          string
	Decision        string
	DecisionReason  string
	Query           string
	TrainingFrom    time.Time
	EvalFrom        time.Time
	EvalTo          time.Time
	RowsTrain       uint64
	RowsValidation  uint64
	RowsTest        uint64
	RowsEval        uint64
	RowsRead        uint64
	BytesWritten    uint64
	CPUSeconds      float64
	StepSeconds     map[string]float64
	Metrics         map[string]float64
	ChampionMetrics map[string]float64
	// FeatureImportance is the built-in challenger's normalised permutation
	// importance on the evaluation window, registered with its version; it
	// is not stored in training_runs, so a registration completed by
	// Recover after a crash has none.
	FeatureImportance map[string]float64
	DiffLo, DiffHi    float64
	ArtifactURI       string
	StartedAt         time.Time
	FinishedAt        *time.Time
	// Interrupted is set on a run cut short by a crash, kill or shutdown:
	// its trigger, redelivered, runs it again (up to MaxAttempts).
	Interrupted bool
	// EventsPublished is set once the run's model events reached Kafka.
	EventsPublished bool
}

// interrupted reports whether r was cut short: its column, or, for a row
// written before the column existed, its decision_reason's old prefix.
func (r *Run) interrupted() bool {
	return r.Interrupted || r.Status == RunFailed && strings.HasPrefix(r.DecisionReason, interruptedReason)
}

// RunID derives a run's id from its model and dedup key, so every delivery
// of one decision maps to the same run (and model version).
func RunID(modelID, dedupKey string) string {
	h := sha256.Sum256([]byte(modelID + "\x00" + dedupKey))
	return hex.EncodeToString(h[:8])
}

// RunTrigger runs one trigger to its end unless training_runs already
// holds a run for its trigger_id or dedup_key. A trigger over the model's
// retrain budget is recorded as a skipped run (status skipped, reason
// "budget: …") without training, and that run is returned. It returns the
// recorded run (nil when skipped as a duplicate) and an error only when the run could not be recorded
// (an infrastructure problem the caller retries); a run that fails is
// recorded as failed and returned with a nil error.
func (t *Trainer) RunTrigger(ctx context.Context, trig schemas.RetrainTrigger) (*Run, error) {
	if err := trig.Validate(); err != nil {
		return nil, err
	}
	mc := t.ModelConfig(trig.ModelID)
	runID := RunID(trig.ModelID, trig.DedupKey)
	prev, err := t.findRun(ctx, trig, runID)
	if err != nil {
		return nil, err
	}
	attempt := uint32(1)
	if prev != nil && prev.RunID == runID && (prev.Status == RunSucceeded || prev.Status == RunRejected) && !eventsPublished(prev) {
		// Recorded, but its events were not published (Kafka failed, or a
		// crash, between the run row and the events): publish them now.
		if err := t.republish(ctx, prev); err != nil {
			return nil, err
		}
		return prev, nil
	}
	if prev != nil && prev.RunID == runID && prev.Status == RunRunning {
		// Recorded as running: by a live trainer (wait for it), by this
		// process (a duplicate), or by one that died (take the run over
		// as interrupted).
		state, why, err := t.leaseOf(ctx, prev)
		if err != nil {
			return nil, err
		}
		if state == leaseHeld {
			return nil, fmt.Errorf("%w: run %s of %s: %s", ErrRunHeld, runID, trig.ModelID, why)
		}
		if state == leaseAbandoned {
			t.log.Warn("taking over an abandoned training run", "model", trig.ModelID, "run_id", runID, "why", why)
			prev.Status, prev.DecisionReason, prev.Interrupted = RunFailed, interruptedReason+": "+why, true
			if int(prev.Attempt) >= t.opts.MaxAttempts {
				// No attempt left: record its end, or it would stay running.
				end := t.opts.Now().UTC()
				prev.FinishedAt = &end
				prev.DecisionReason += fmt.Sprintf("; no attempt left (%d of %d)", prev.Attempt, t.opts.MaxAttempts)
				if err := t.store().writeRun(ctx, prev); err != nil {
					return nil, err
				}
				t.m.runs.WithLabelValues(prev.ModelID, RunFailed).Inc()
			}
		}
	}
	if prev != nil {
		if prev.Status != RunFailed || !prev.interrupted() || int(prev.Attempt) >= t.opts.MaxAttempts || prev.RunID != runID {
			t.m.skipped.WithLabelValues(trig.ModelID, "duplicate").Inc()
			t.log.Info("trigger already ran; skipped", "model", trig.ModelID, "trigger_id", trig.TriggerID, "run_id", prev.RunID, "status", prev.Status)
			return nil, nil
		}
		attempt = prev.Attempt + 1
		t.log.Info("retrying interrupted run", "model", trig.ModelID, "run_id", runID, "attempt", attempt)
	}
	now := t.opts.Now().UTC().Truncate(time.Millisecond)
	if prev == nil {
		// A new run must fit the model's budget; the retry of an
		// interrupted run does not count again.
		if r, err := t.checkBudget(ctx, trig, mc, runID, now); r != nil || err != nil {
			return r, err
		}
	}
	parent, err := t.champion(ctx, trig.ModelID)
	if err != nil {
		return nil, err
	}
	win, planErr := t.plan(ctx, mc, trig.ModelID, now)
	r := &Run{
		RunID: runID, ModelID: trig.ModelID, Version: "r" + runID[:12], TriggerID: trig.TriggerID, DedupKey: trig.DedupKey,
		ParentVersion: parent, Attempt: attempt, Reason: string(trig.Reason), Trainer: mc.Trainer, Status: RunRunning,
		TrainingFrom: win.From, EvalFrom: win.EvalFrom, EvalTo: win.To,
		StepSeconds: map[string]float64{}, StartedAt: now,
	}
	// The lease before the running row: no trainer ever reads a run as
	// running without its owner.
	t.setActive(runID, true)
	defer t.setActive(runID, false)
	stopLease, err := t.holdLease(ctx, r)
	if err != nil {
		return nil, err
	}
	defer stopLease()
	if err := t.store().writeRun(ctx, r); err != nil {
		return nil, err
	}
	t.m.running.Inc()
	defer t.m.running.Dec()
	t.log.Info("training run started", "model", r.ModelID, "run_id", r.RunID, "version", r.Version, "trigger_id", r.TriggerID, "trainer", r.Trainer,
		"maturity", win.Maturity, "maturity_from_labels", win.Auto, "training_from", r.TrainingFrom, "eval_from", r.EvalFrom, "eval_to", r.EvalTo)

	cpu0 := cpuSeconds()
	workDir, dirErr := runDir(t.workDir, r.ModelID, r.RunID)
	if dirErr == nil && !t.opts.KeepWork {
		defer removeAll(workDir)
	}
	ev, runErr := (*evaluation)(nil), cmp.Or(planErr, dirErr)
	if runErr == nil {
		ev, runErr = t.execute(ctx, mc, r, workDir)
	}
	stopLease() // the run's rows from here on say it is no longer running
	r.CPUSeconds += cpuSeconds() - cpu0
	end := t.opts.Now().UTC()
	r.FinishedAt = &end
	t.m.cpu.WithLabelValues(r.ModelID).Add(r.CPUSeconds)
	t.m.rowsRead.WithLabelValues(r.ModelID).Add(float64(r.RowsRead))
	t.m.bytesWritten.WithLabelValues(r.ModelID).Add(float64(r.BytesWritten))

	if runErr != nil {
		// Cancelled by a shutdown: record it as interrupted (retried on
		// redelivery) with a context that outlives ctx.
		wctx := ctx
		if ctx.Err() != nil {
			var cancel context.CancelFunc
			wctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			runErr = fmt.Errorf("%s: %w", interruptedReason, runErr)
			r.Interrupted = true
		}
		r.Status, r.DecisionReason = RunFailed, runErr.Error()
		if err := t.store().writeRun(wctx, r); err != nil {
			return nil, err
		}
		t.m.runs.WithLabelValues(r.ModelID, RunFailed).Inc()
		t.log.Warn("training run failed", "model", r.ModelID, "run_id", r.RunID, "reason", r.DecisionReason)
		if ctx.Err() != nil {
			return r, ctx.Err()
		}
		if err := t.publish(ctx, r, schemas.ModelFailed); err != nil {
			return nil, err
		}
		return r, nil
	}
	if err := t.register(ctx, r, ev); err != nil {
		return nil, err
	}
	t.log.Info("training run finished", "model", r.ModelID, "run_id", r.RunID, "version", r.Version, "status", r.Status, "reason", r.DecisionReason)
	return r, nil
}

// execute builds the dataset, trains, evaluates and writes the artifact.
// Every error it returns fails the run.
func (t *Trainer) execute(ctx context.Context, mc ModelConfig, r *Run, workDir string) (*evaluation, error) {
	step := func(name string, start time.Time) { r.StepSeconds[name] = time.Since(start).Seconds() }
	if err := os.RemoveAll(workDir); err != nil {
		return nil, fmt.Errorf("clear work directory: %w", err)
	}

	start := time.Now()
	ds, err := dataset.Build(ctx, t.opts.Conn, dataset.Spec{ModelID: r.ModelID, From: r.TrainingFrom, EvalFrom: r.EvalFrom, To: r.EvalTo,
		JSONL: mc.Trainer == TrainerExternal}, filepath.Join(workDir, "dataset"))
	step("dataset", start)
	if err != nil {
		return nil, fmt.Errorf("build dataset: %w", err)
	}
	r.Query = ds.Query
	r.RowsTrain, r.RowsValidation = uint64(ds.Splits[dataset.Train].Rows), uint64(ds.Splits[dataset.Validation].Rows)
	r.RowsTest, r.RowsEval = uint64(ds.Splits[dataset.Test].Rows), uint64(ds.Splits[dataset.Eval].Rows)
	r.RowsRead, r.BytesWritten = uint64(ds.RowsRead), uint64(ds.BytesWritten)
	if r.RowsTrain == 0 || r.RowsEval == 0 {
		return nil, fmt.Errorf("%w: %w: %d training and %d evaluation rows with matured labels in [%s, %s)", ErrRunFailed, dataset.ErrEmpty,
			r.RowsTrain, r.RowsEval, r.TrainingFrom.Format(time.RFC3339), r.EvalTo.Format(time.RFC3339))
	}

	artifactDir, err := runDir(t.artifactDir, r.ModelID, r.Version)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRunFailed, err)
	}
	r.ArtifactURI = "file://" + artifactDir
	target := model.Target{Task: mc.Task, PositiveClass: mc.PositiveClass}
	start = time.Now()
	var challenger predictor
	switch mc.Trainer {
	case TrainerExternal:
		ext, cpu, err := runExternal(ctx, mc, ds, filepath.Join(workDir, "output"), artifactDir, t.red)
		r.CPUSeconds += cpu
		if err != nil {
			step("train", start)
			return nil, err
		}
		challenger = ext
	default:
		m, rep, err := model.Train(ctx, ds.Batches(dataset.Train), model.Config{Target: target, C: mc.C, Alpha: mc.Alpha,
			Preprocess: model.PreprocessOptions{MaxFeatures: mc.MaxFeatures}})
		if err != nil {
			step("train", start)
			return nil, fmt.Errorf("%w: train built-in model: %w", ErrRunFailed, err)
		}
		if limit := mc.MaxFeatures; rep.Columns >= limit-1 {
			t.log.Info("design matrix at max_features: the least frequent features and categories were left out", "model", r.ModelID, "run_id", r.RunID,
				"columns", rep.Columns, "max_features", limit)
		}
		if err := WriteArtifact(artifactDir, m); err != nil {
			return nil, err
		}
		challenger = builtin{m}
	}
	step("train", start)

	start = time.Now()
	ev, err := evaluate(ctx, mc, target, ds, challenger)
	step("evaluate", start)
	if err != nil {
		return nil, err
	}
	r.Metrics, r.ChampionMetrics = ev.challenger, ev.champion
	r.FeatureImportance = ev.importance
	r.DiffLo, r.DiffHi = ev.ci.Lo, ev.ci.Hi
	if err := writeMetadata(artifactDir, r, ds, ev); err != nil {
		return nil, err
	}
	if st, err := dirSize(artifactDir); err == nil {
		r.BytesWritten += uint64(st)
	}
	return ev, nil
}

// cpuSeconds is the user and system CPU time of this process and its
// waited-for children.
func cpuSeconds() float64 {
	var s float64
	for _, who := range []int{syscall.RUSAGE_SELF} {
		var ru syscall.Rusage
		if syscall.Getrusage(who, &ru) == nil {
			s += tv(ru.Utime) + tv(ru.Stime)
		}
	}
	return s
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n, err
}

package retrain

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/schemas"
)

// store holds the trainer's queries: training runs (training_runs), the
// registry (models) and the runs' leases (training_leases). The Trainer
// calls its methods and builds no SQL.
type store struct {
	conn driver.Conn
}

// store returns the queries over the trainer's connection.
func (t *Trainer) store() store { return store{conn: t.opts.Conn} }

const runColumns = `run_id, model_id, version, trigger_id, parent_version, attempt, dedup_key, reason, trainer, status, decision, decision_reason, query,
training_from, eval_from, eval_to, rows_train, rows_validation, rows_test, rows_eval, rows_read, bytes_written, cpu_seconds,
step_seconds, metrics, champion_metrics, diff_lo, diff_hi, artifact_uri, started_at, finished_at, interrupted, events_published`

// writeRun inserts r as the newest row of its run.
func (s store) writeRun(ctx context.Context, r *Run) error {
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO training_runs ("+runColumns+", updated_at)")
	if err != nil {
		return fmt.Errorf("prepare insert into training_runs: %w", err)
	}
	err = b.Append(r.RunID, r.ModelID, r.Version, r.TriggerID, r.ParentVersion, r.Attempt, r.DedupKey, r.Reason, r.Trainer, r.Status, r.Decision, r.DecisionReason, r.Query,
		r.TrainingFrom, r.EvalFrom, r.EvalTo, r.RowsTrain, r.RowsValidation, r.RowsTest, r.RowsEval, r.RowsRead, r.BytesWritten, r.CPUSeconds,
		nonNil(r.StepSeconds), nonNil(r.Metrics), nonNil(r.ChampionMetrics), r.DiffLo, r.DiffHi, r.ArtifactURI, r.StartedAt, r.FinishedAt, r.Interrupted, r.EventsPublished, updatedAt())
	if err == nil {
		err = b.Send()
	}
	if err != nil {
		b.Abort()
		return fmt.Errorf("insert into training_runs (run %s, status %s): %w", r.RunID, r.Status, err)
	}
	return nil
}

// updatedAt is the version column of the ReplacingMergeTree tables: wall
// time, not the injected clock, so that a later write always wins.
func updatedAt() time.Time { return time.Now().UTC() }

func nonNil(m map[string]float64) map[string]float64 {
	if m == nil {
		return map[string]float64{}
	}
	return m
}

// modelRuns returns a model's training runs, oldest first.
func (s store) modelRuns(ctx context.Context, modelID string) ([]*Run, error) {
	return s.runs(ctx, "model_id = "+chsql.String(modelID))
}

// triggerRuns returns the runs of trig's model that are run runID or were
// started by trig (its trigger_id or its dedup_key), oldest first.
func (s store) triggerRuns(ctx context.Context, trig schemas.RetrainTrigger, runID string) ([]*Run, error) {
	return s.runs(ctx, fmt.Sprintf("model_id = %s AND (run_id = %s OR trigger_id = %s OR dedup_key = %s)",
		chsql.String(trig.ModelID), chsql.String(runID), chsql.String(trig.TriggerID), chsql.String(trig.DedupKey)))
}

// unsettledRuns returns every run that Recover may have to finish: those
// still running, and those that succeeded or were rejected (whose
// registration may have been cut short), oldest first.
func (s store) unsettledRuns(ctx context.Context) ([]*Run, error) {
	return s.runs(ctx, fmt.Sprintf("status IN (%s, %s, %s)", chsql.String(RunRunning), chsql.String(RunSucceeded), chsql.String(RunRejected)))
}

// attemptedRunsSince returns a model's runs started after since that were
// not skipped (the runs a retrain budget counts), oldest first.
func (s store) attemptedRunsSince(ctx context.Context, modelID string, since time.Time) ([]*Run, error) {
	return s.runs(ctx, fmt.Sprintf("model_id = %s AND status != %s AND started_at > fromUnixTimestamp64Milli(%d, 'UTC')",
		chsql.String(modelID), chsql.String(RunSkipped), since.UnixMilli()))
}

// runs returns the newest row of each run matching where, oldest run
// first.
func (s store) runs(ctx context.Context, where string) ([]*Run, error) {
	rows, err := s.conn.Query(ctx, "SELECT "+runColumns+" FROM training_runs FINAL WHERE "+where+" ORDER BY started_at, updated_at, run_id")
	if err != nil {
		return nil, fmt.Errorf("query training_runs: %w", err)
	}
	defer rows.Close()
	var out []*Run
	for rows.Next() {
		r := &Run{}
		if err := rows.Scan(&r.RunID, &r.ModelID, &r.Version, &r.TriggerID, &r.ParentVersion, &r.Attempt, &r.DedupKey, &r.Reason, &r.Trainer, &r.Status, &r.Decision, &r.DecisionReason, &r.Query,
			&r.TrainingFrom, &r.EvalFrom, &r.EvalTo, &r.RowsTrain, &r.RowsValidation, &r.RowsTest, &r.RowsEval, &r.RowsRead, &r.BytesWritten, &r.CPUSeconds,
			&r.StepSeconds, &r.Metrics, &r.ChampionMetrics, &r.DiffLo, &r.DiffHi, &r.ArtifactURI, &r.StartedAt, &r.FinishedAt, &r.Interrupted, &r.EventsPublished); err != nil {
			return nil, fmt.Errorf("scan training_runs: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

const modelColumns = "model_id, version, status, metrics, champion_metrics, feature_importance, coefficient_importance, trainer, artifact_uri, trigger_id, run_id, parent_version, reason, created_at, updated_at"

// writeVersion inserts v as the newest row of its version, setting its
// UpdatedAt.
func (s store) writeVersion(ctx context.Context, v *Version) error {
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO models ("+modelColumns+")")
	if err != nil {
		return fmt.Errorf("prepare insert into models: %w", err)
	}
	v.UpdatedAt = updatedAt()
	err = b.Append(v.ModelID, v.Version, v.Status, nonNil(v.Metrics), nonNil(v.ChampionMetrics), nonNil(v.FeatureImportance), nonNil(v.CoefficientImportance), v.Trainer, v.ArtifactURI, v.TriggerID, v.RunID,
		v.ParentVersion, v.Reason, v.CreatedAt, v.UpdatedAt)
	if err == nil {
		err = b.Send()
	}
	if err != nil {
		b.Abort()
		return fmt.Errorf("insert into models (%s %s %s): %w", v.ModelID, v.Version, v.Status, err)
	}
	return nil
}

// versions returns the registry's versions of one model, or of every
// model when modelID is empty, by model and newest first.
func (s store) versions(ctx context.Context, modelID string) ([]*Version, error) {
	where := ""
	if modelID != "" {
		where = " WHERE model_id = " + chsql.String(modelID)
	}
	rows, err := s.conn.Query(ctx, "SELECT "+modelColumns+" FROM models FINAL"+where+" ORDER BY model_id, created_at DESC, updated_at DESC")
	if err != nil {
		return nil, fmt.Errorf("query models: %w", err)
	}
	defer rows.Close()
	var out []*Version
	for rows.Next() {
		v := &Version{}
		if err := rows.Scan(&v.ModelID, &v.Version, &v.Status, &v.Metrics, &v.ChampionMetrics, &v.FeatureImportance, &v.CoefficientImportance, &v.Trainer, &v.ArtifactURI, &v.TriggerID, &v.RunID,
			&v.ParentVersion, &v.Reason, &v.CreatedAt, &v.UpdatedAt); err != nil {
			return nil, fmt.Errorf("scan models: %w", err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// lease returns run r's lease, nil when it has none; its age is by
// ClickHouse's clock, the clock its heartbeats were written with.
func (s store) lease(ctx context.Context, r *Run) (*lease, error) {
	rows, err := s.conn.Query(ctx, fmt.Sprintf("SELECT owner, dateDiff('millisecond', heartbeat_at, now64(3)) FROM training_leases FINAL WHERE model_id = %s AND run_id = %s",
		chsql.String(r.ModelID), chsql.String(r.RunID)))
	if err != nil {
		return nil, fmt.Errorf("read the lease of run %s: %w", r.RunID, err)
	}
	defer rows.Close()
	var l *lease
	for rows.Next() {
		var (
			who string
			ms  int64
		)
		if err := rows.Scan(&who, &ms); err != nil {
			return nil, fmt.Errorf("read the lease of run %s: %w", r.RunID, err)
		}
		l = &lease{owner: who, age: time.Duration(ms) * time.Millisecond}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the lease of run %s: %w", r.RunID, err)
	}
	return l, nil
}

// writeLease records a heartbeat of run r by owner, at ClickHouse's now.
func (s store) writeLease(ctx context.Context, r *Run, owner string) error {
	err := s.conn.Exec(ctx, fmt.Sprintf("INSERT INTO training_leases (run_id, model_id, owner, heartbeat_at) SELECT %s, %s, %s, now64(3)",
		chsql.String(r.RunID), chsql.String(r.ModelID), chsql.String(owner)))
	if err != nil {
		return fmt.Errorf("write the lease of run %s: %w", r.RunID, err)
	}
	return nil
}

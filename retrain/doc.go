// Package retrain is driftwatch's trainer: it consumes retrain triggers,
// builds the model's dataset from ClickHouse (package dataset), trains a
// challenger (the built-in models of package model, or an external
// command), judges it against the champion on the same label-matured
// evaluation window, and registers the outcome.
//
// # Triggers
//
// A consumer-group reader of <prefix>retrain-triggers feeds a queue
// ordered by reason (manual, performance, business, prediction_drift,
// feature_drift, data_quality, schedule) and then age. Workers take the
// best trigger of a model that is not already running, so a model never
// has two runs at once. A malformed trigger goes to <prefix>dead-letters
// with ingest's reason headers; with a signing key (Options.TriggerKey,
// trigger_signing_key_file) so does a trigger without a valid signature
// (internal/signing; reasons unsigned_trigger and bad_signature), before
// it is decoded, so it never trains. A trigger is run once: its run_id is
// derived from (model_id, dedup_key), and a trigger whose trigger_id or
// dedup_key is already in training_runs (or in the queue) is skipped.
//
// Offsets are committed after the run is recorded in training_runs, never
// before: the queue lives in memory, so a crash redelivers every trigger
// not yet recorded, and the training_runs check turns the redelivery of a
// recorded one into a no-op. Runs finish out of order, so per partition
// only the offsets below the oldest unfinished trigger are committed.
//
// # Runs and crash safety
//
// A run writes its training_runs row as running, builds the dataset, trains,
// evaluates, writes the artifact (<artifact_dir>/<model>/<version>/model.json,
// its checksum model.json.sha256, and metadata.json), then the final run row, then the models row (and
// retires the previous champion), then the model events, then the run row
// once more with a "publish" entry in step_seconds: the events are
// published. While it runs, its trainer renews the run's lease in
// training_leases every third of Options.Lease; a run left running whose
// owner is gone (lease lapsed, or a process of this host that no longer
// exists) is taken over, one whose owner is alive is waited for
// (ErrRunHeld). On start, Recover marks abandoned runs failed
// ("interrupted: …"), registers finished runs whose models row is missing,
// publishes the events of finished runs without the publish step (a crash
// or a Kafka error between the models row and the events; the trigger's
// redelivery does the same), and retires all champions of a model but the
// newest. Model events are therefore at least once: a republished event
// has the same event_id (run_id:kind). A failed run's event is published
// at most once. An interrupted run's trigger, redelivered, runs again
// under the same run_id and version (up to MaxAttempts), so a kill never
// leaves a duplicate or half-registered version.
//
// # Retrain budget
//
// Each model (its entry under models, or defaults) has a retrain budget:
// max_runs_per_day (4 unless set; negative for no limit) runs started in
// any 24 hours, and min_interval (1h unless set; negative for none)
// between the starts of two runs. Every run counts except skipped ones,
// failed runs included (they spent the resources); the retry of an
// interrupted run is the same run and is not counted again. A trigger over
// budget is not trained: it is recorded in training_runs with status
// skipped and decision_reason "budget: max_runs_per_day …" or "budget:
// min_interval …" (saying when the next run may start), its offset is
// committed like any recorded run, and its redelivery is a duplicate.
// Manual triggers (reason manual) are held to max_runs_per_day only, so an
// engineer can retrain right after an automatic run but not without limit.
// The check uses the trainer's clock and the started_at of the model's
// runs; at most one run per model at a time makes it race-free within a
// trainer.
//
// # Evaluation
//
// The champion is the production model as its inferences recorded it
// (prediction_score for classification, prediction_value for regression);
// the challenger's predictions are computed on the same evaluation rows.
// The challenger is promoted only when its primary metric beats the
// champion's by Margin, the paired bootstrap interval of the difference
// excludes zero, and no guardrail metric is worse by more than its
// MaxDegradation; otherwise it is registered as rejected with the reason.
//
// # Metrics
//
//   - driftwatch_trainer_triggers_received_total{model}
//   - driftwatch_trainer_triggers_dead_lettered_total{reason}
//   - driftwatch_trainer_triggers_skipped_total{model,cause}
//   - driftwatch_trainer_budget_skipped_total{reason} (max_runs_per_day, min_interval)
//   - driftwatch_trainer_runs_total{model,status}
//   - driftwatch_trainer_model_events_total{kind}
//   - driftwatch_trainer_cpu_seconds_total{model}
//   - driftwatch_trainer_rows_read_total{model}
//   - driftwatch_trainer_bytes_written_total{model}
//   - driftwatch_trainer_queue_length, driftwatch_trainer_runs_in_progress
package retrain

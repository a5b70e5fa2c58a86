-- One row per training run, rewritten as the run moves on: status running
-- when it starts, then succeeded (promoted), rejected or failed with every
-- step's figures. ReplacingMergeTree(updated_at) keeps the newest row per
-- run_id; read with FINAL. trigger_id and dedup_key make the trainer
-- idempotent: a trigger whose id or key is already here is not run again.
CREATE TABLE IF NOT EXISTS training_runs
(
    run_id         String COMMENT 'run id, derived from (model_id, dedup_key)',
    model_id       LowCardinality(String) COMMENT 'model being retrained',
    version        String COMMENT 'version the run registers',
    trigger_id     String COMMENT 'retrain trigger that started the run',
    parent_version String COMMENT 'champion version when the run started',
    attempt        UInt32 COMMENT 'attempt number; a run interrupted by a crash or shutdown is retried under the same run_id',
    dedup_key      String COMMENT 'the trigger''s dedup_key',
    reason         LowCardinality(String) COMMENT 'trigger reason (feature_drift, performance, manual, …)',
    trainer        LowCardinality(String) COMMENT 'builtin or external',
    status         LowCardinality(String) COMMENT 'running, succeeded, rejected or failed',
    decision       LowCardinality(String) COMMENT 'promote, reject or empty when the run failed',
    decision_reason String COMMENT 'why: the metric comparison, the guardrail that failed, or the error',
    query          String COMMENT 'the dataset query',
    training_from  DateTime64(3, 'UTC') COMMENT 'start of the training range',
    eval_from      DateTime64(3, 'UTC') COMMENT 'start of the evaluation window (end of the training range)',
    eval_to        DateTime64(3, 'UTC') COMMENT 'end of the evaluation window (the label maturity horizon)',
    rows_train     UInt64 COMMENT 'rows in the train split',
    rows_validation UInt64 COMMENT 'rows in the validation split',
    rows_test      UInt64 COMMENT 'rows in the test split',
    rows_eval      UInt64 COMMENT 'rows in the evaluation window',
    rows_read      UInt64 COMMENT 'rows read from ClickHouse',
    bytes_written  UInt64 COMMENT 'bytes of dataset files and artifacts written',
    cpu_seconds    Float64 COMMENT 'CPU time of the process (user + system, and the external command) during the run',
    step_seconds   Map(String, Float64) COMMENT 'wall time per step: dataset, train, evaluate, register',
    metrics        Map(String, Float64) COMMENT 'challenger metrics on the evaluation window',
    champion_metrics Map(String, Float64) COMMENT 'champion metrics on the same rows',
    diff_lo        Float64 COMMENT 'lower bound of the bootstrap interval of challenger − champion (primary metric)',
    diff_hi        Float64 COMMENT 'upper bound of that interval',
    artifact_uri   String COMMENT 'model artifact directory',
    started_at     DateTime64(3, 'UTC') COMMENT 'when the run started',
    finished_at    Nullable(DateTime64(3, 'UTC')) COMMENT 'when it ended (null while running)',
    updated_at     DateTime64(3, 'UTC') COMMENT 'when this row was written; the newest row wins'
)
ENGINE = ReplacingMergeTree(updated_at)
PARTITION BY toYYYYMM(started_at)
ORDER BY (model_id, run_id)
COMMENT 'Training runs with every step''s figures and the decision (use FINAL)';

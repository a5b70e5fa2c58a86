-- Every model version the trainer registered, with its current status.
-- A status change (candidate → champion, champion → retired) is a new row
-- with a later updated_at; ReplacingMergeTree(updated_at) keeps the newest
-- row per (model_id, version), so read with FINAL (or argMax by
-- updated_at). At most one version per model is champion: the trainer
-- writes the new champion, then retires the old one, and on start retires
-- every champion but the newest.
CREATE TABLE IF NOT EXISTS models
(
    model_id       LowCardinality(String) COMMENT 'model this is a version of',
    version        String COMMENT 'version id (from the run that produced it)',
    status         LowCardinality(String) COMMENT 'candidate, champion, rejected, failed or retired',
    metrics        Map(String, Float64) COMMENT 'challenger metrics on the evaluation window (auc, rmse, …)',
    champion_metrics Map(String, Float64) COMMENT 'the champion''s metrics on the same rows',
    trainer        LowCardinality(String) COMMENT 'builtin or external',
    artifact_uri   String COMMENT 'where the model artifact and its metadata are',
    trigger_id     String COMMENT 'retrain trigger that led to this version',
    run_id         String COMMENT 'training run that produced it (training_runs.run_id)',
    parent_version String COMMENT 'champion version when the run started ('''' for the production model)',
    reason         String COMMENT 'why it was promoted or rejected',
    created_at     DateTime64(3, 'UTC') COMMENT 'when the version was registered',
    updated_at     DateTime64(3, 'UTC') COMMENT 'when this status was written; the newest row wins'
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (model_id, version)
COMMENT 'Model registry: versions, status and lineage (use FINAL)';

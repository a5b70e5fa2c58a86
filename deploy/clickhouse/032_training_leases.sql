-- Heartbeats of running training runs. The trainer running a run rewrites
-- its row every third of the lease (lease: 1 minute by default), stamped
-- with ClickHouse's clock so that trainers on different hosts compare one
-- clock. A trainer that finds a run still "running" in training_runs takes
-- it over only when the lease has lapsed, or when the owner is a process of
-- its own host that no longer exists; otherwise it waits for the owner.
-- Rows expire with the raw events (retention_days).
CREATE TABLE IF NOT EXISTS training_leases
(
    run_id       String COMMENT 'the run (training_runs.run_id)',
    model_id     LowCardinality(String) COMMENT 'its model',
    owner        String COMMENT 'the trainer process running it: host/pid/process start time',
    heartbeat_at DateTime64(3, 'UTC') COMMENT 'last heartbeat, by ClickHouse''s clock'
)
ENGINE = ReplacingMergeTree(heartbeat_at)
ORDER BY (model_id, run_id)
TTL toDateTime(heartbeat_at) + INTERVAL {{.RetentionFor "training_leases"}} DAY
COMMENT 'Leases of running training runs: who runs each and when it last said so (use FINAL)';

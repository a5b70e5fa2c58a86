-- Model performance per window once labels arrive: one row per model,
-- window, metric and computation. A window is re-evaluated as late labels
-- arrive; every computation is kept (MergeTree, not Replacing), so the
-- history of a window's metric stays queryable. The newest computed_at of
-- a (model_id, model_version, window_start, window_end, metric) is the
-- current value: read it with argMax(value, computed_at) or from the view
-- performance_latest.
CREATE TABLE IF NOT EXISTS performance_results
(
    model_id       LowCardinality(String) COMMENT 'model',
    model_version  LowCardinality(String) COMMENT 'model version the window was computed for; empty when all versions are pooled',
    window_start   DateTime64(3, 'UTC') COMMENT 'start of the window (inference event time, inclusive)',
    window_end     DateTime64(3, 'UTC') COMMENT 'end of the window (inference event time, exclusive)',
    metric         LowCardinality(String) COMMENT 'accuracy, precision, recall, f1, roc_auc, log_loss, brier, mae, rmse, mape, r2; label_coverage and label_delay_p50/p90/p99_seconds per window',
    value          Float64 COMMENT 'the metric (a share for label_coverage, seconds for the delays)',
    samples        UInt64 COMMENT 'labelled rows the metric was computed on (inferences for label_coverage)',
    label_coverage Float64 COMMENT 'labelled / all inferences of the window at computed_at, labels within the horizon',
    computed_at    DateTime64(3, 'UTC') COMMENT 'when monitor computed this row; the newest per window and metric wins'
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(window_start)
ORDER BY (model_id, metric, window_start, computed_at)
TTL toDateTime(window_start) + INTERVAL {{.RollupRetentionFor "performance_results"}} DAY
COMMENT 'Performance per model, window and metric; every re-evaluation kept, newest computed_at wins';

-- The current value of every (model, version, window, metric): the newest
-- computation, with how many computations the window has had.
CREATE VIEW IF NOT EXISTS performance_latest
AS SELECT
    model_id,
    model_version,
    window_start,
    window_end,
    metric,
    argMax(v, at) AS value,
    argMax(n, at) AS samples,
    argMax(coverage, at) AS label_coverage,
    max(at) AS computed_at,
    count() AS computations
FROM
(
    SELECT model_id, model_version, window_start, window_end, metric, value AS v, samples AS n, label_coverage AS coverage, computed_at AS at
    FROM performance_results
)
GROUP BY model_id, model_version, window_start, window_end, metric;

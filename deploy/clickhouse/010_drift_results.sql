-- One row per model, window, feature and method: what monitor measured and
-- what it concluded. A window re-evaluated later (a late batch of events)
-- writes new rows with a later computed_at; the newest wins.
CREATE TABLE IF NOT EXISTS drift_results
(
    model_id         LowCardinality(String) COMMENT 'model',
    model_version    LowCardinality(String) COMMENT 'model version the window was computed for; empty when all versions are pooled',
    window_start     DateTime64(3, 'UTC') COMMENT 'start of the current window (event time, inclusive)',
    window_end       DateTime64(3, 'UTC') COMMENT 'end of the current window (event time, exclusive)',
    reference_start  DateTime64(3, 'UTC') COMMENT 'start of the reference window',
    reference_end    DateTime64(3, 'UTC') COMMENT 'end of the reference window',
    feature          LowCardinality(String) COMMENT 'feature name; __score, __label for prediction drift; __all for model-level checks',
    kind             LowCardinality(String) COMMENT 'drift, prediction_drift or data_quality',
    method           LowCardinality(String) COMMENT 'statistic (psi, ks, wasserstein, …) or data-quality check (missing_share, …)',
    value            Float64 COMMENT 'the statistic or the measured share',
    p_value          Nullable(Float64) COMMENT 'p-value for tests, NULL for distances',
    p_value_adjusted Nullable(Float64) COMMENT 'Benjamini–Hochberg adjusted p-value across the window''s features',
    threshold        Float64 COMMENT 'threshold the value (or adjusted p-value) was compared with',
    drifted          Bool COMMENT 'the value crossed the threshold in this window',
    sustained        Bool COMMENT 'drifted in the configured number of consecutive windows (what alerts and triggers use)',
    status           LowCardinality(String) COMMENT 'ok, drifted or insufficient (too few samples to judge)',
    samples          UInt64 COMMENT 'rows in the current window',
    reference_samples UInt64 COMMENT 'rows in the reference window',
    computed_at      DateTime64(3, 'UTC') COMMENT 'when monitor computed this row'
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(window_start)
ORDER BY (model_id, window_start, window_end, feature, method, model_version)
TTL toDateTime(window_start) + INTERVAL {{.RollupRetentionFor "drift_results"}} DAY
COMMENT 'Drift, prediction drift and data quality per model, window, feature and method';

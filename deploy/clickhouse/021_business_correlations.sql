-- Correlation of a bucketed model metric with a bucketed business metric
-- over a window: one row per model, metric pair, method and lag. Lag L
-- pairs model_metric[t] with business_metric[t+L] (the business metric
-- following the model by L buckets); lag 0 is the plain correlation. A
-- window re-evaluated later writes new rows with a later computed_at; the
-- newest wins under FINAL.
CREATE TABLE IF NOT EXISTS business_correlations
(
    model_id        LowCardinality(String) COMMENT 'model',
    model_metric    LowCardinality(String) COMMENT 'model-side series: a performance metric (accuracy, …), a drift score (drift:<feature>:<method>) or prediction_mean',
    business_metric LowCardinality(String) COMMENT 'business_metrics.metric of the business-side series',
    lag             UInt16 COMMENT 'buckets the business series is shifted forward by (0 = same bucket)',
    method          LowCardinality(String) COMMENT 'pearson or spearman',
    value           Float64 COMMENT 'correlation coefficient r or rho, in [-1, 1]',
    p_value         Float64 COMMENT 'two-sided p-value of no correlation (exact beta for pearson, t for spearman, as scipy)',
    samples         UInt64 COMMENT 'bucket pairs with both values present at this lag',
    bucket_seconds  UInt32 COMMENT 'bucket width of both series, in seconds',
    window_start    DateTime64(3, 'UTC') COMMENT 'start of the first bucket (inclusive)',
    window_end      DateTime64(3, 'UTC') COMMENT 'end of the last bucket (exclusive)',
    computed_at     DateTime64(3, 'UTC') COMMENT 'when monitor computed this row'
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(window_start)
ORDER BY (model_id, business_metric, model_metric, method, lag, bucket_seconds, window_start, window_end)
TTL toDateTime(window_start) + INTERVAL {{.RollupRetentionFor "business_correlations"}} DAY
COMMENT 'Model-metric vs business-metric correlations per window, method and lag (newest under FINAL)';

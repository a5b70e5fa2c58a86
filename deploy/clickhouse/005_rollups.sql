-- Per-minute rollups the analysts' dashboards read, kept by materialized
-- views as rows arrive. They count rows as written: a producer duplicate
-- that ingest did not drop in its batch is counted twice here (base tables
-- with FINAL are exact). Kept for {{.RollupRetentionDays}} days.
CREATE TABLE IF NOT EXISTS inferences_per_minute
(
    model_id        LowCardinality(String) COMMENT 'model',
    model_version   LowCardinality(String) COMMENT 'model version',
    minute          DateTime('UTC') COMMENT 'start of the minute, by event time',
    events          SimpleAggregateFunction(sum, UInt64) COMMENT 'inferences in the minute',
    score_sum       SimpleAggregateFunction(sum, Float64) COMMENT 'sum of prediction_score (divide by scored for the mean)',
    scored          SimpleAggregateFunction(sum, UInt64) COMMENT 'inferences with a prediction_score',
    value_sum       SimpleAggregateFunction(sum, Float64) COMMENT 'sum of prediction_value',
    valued          SimpleAggregateFunction(sum, UInt64) COMMENT 'inferences with a prediction_value',
    missing_features SimpleAggregateFunction(sum, UInt64) COMMENT 'features sent as null, summed over inferences',
    latency_ms_quantiles AggregateFunction(quantiles(0.5, 0.9, 0.99), Float64) COMMENT 'latency quantiles state: quantilesMerge(0.5, 0.9, 0.99)(latency_ms_quantiles)'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (model_id, model_version, minute)
TTL minute + INTERVAL {{.RollupRetentionFor "inferences_per_minute"}} DAY
COMMENT 'Inference volume, mean score and latency per model, version and minute';

CREATE MATERIALIZED VIEW IF NOT EXISTS inferences_per_minute_mv TO inferences_per_minute
AS SELECT
    model_id,
    model_version,
    toStartOfMinute(timestamp) AS minute,
    count() AS events,
    sum(ifNull(prediction_score, 0)) AS score_sum,
    countIf(prediction_score IS NOT NULL) AS scored,
    sum(ifNull(prediction_value, 0)) AS value_sum,
    countIf(prediction_value IS NOT NULL) AS valued,
    sum(length(missing_features)) AS missing_features,
    quantilesStateIf(0.5, 0.9, 0.99)(ifNull(latency_ms, 0), latency_ms IS NOT NULL) AS latency_ms_quantiles
FROM inferences
GROUP BY model_id, model_version, minute;

CREATE TABLE IF NOT EXISTS outcomes_per_minute
(
    model_id LowCardinality(String) COMMENT 'model',
    minute   DateTime('UTC') COMMENT 'start of the minute, by the outcome''s timestamp',
    outcomes SimpleAggregateFunction(sum, UInt64) COMMENT 'outcomes received in the minute'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (model_id, minute)
TTL minute + INTERVAL {{.RollupRetentionFor "outcomes_per_minute"}} DAY
COMMENT 'Outcome (label) volume per model and minute';

CREATE MATERIALIZED VIEW IF NOT EXISTS outcomes_per_minute_mv TO outcomes_per_minute
AS SELECT model_id, toStartOfMinute(timestamp) AS minute, count() AS outcomes
FROM outcomes
GROUP BY model_id, minute;

CREATE TABLE IF NOT EXISTS business_metrics_per_minute
(
    metric   LowCardinality(String) COMMENT 'KPI name',
    model_id LowCardinality(String) COMMENT 'model the KPI is attributed to; empty when global',
    minute   DateTime('UTC') COMMENT 'start of the minute',
    samples  SimpleAggregateFunction(sum, UInt64) COMMENT 'measurements in the minute',
    sum      SimpleAggregateFunction(sum, Float64) COMMENT 'sum of values (divide by samples for the mean)',
    min      SimpleAggregateFunction(min, Float64) COMMENT 'smallest value',
    max      SimpleAggregateFunction(max, Float64) COMMENT 'largest value'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (metric, model_id, minute)
TTL minute + INTERVAL {{.RollupRetentionFor "business_metrics_per_minute"}} DAY
COMMENT 'Business metric count, sum, min and max per metric, model and minute';

CREATE MATERIALIZED VIEW IF NOT EXISTS business_metrics_per_minute_mv TO business_metrics_per_minute
AS SELECT metric, model_id, toStartOfMinute(timestamp) AS minute, count() AS samples, sum(value) AS sum, min(value) AS min, max(value) AS max
FROM business_metrics
GROUP BY metric, model_id, minute;

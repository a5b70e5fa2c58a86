-- Ground truth, which may arrive days after its inference. Several outcomes
-- for one prediction_id (a corrected label) are all kept; readers take the
-- newest by timestamp, as inferences_labeled does.
CREATE TABLE IF NOT EXISTS outcomes
(
    event_id        String COMMENT 'producer-assigned unique id; the idempotency key',
    model_id        LowCardinality(String) COMMENT 'model whose prediction this labels',
    prediction_id   String COMMENT 'the prediction this is the ground truth for',
    timestamp       DateTime64(3, 'UTC') COMMENT 'when the ground truth became known',
    actual_label    Nullable(String) COMMENT 'true class label, for classifiers',
    actual_value    Nullable(Float64) COMMENT 'true value, for regressors',
    kafka_topic     LowCardinality(String) COMMENT 'source Kafka topic',
    kafka_partition Int32 COMMENT 'source partition in kafka_topic',
    kafka_offset    Int64 COMMENT 'source offset in that partition',
    ingested_at     DateTime64(3, 'UTC') COMMENT 'when ingest wrote the row'
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(timestamp)
ORDER BY (model_id, prediction_id, event_id)
TTL toDateTime(timestamp) + INTERVAL {{.RetentionFor "outcomes"}} DAY
SETTINGS non_replicated_deduplication_window = 10000
COMMENT 'Ground-truth outcomes, joined to inferences by (model_id, prediction_id)';

-- One row per inference event, as the producer sent it. Idempotent on
-- event_id: a redelivered Kafka batch carries the same
-- insert_deduplication_token and is dropped on insert; a producer duplicate
-- (same event sent twice, unchanged) collapses on merge and under FINAL.
CREATE TABLE IF NOT EXISTS inferences
(
    event_id                 String COMMENT 'producer-assigned unique id; the idempotency key',
    model_id                 LowCardinality(String) COMMENT 'model that made the prediction',
    model_version            LowCardinality(String) COMMENT 'version of that model',
    prediction_id            String COMMENT 'join key for the outcome (ground truth) of this prediction',
    timestamp                DateTime64(3, 'UTC') COMMENT 'event time of the prediction, from the producer',
    features_numeric         Map(String, Float64) COMMENT 'numeric features; booleans as 0/1; missing and null features are absent keys',
    features_categorical     Map(String, String) COMMENT 'string-valued features; missing and null features are absent keys',
    missing_features         Array(String) COMMENT 'names of features the producer sent as null (absent from both maps)',
    prediction_label         Nullable(String) COMMENT 'predicted class label, if the model predicts one',
    prediction_score         Nullable(Float64) COMMENT 'score or positive-class probability, if given',
    prediction_value         Nullable(Float64) COMMENT 'regression output, if given',
    prediction_probabilities Map(String, Float64) COMMENT 'class label → probability, if given',
    segment                  Map(String, String) COMMENT 'low-cardinality segment labels (country, device, …)',
    latency_ms               Nullable(Float64) COMMENT 'model latency reported by the producer',
    kafka_topic              LowCardinality(String) COMMENT 'source Kafka topic',
    kafka_partition          Int32 COMMENT 'source partition in kafka_topic',
    kafka_offset             Int64 COMMENT 'source offset in that partition',
    ingested_at              DateTime64(3, 'UTC') COMMENT 'when ingest wrote the row',
    INDEX idx_prediction_id prediction_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(timestamp)
ORDER BY (model_id, timestamp, event_id)
TTL toDateTime(timestamp) + INTERVAL {{.RetentionFor "inferences"}} DAY
SETTINGS non_replicated_deduplication_window = 10000
COMMENT 'Every inference event, one row per event_id (use FINAL for exact counts)';

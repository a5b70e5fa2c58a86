-- Business KPIs (revenue, conversion, …), optionally attributed to a model.
CREATE TABLE IF NOT EXISTS business_metrics
(
    event_id        String COMMENT 'producer-assigned unique id; the idempotency key',
    metric          LowCardinality(String) COMMENT 'KPI name, e.g. revenue or conversion_rate',
    value           Float64 COMMENT 'KPI value',
    timestamp       DateTime64(3, 'UTC') COMMENT 'event time of the measurement',
    model_id        LowCardinality(String) COMMENT 'model the KPI is attributed to; empty when global',
    segment         Map(String, String) COMMENT 'low-cardinality segment labels',
    kafka_topic     LowCardinality(String) COMMENT 'source Kafka topic',
    kafka_partition Int32 COMMENT 'source partition in kafka_topic',
    kafka_offset    Int64 COMMENT 'source offset in that partition',
    ingested_at     DateTime64(3, 'UTC') COMMENT 'when ingest wrote the row'
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(timestamp)
ORDER BY (metric, model_id, timestamp, event_id)
TTL toDateTime(timestamp) + INTERVAL {{.RetentionFor "business_metrics"}} DAY
SETTINGS non_replicated_deduplication_window = 10000
COMMENT 'Business metric events';

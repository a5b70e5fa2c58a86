-- Every event ingest rejected, with the reason: the same messages as the
-- dead-letters topic, queryable. model_id and timestamp are read best
-- effort from a payload that failed validation (empty and the time of
-- rejection when they cannot be read). A redelivered batch carries the same
-- insert_deduplication_token, and a repeated offset collapses on merge.
CREATE TABLE IF NOT EXISTS dead_letters
(
    timestamp       DateTime64(3, 'UTC') COMMENT 'event time from the payload when it parses, else received_at',
    received_at     DateTime64(3, 'UTC') COMMENT 'when ingest rejected the event',
    model_id        LowCardinality(String) COMMENT 'model_id from the payload, else the message key when it is a valid model id, else empty',
    kind            LowCardinality(String) COMMENT 'inferences, outcomes or business-metrics: the topic the event came from, without the prefix',
    reason          LowCardinality(String) COMMENT 'reason code (invalid_json, missing_field, …), as in the driftwatch-reason header',
    error           String COMMENT 'the error message, naming the field',
    payload         String COMMENT 'the rejected message value, its first 4096 bytes',
    payload_bytes   UInt32 COMMENT 'size of the whole message value',
    kafka_topic     LowCardinality(String) COMMENT 'source Kafka topic',
    kafka_partition Int32 COMMENT 'source partition in kafka_topic',
    kafka_offset    Int64 COMMENT 'source offset in that partition'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (model_id, timestamp, kafka_topic, kafka_partition, kafka_offset)
TTL toDateTime(received_at) + INTERVAL {{.RetentionFor "dead_letters"}} DAY
SETTINGS non_replicated_deduplication_window = 10000
COMMENT 'Events ingest rejected, one row per source offset (use FINAL for exact counts)';

-- Each model's reference: the aggregates its drift is measured against,
-- kept when first computed so that the baseline outlives the raw rows (the
-- inferences TTL) and restarts, and late or forged events cannot move it.
-- `driftwatch reference set` re-pins a model's reference to another
-- period: a newer row (later created_at) replaces the older one, so read
-- with FINAL. No TTL: a model's reference is kept until it is replaced.
CREATE TABLE IF NOT EXISTS reference_profiles
(
    model_id         LowCardinality(String) COMMENT 'model',
    reference_start  DateTime64(3, 'UTC') COMMENT 'start of the reference period (event time, inclusive)',
    reference_end    DateTime64(3, 'UTC') COMMENT 'end of the reference period (event time, exclusive)',
    source           LowCardinality(String) COMMENT 'first (the model''s first reference period, pinned by the monitor) or set (an operator ran driftwatch reference set)',
    rows             UInt64 COMMENT 'inferences in the reference period when the profile was computed',
    numeric_features UInt32 COMMENT 'numeric features in the profile',
    categorical_features UInt32 COMMENT 'categorical features in the profile',
    profile          String COMMENT 'the aggregates as JSON: bin edges and counts, value samples and category counts per feature, and the options they were computed with' CODEC(ZSTD(3)),
    created_by       String COMMENT 'who wrote it: monitor, or the user and host that ran driftwatch reference set',
    created_at       DateTime64(3, 'UTC') COMMENT 'when the profile was written; the newest row per model wins'
)
ENGINE = ReplacingMergeTree(created_at)
ORDER BY model_id
COMMENT 'Persisted reference aggregates per model (use FINAL)';

-- Incremental windows (docs/monitor.md "Incremental windows"): with a
-- model's reference pinned, the monitor keeps the current window's
-- aggregates per bucket (gcd of window and step, 1 minute by default) and
-- merges a window from its buckets. Each bucket is aggregated under a
-- version; window_partial_buckets (the manifest, newest version under
-- FINAL) says which version's rows are current and what the bucket held
-- (rows, newest ingested_at), so a late event, a replay or a TTL deletion
-- makes the bucket be aggregated again. Rows of other versions are never
-- read. profile_key hashes what the partials depend on (the pinned
-- reference's numeric features, edges and range, bins, sample_cap): a
-- re-pinned reference gets partials of its own. They are kept as long as
-- the raw rows by default (retention_days); since they can be aggregated
-- again from the raw rows, `retention: {window_partial_bins: 7, ...}` may
-- keep them shorter (a week covers the monitor's default lookback).
CREATE TABLE IF NOT EXISTS window_partial_buckets
(
    model_id           LowCardinality(String) COMMENT 'the model',
    profile_key        UInt64 COMMENT 'hash of the pinned reference the partials were binned on (features, edges, range, bins, sample_cap)',
    bucket_start       DateTime64(3, 'UTC') COMMENT 'start of the bucket, a multiple of bucket_seconds since the epoch',
    bucket_seconds     UInt32 COMMENT 'width of the bucket',
    version            UInt64 COMMENT 'the version of the bucket''s partial rows that is current',
    rows               UInt64 COMMENT 'rows of the model in the bucket (inferences FINAL, not shadow) when it was aggregated',
    newest_ingested_at DateTime64(3, 'UTC') COMMENT 'their newest ingested_at: a later one means late events',
    computed_at        DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'when the bucket was aggregated'
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (model_id, profile_key, bucket_seconds, bucket_start)
TTL toDateTime(bucket_start) + INTERVAL {{.RetentionFor "window_partial_buckets"}} DAY
COMMENT 'Manifest of the incremental window partials: the current version of each bucket (use FINAL)';

CREATE TABLE IF NOT EXISTS window_partial_bins
(
    model_id       LowCardinality(String) COMMENT 'the model',
    profile_key    UInt64 COMMENT 'window_partial_buckets.profile_key',
    bucket_start   DateTime64(3, 'UTC') COMMENT 'window_partial_buckets.bucket_start',
    bucket_seconds UInt32 COMMENT 'window_partial_buckets.bucket_seconds',
    version        UInt64 COMMENT 'window_partial_buckets.version',
    feature        LowCardinality(String) COMMENT 'numeric feature of the pinned reference (__score for the prediction score)',
    bin            UInt32 COMMENT 'bin on the reference edges: the number of edges at or below the value',
    n              UInt64 COMMENT 'values of the feature in the bucket and bin',
    out_of_range   UInt64 COMMENT 'those outside the reference range',
    sample_bound   Float64 COMMENT 'the bucket keeps the values whose event hash is below this (1: all)',
    sample_h       Array(Float64) COMMENT 'event hashes (cityHash64(event_id) / 2^64) of the kept values',
    sample_v       Array(Float64) COMMENT 'the kept values, aligned with sample_h'
)
ENGINE = MergeTree
ORDER BY (model_id, profile_key, bucket_seconds, bucket_start, version, feature, bin)
TTL toDateTime(bucket_start) + INTERVAL {{.RetentionFor "window_partial_bins"}} DAY
COMMENT 'Incremental window partials: numeric bin counts, out-of-range counts and sampled values per bucket';

CREATE TABLE IF NOT EXISTS window_partial_categories
(
    model_id       LowCardinality(String) COMMENT 'the model',
    profile_key    UInt64 COMMENT 'window_partial_buckets.profile_key',
    bucket_start   DateTime64(3, 'UTC') COMMENT 'window_partial_buckets.bucket_start',
    bucket_seconds UInt32 COMMENT 'window_partial_buckets.bucket_seconds',
    version        UInt64 COMMENT 'window_partial_buckets.version',
    feature        LowCardinality(String) COMMENT 'categorical feature (__label for the prediction label)',
    category       String COMMENT 'the category; every category of the bucket, uncapped',
    n              UInt64 COMMENT 'rows of the bucket with the category'
)
ENGINE = MergeTree
ORDER BY (model_id, profile_key, bucket_seconds, bucket_start, version, feature, category)
TTL toDateTime(bucket_start) + INTERVAL {{.RetentionFor "window_partial_categories"}} DAY
COMMENT 'Incremental window partials: category counts per bucket';

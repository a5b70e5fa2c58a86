-- The incremental windows' manifest records, per bucket, the rows written
-- into it as the inferences_per_minute rollup counts them (every insert,
-- duplicates and shadow rows included) when it was aggregated. A step
-- reads the rollup for the window's buckets and counts rows under FINAL
-- only in the buckets whose written count moved (the new bucket, late
-- events, a replay), instead of in the whole window (docs/monitor.md,
-- "Incremental windows"). 0 for buckets aggregated before this migration:
-- they are counted once more and then compared by the rollup.
ALTER TABLE window_partial_buckets
    ADD COLUMN IF NOT EXISTS written UInt64 DEFAULT 0 COMMENT 'rows written into the bucket (inferences_per_minute.events summed) when it was aggregated: a step counts again only buckets whose written rows moved' AFTER newest_ingested_at;

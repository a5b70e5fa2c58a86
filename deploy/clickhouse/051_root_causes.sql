-- The root cause of a drifted feature: per window, feature and slice of
-- one segment key, the slice's contribution to the population's PSI,
-- split into mix shift (its share of the traffic moved) and within-slice
-- shift (its own distribution moved); the contributions of one key's
-- slices, (rest) included, sum to population_psi (see docs/monitor.md,
-- "Root cause"). A window re-evaluated writes new rows with a later
-- computed_at; the newest wins.
CREATE TABLE IF NOT EXISTS root_causes
(
    model_id        LowCardinality(String) COMMENT 'model',
    window_start    DateTime64(3, 'UTC') COMMENT 'start of the current window (event time, inclusive)',
    window_end      DateTime64(3, 'UTC') COMMENT 'end of the current window (event time, exclusive)',
    feature         LowCardinality(String) COMMENT 'the drifted feature of the population',
    segment_key     LowCardinality(String) COMMENT 'the segment key (or segment_by feature) whose slices are ranked',
    segment         LowCardinality(String) COMMENT 'the slice, key=value, or (rest) for the rows of no slice and the smoothing',
    rank            UInt16 COMMENT '1 for the largest |total| of the key',
    kind            LowCardinality(String) COMMENT 'mix or within: the larger part in absolute value',
    mix             Float64 COMMENT 'mix-shift part of the contribution',
    within          Float64 COMMENT 'within-slice part of the contribution',
    total           Float64 COMMENT 'mix + within',
    reference_share Float64 COMMENT 'the slice''s share of the reference window''s rows',
    current_share   Float64 COMMENT 'the slice''s share of the current window''s rows',
    population_psi  Float64 COMMENT 'the population''s PSI of the feature, the sum of the key''s totals',
    computed_at     DateTime64(3, 'UTC') COMMENT 'when monitor computed this row'
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(window_start)
ORDER BY (model_id, window_start, window_end, feature, segment_key, segment)
TTL toDateTime(window_start) + INTERVAL {{.RollupRetentionFor "root_causes"}} DAY
COMMENT 'Slices ranked by their contribution to a drifted feature''s PSI, mix and within-slice parts';

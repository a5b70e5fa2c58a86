-- The slice a performance result is for: '' for the whole population
-- (every row written before this migration), 'key=value' for a slice of
-- the traffic, as drift_results.segment (migration 050). The view
-- performance_latest keeps the slices apart; every query that reads the
-- population keeps segment = ''.
ALTER TABLE performance_results
    ADD COLUMN IF NOT EXISTS segment LowCardinality(String) COMMENT 'slice of the traffic: empty for the whole population, key=value for a slice (region=eu)' AFTER model_version;

CREATE OR REPLACE VIEW performance_latest
AS SELECT
    model_id,
    model_version,
    segment,
    window_start,
    window_end,
    metric,
    argMax(v, at) AS value,
    argMax(n, at) AS samples,
    argMax(coverage, at) AS label_coverage,
    max(at) AS computed_at,
    count() AS computations
FROM
(
    SELECT model_id, model_version, segment, window_start, window_end, metric, value AS v, samples AS n, label_coverage AS coverage, computed_at AS at
    FROM performance_results
)
GROUP BY model_id, model_version, segment, window_start, window_end, metric;

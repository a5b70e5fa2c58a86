-- The slice a drift result is for: '' for the whole population (every row
-- written before this migration), 'key=value' for a slice of the traffic
-- (a key of the inferences' segment map or a model's segment_by feature,
-- for example 'region=eu'; 'region=other' folds the values beyond
-- max_segments). The slice is the last column of the sorting key, so a
-- slice's rows never replace the population's. Every query that reads
-- the population keeps segment = ''.
ALTER TABLE drift_results
    ADD COLUMN IF NOT EXISTS segment LowCardinality(String) COMMENT 'slice of the traffic: empty for the whole population, key=value for a slice (region=eu)' AFTER feature,
    MODIFY ORDER BY (model_id, window_start, window_end, feature, method, model_version, segment);

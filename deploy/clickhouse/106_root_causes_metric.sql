-- What a root cause decomposes: '' for a drifted feature's PSI (every row
-- written before this migration), or a performance metric (accuracy,
-- log_loss, brier, mae, rmse) for a performance drop, whose rows have an
-- empty feature and hold the population's change of the metric (current
-- − reference) in population_psi (see docs/monitor.md, "Root cause"). The
-- metric is the last column of the sorting key, so a performance row never
-- replaces a drift row.
ALTER TABLE root_causes
    ADD COLUMN IF NOT EXISTS metric LowCardinality(String) COMMENT 'empty for a drifted feature''s PSI, else the performance metric whose change is decomposed (population_psi then holds that change)' AFTER feature,
    MODIFY ORDER BY (model_id, window_start, window_end, feature, segment_key, segment, metric);

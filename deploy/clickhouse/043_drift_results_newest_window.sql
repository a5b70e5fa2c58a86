-- Each model's newest window, per method, kept by ClickHouse beside the
-- rows as they are written (an aggregate projection), so the monitor's
-- overview (GET /api/v1/models) finds every model's newest verdict window
-- by reading a few rows per part instead of every window of the lookback:
-- drift_results grows by one window per model and step (1,440 a day at
-- the default step of 1m). A ReplacingMergeTree keeps a projection only
-- with deduplicate_merge_projection_mode rebuild (merges rebuild it).
-- Parts written before this migration have no projection and are read as
-- before; `ALTER TABLE drift_results MATERIALIZE PROJECTION newest_window`
-- builds it for them (a mutation: run it by hand when the load allows).
ALTER TABLE drift_results MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild';

ALTER TABLE drift_results
    ADD PROJECTION IF NOT EXISTS newest_window (SELECT model_id, method, max(window_end), argMax(window_start, window_end) GROUP BY model_id, method);

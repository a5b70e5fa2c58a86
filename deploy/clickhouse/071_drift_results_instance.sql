-- The monitor instance that computed a result (instance_id), so that who
-- evaluated a window can be told when several monitors share the models.
-- Empty on rows written before this migration.
ALTER TABLE drift_results
    ADD COLUMN IF NOT EXISTS instance_id LowCardinality(String) DEFAULT '' COMMENT 'the monitor instance that computed the row (instance_id); empty on rows written before migration 071' AFTER computed_at;

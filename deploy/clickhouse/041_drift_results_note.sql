-- Why a result is what it is when its status alone does not say: for a
-- method skipped on a high-cardinality categorical feature (status
-- skipped), the feature's distinct values and how little of the rows its
-- most frequent categories hold. Empty otherwise, and on rows written
-- before this migration.
ALTER TABLE drift_results
    ADD COLUMN IF NOT EXISTS note String DEFAULT '' COMMENT 'why the result is what it is when the status alone does not say (for example why a method was skipped); usually empty' AFTER status;

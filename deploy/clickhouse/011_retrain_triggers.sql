-- Every retrain trigger monitor (or a person, through the API) published.
-- dedup_key makes publishing idempotent: a restarted monitor that decides
-- the same thing again finds the key here and does not publish twice.
CREATE TABLE IF NOT EXISTS retrain_triggers
(
    trigger_id      String COMMENT 'unique id of the trigger',
    dedup_key       String COMMENT 'same decision → same key (policy, model, window)',
    model_id        LowCardinality(String) COMMENT 'model to retrain',
    model_version   LowCardinality(String) COMMENT 'version that decayed',
    reason          LowCardinality(String) COMMENT 'feature_drift, prediction_drift, performance, business, data_quality, schedule or manual',
    policy          LowCardinality(String) COMMENT 'name of the policy that fired',
    window_start    DateTime64(3, 'UTC') COMMENT 'current window start',
    window_end      DateTime64(3, 'UTC') COMMENT 'current window end',
    reference_start DateTime64(3, 'UTC') COMMENT 'reference window start',
    reference_end   DateTime64(3, 'UTC') COMMENT 'reference window end',
    evidence        String COMMENT 'JSON list of {check, feature, method, value, threshold, p_value, samples}',
    created_at      DateTime64(3, 'UTC') COMMENT 'when the trigger was decided'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(created_at)
ORDER BY (model_id, dedup_key)
COMMENT 'Retrain triggers with their evidence';

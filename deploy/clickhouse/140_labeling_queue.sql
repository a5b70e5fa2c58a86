-- The labeling queue (docs/labeling.md): one row per inference the monitor
-- handed out for labelling, to whom, when, by which strategy and from
-- which stratum, with its inclusion probability, so that a performance
-- estimate from the labelled rows can be re-weighted. The queue leaves out
-- every prediction_id handed out within labeling.reissue_after, and every
-- one that has an outcome. Rows expire with the raw events
-- (retention_days): a handed-out row outlives its inference by nothing.
CREATE TABLE IF NOT EXISTS labeling_queue
(
    model_id              LowCardinality(String) COMMENT 'model of the inference',
    prediction_id         String COMMENT 'the inference handed out; its label comes back on the outcomes topic under this id',
    event_id              String COMMENT 'the inference event (inferences.event_id)',
    inference_timestamp   DateTime64(3, 'UTC') COMMENT 'event time of the inference',
    batch_id              String COMMENT 'the request that handed it out: every row of one answer shares it',
    assignee              String COMMENT 'who it was handed to (the request''s assignee; empty when none was given)',
    strategy              LowCardinality(String) COMMENT 'uncertainty, drift or random: how the request chose its rows',
    stratum               LowCardinality(String) COMMENT 'random (a uniform draw from the pool) or targeted (drawn with probability proportional to weight)',
    uncertainty           Float64 COMMENT 'the row''s uncertainty from 0 (confident) to 1 (at the decision threshold, or uniform class probabilities)',
    weight                Float64 COMMENT 'the row''s weight in the targeted draw: uncertainty (floored at 0.01) times drift_weight when in a drifted slice or range',
    inclusion_probability Float64 COMMENT 'probability that the request would include the row (the targeted draw''s given the other rows'' keys); a labelled row weighs 1 / inclusion_probability',
    pool_rows             UInt64 COMMENT 'candidate rows of the request: unlabelled, not shadow, not handed out within reissue_after, in the lookback',
    random_share          Float64 COMMENT 'the share of the request''s rows drawn uniformly (labeling.random_share; 1 for strategy random)',
    reasons               Array(String) COMMENT 'why the row was chosen: random, uncertainty 0.93, slice region=eu, range f3 [1.28, +inf)',
    handed_out_at         DateTime64(3, 'UTC') COMMENT 'when the monitor handed it out'
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(handed_out_at)
ORDER BY (model_id, handed_out_at, prediction_id)
TTL toDateTime(handed_out_at) + INTERVAL {{.RetentionFor "labeling_queue"}} DAY
COMMENT 'Inferences handed out for labelling: to whom, when, strategy, stratum and inclusion probability';

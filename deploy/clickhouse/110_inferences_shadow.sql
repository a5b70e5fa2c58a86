-- Shadow scoring (issue 16, item 3): serve may score a model's newest
-- challenger alongside the champion and log the challenger's prediction as
-- an inference event of its own (its own event_id and model_version, the
-- champion's prediction_id) marked "shadow": true. The champion's
-- monitoring reads shadow = false; the shadow comparison reads both.
ALTER TABLE inferences
    ADD COLUMN IF NOT EXISTS shadow Bool DEFAULT false COMMENT 'true for a shadow prediction: scored by a challenger alongside the version that answered, never returned to the client' AFTER latency_ms;

-- inferences_labeled gains the marker, so that performance queries can keep
-- the champion's rows (shadow = 0) and compare versions on the same labels.
CREATE OR REPLACE VIEW inferences_labeled
AS SELECT
    i.event_id AS event_id,
    i.model_id AS model_id,
    i.model_version AS model_version,
    i.prediction_id AS prediction_id,
    i.timestamp AS timestamp,
    i.features_numeric AS features_numeric,
    i.features_categorical AS features_categorical,
    i.prediction_label AS prediction_label,
    i.prediction_score AS prediction_score,
    i.prediction_value AS prediction_value,
    i.prediction_probabilities AS prediction_probabilities,
    i.segment AS segment,
    o.actual_label AS actual_label,
    o.actual_value AS actual_value,
    o.label_timestamp AS label_timestamp,
    dateDiff('millisecond', i.timestamp, o.label_timestamp) AS label_delay_ms,
    i.shadow AS shadow
FROM inferences AS i FINAL
INNER JOIN
(
    SELECT
        model_id,
        prediction_id,
        argMax(actual_label, timestamp) AS actual_label,
        argMax(actual_value, timestamp) AS actual_value,
        max(timestamp) AS label_timestamp
    FROM outcomes FINAL
    GROUP BY model_id, prediction_id
) AS o ON i.model_id = o.model_id AND i.prediction_id = o.prediction_id;

-- Inferences with their ground truth: each inference (deduplicated) joined
-- to the newest outcome for its (model_id, prediction_id). Inferences whose
-- label has not arrived are left out; label coverage is
-- count(inferences_labeled) / count(inferences FINAL) over the same window.
CREATE VIEW IF NOT EXISTS inferences_labeled
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
    dateDiff('millisecond', i.timestamp, o.label_timestamp) AS label_delay_ms
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

-- Feature importance of each model version (issue 15, item 3): the share of
-- each input feature in the model's permutation importance on the
-- evaluation window, and for the built-in linear models its share of the
-- absolute standardised coefficients, each normalised to sum to 1 (see
-- docs/monitor.md, "Importance-weighted drift"). Empty on versions
-- registered before this migration and when it could not be computed.
ALTER TABLE models
    ADD COLUMN IF NOT EXISTS feature_importance Map(String, Float64) COMMENT 'normalised permutation importance per feature on the evaluation window (sums to 1; empty when unknown)' AFTER champion_metrics,
    ADD COLUMN IF NOT EXISTS coefficient_importance Map(String, Float64) COMMENT 'built-in models: normalised absolute standardised coefficients per feature (sums to 1; empty otherwise)' AFTER feature_importance;

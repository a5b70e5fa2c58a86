-- What the drift statistics of a window were computed from: per model,
-- window and feature, the reference and current counts of each bin of a
-- numeric feature (the reference-quantile bins of PSI, Jensen-Shannon and
-- Hellinger) or of each category of a categorical one (at most
-- max_categories, the rest summed into __other), with the rows missing the
-- feature. Written by the evaluation that writes the window's drift_results
-- rows, with the same window columns and computed_at. One row per feature
-- holding aligned arrays, so a window re-evaluated later replaces the whole
-- distribution (read with FINAL); the view drift_distribution_bins below
-- has one row per bin or category.
CREATE TABLE IF NOT EXISTS drift_distributions
(
    model_id          LowCardinality(String) COMMENT 'model',
    window_start      DateTime64(3, 'UTC') COMMENT 'start of the current window (event time, inclusive), as in drift_results',
    window_end        DateTime64(3, 'UTC') COMMENT 'end of the current window (event time, exclusive), as in drift_results',
    reference_start   DateTime64(3, 'UTC') COMMENT 'start of the reference window',
    reference_end     DateTime64(3, 'UTC') COMMENT 'end of the reference window',
    reference_kind    LowCardinality(String) COMMENT 'how the reference was chosen: growing, pinned, set, previous or fixed',
    feature           LowCardinality(String) COMMENT 'feature name; __score and __label for the prediction',
    kind              LowCardinality(String) COMMENT 'numeric or categorical',
    reference_rows    UInt64 COMMENT 'rows of the model in the reference window',
    current_rows      UInt64 COMMENT 'rows of the model in the current window',
    reference_missing UInt64 COMMENT 'reference rows without the feature (null or absent)',
    current_missing   UInt64 COMMENT 'current rows without the feature',
    bin_lower         Array(Float64) COMMENT 'numeric: each bin''s lower edge (inclusive), -inf for the first; empty for categorical',
    bin_upper         Array(Float64) COMMENT 'numeric: each bin''s upper edge (exclusive), +inf for the last; empty for categorical',
    categories        Array(String) COMMENT 'categorical: the categories, most frequent in both windows first, __other last when folded; empty for numeric',
    is_new            Array(Bool) COMMENT 'categorical: the category has current rows and none in the reference; empty for numeric',
    reference_counts  Array(UInt64) COMMENT 'reference rows per bin or category (aligned with bin_lower or categories)',
    current_counts    Array(UInt64) COMMENT 'current rows per bin or category',
    reference_min     Float64 COMMENT 'numeric: smallest reference value (nan for categorical)',
    reference_max     Float64 COMMENT 'numeric: largest reference value (nan for categorical)',
    current_out_of_range UInt64 COMMENT 'numeric: current rows outside [reference_min, reference_max]',
    distinct_values   UInt64 COMMENT 'categorical: distinct values in the two windows (an estimate against a pinned folded reference)',
    folded            Bool COMMENT 'categorical: more distinct values than max_categories, the rest are in __other',
    computed_at       DateTime64(3, 'UTC') COMMENT 'when monitor computed this row; the newest per window and feature wins'
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(window_start)
ORDER BY (model_id, window_start, window_end, feature)
TTL toDateTime(window_start) + INTERVAL {{.RollupRetentionFor "drift_distributions"}} DAY
COMMENT 'Reference and current bin and category counts per model, window and feature (use FINAL)';

-- drift_distributions with one row per bin (numeric) or category
-- (categorical), newest computation only: what a histogram or a bar chart
-- is drawn from.
CREATE VIEW IF NOT EXISTS drift_distribution_bins
AS SELECT
    model_id,
    window_start,
    window_end,
    feature,
    kind,
    toUInt32(i - 1) AS bin,
    if(kind = 'numeric', bin_lower[i], nan) AS lower,
    if(kind = 'numeric', bin_upper[i], nan) AS upper,
    if(kind = 'categorical', categories[i], '') AS category,
    kind = 'categorical' AND is_new[i] AS new_category,
    reference_counts[i] AS reference_count,
    current_counts[i] AS current_count,
    reference_missing,
    current_missing,
    computed_at
FROM drift_distributions FINAL
ARRAY JOIN arrayEnumerate(reference_counts) AS i;

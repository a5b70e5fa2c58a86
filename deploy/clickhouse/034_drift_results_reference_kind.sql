-- How each window's reference was chosen: growing (the model had less
-- than a full reference period of data, so the reference was all of its
-- data before the window), pinned (its first reference period, complete),
-- previous (the window before) or fixed (configured per model). Rows
-- written before this migration read ''.
ALTER TABLE drift_results
    ADD COLUMN IF NOT EXISTS reference_kind LowCardinality(String) DEFAULT '' COMMENT 'how the reference was chosen: growing, pinned, previous or fixed' AFTER reference_end;

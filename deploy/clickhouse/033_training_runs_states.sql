-- A run's states as columns rather than text to match: interrupted (the
-- run was cut short by a crash, kill or shutdown and its trigger may run
-- it again) was a prefix of decision_reason, and events_published (the
-- run's model events reached Kafka) was the presence of a "publish" key in
-- step_seconds. Rows written before this migration read false in both;
-- the trainer still recognises their old forms (see retrain.Run).
ALTER TABLE training_runs
    ADD COLUMN IF NOT EXISTS interrupted Bool DEFAULT false COMMENT 'the run was cut short (crash, kill or shutdown); its trigger may run it again, up to the attempt limit',
    ADD COLUMN IF NOT EXISTS events_published Bool DEFAULT false COMMENT 'the run''s model events were published to model-events';

-- Monitor instances sharing the models (docs/monitor.md "Many monitors").
-- Every monitor writes its row in monitor_instances every quarter of its
-- lease (lease: 1 minute by default), stamped with ClickHouse's clock so
-- that monitors on different hosts compare one clock; an instance whose
-- heartbeat is older than the lease, or that wrote stopped on its way out,
-- is no longer live. The live instances split the models by rendezvous
-- hashing, and monitor_leases guards the hand-over: an instance evaluates a
-- model only while it holds the model's earliest live tenure, renewed with
-- its heartbeats. Rows expire with the raw events (retention_days).
CREATE TABLE IF NOT EXISTS monitor_instances
(
    instance_id  String COMMENT 'the monitor instance (instance_id: host name and pid by default)',
    stopped      Bool COMMENT 'the instance stopped cleanly; its models are taken over at once',
    heartbeat_at DateTime64(3, 'UTC') COMMENT 'last heartbeat, by ClickHouse''s clock'
)
ENGINE = ReplacingMergeTree(heartbeat_at)
ORDER BY instance_id
TTL toDateTime(heartbeat_at) + INTERVAL {{.RetentionFor "monitor_instances"}} DAY
COMMENT 'Monitor instances and their heartbeats: who is live to share the models (use FINAL)';

CREATE TABLE IF NOT EXISTS monitor_leases
(
    model_id     LowCardinality(String) COMMENT 'the model',
    owner        String COMMENT 'the monitor instance holding or claiming it (monitor_instances.instance_id)',
    claimed_at   DateTime64(3, 'UTC') COMMENT 'when this tenure began (ClickHouse''s clock); of the live tenures of a model the earliest holds it',
    released     Bool COMMENT 'the owner gave the model up (to the instance it hashes to now, or on shutdown)',
    heartbeat_at DateTime64(3, 'UTC') COMMENT 'last renewal, by ClickHouse''s clock'
)
ENGINE = ReplacingMergeTree(heartbeat_at)
ORDER BY (model_id, owner)
TTL toDateTime(heartbeat_at) + INTERVAL {{.RetentionFor "monitor_leases"}} DAY
COMMENT 'Which monitor instance evaluates each model: tenures, renewals and releases (use FINAL)';

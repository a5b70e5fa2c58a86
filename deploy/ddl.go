package deploy

import "embed"

// ClickHouseDDL holds deploy/clickhouse/*.sql, the statements that create
// driftwatch's tables and views, applied in file-name order by
// internal/migration. They are text/template files over migration.Config:
// a table's TTL is {{.RetentionFor "table"}} days (raw events, default
// retention_days) or {{.RollupRetentionFor "table"}} (rollups and results,
// default rollup_retention_days), so retention: {table: days} can set it.
//
//go:embed clickhouse/*.sql
var ClickHouseDDL embed.FS

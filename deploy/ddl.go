package deploy

import "embed"

// ClickHouseDDL holds deploy/clickhouse/*.sql, the statements that create
// driftwatch's tables and views, applied in file-name order by
// internal/migration. They are text/template files: {{.RetentionDays}} and
// {{.RollupRetentionDays}} are filled in from the configuration.
//
//go:embed clickhouse/*.sql
var ClickHouseDDL embed.FS

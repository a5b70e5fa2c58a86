package service

import (
	"context"
	"log/slog"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/migration"
)

// OpenClickHouse connects to ClickHouse and applies the migrations, waiting
// (WaitFor) while the server is still starting: what every service does
// before its work.
func OpenClickHouse(ctx context.Context, log *slog.Logger, c config.ClickHouse, opts migration.Config) (driver.Conn, error) {
	var conn driver.Conn
	err := WaitFor(ctx, log, "connect to ClickHouse "+chclient.Redact(c.ClickHouseURL), func(ctx context.Context) (err error) {
		conn, err = migration.Open(ctx, chclient.FromConfig(c), opts)
		return err
	})
	return conn, err
}

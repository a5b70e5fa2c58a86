// Package testdb gives a test a fresh ClickHouse database on the shared
// test server (DRIFTWATCH_TEST_CLICKHOUSE_URL), with driftwatch's tables, dropped
// when the test ends.
package testdb

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/internal/migration"
	"github.com/driftwatch/driftwatch/internal/testenv"
)

// Open creates the database <prefix>_<unique>, applies the migrations and
// returns a connection to it and its name. Without a test server it skips
// the test (fails it under CI=true), as testenv does.
func Open(t testing.TB, prefix string) (driver.Conn, string) {
	t.Helper()
	conn, db := openEmpty(t, prefix)
	if err := migration.Apply(context.Background(), conn, migration.DefaultConfig()); err != nil {
		t.Fatalf("migrate test database %s: %v", db, err)
	}
	return conn, db
}

// openEmpty creates the database <prefix>_<unique>, dropped when the test
// ends, without tables.
func openEmpty(t testing.TB, prefix string) (driver.Conn, string) {
	t.Helper()
	ctx := context.Background()
	db := prefix + "_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	conn, err := chclient.Open(ctx, chclient.Config{URL: URL(t, db)}, true)
	if err != nil {
		t.Fatalf("open test database %s: %v", db, err)
	}
	t.Cleanup(func() {
		conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+chsql.Ident(db))
		conn.Close()
	})
	return conn, db
}

// URL is the test server's URL of database db (for a service started by
// the test).
func URL(t testing.TB, db string) string {
	t.Helper()
	base := testenv.ClickHouseURL(t)
	return base[:strings.LastIndex(base, "/")] + "/" + db
}

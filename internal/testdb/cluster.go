package testdb

import (
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/driftwatch/driftwatch/internal/migration"
)

// Cluster is the cluster name the one-shard helpers render the cluster DDL
// for (clickhouse_cluster).
const Cluster = "dw"

// OneShard turns a statement of the cluster DDL (clickhouse_cluster
// Cluster) into what a one-shard, one-replica cluster amounts to on a
// server without Keeper or remote shards (the embedded engine): no ON
// CLUSTER, each Replicated engine its plain family with the same
// arguments, and each Distributed table a Merge table over the same local
// table (a table that forwards reads to <table>_local, as a Distributed
// one does with one shard, and, like it, takes no DELETE).
func OneShard(sql string) string {
	sql = strings.ReplaceAll(sql, " ON CLUSTER "+Cluster, "")
	sql = replicated.ReplaceAllString(sql, "${1}(")
	sql = strings.ReplaceAll(sql, "(, ", "(")
	sql = strings.ReplaceAll(sql, "replicated_deduplication_window", "non_replicated_deduplication_window")
	return distributed.ReplaceAllString(sql, "ENGINE = Merge(currentDatabase(), '^${1}$$')")
}

var (
	replicated  = regexp.MustCompile(`Replicated(\w*MergeTree)\('[^']*', '\{replica\}'`)
	distributed = regexp.MustCompile(`ENGINE = Distributed\(` + Cluster + `, currentDatabase\(\), (\w+), cityHash64\(\w+\)\)`)
)

// OpenOneShard is Open with the cluster DDL made one-shard (OneShard):
// <table>_local holds the rows, <table> reads them. The connection runs
// every statement with OneShard's ON CLUSTER removed (see OneShardConn).
func OpenOneShard(t testing.TB, prefix string) (*OneShardConn, string) {
	t.Helper()
	conn, db := openEmpty(t, prefix)
	cfg := migration.DefaultConfig()
	cfg.Cluster = Cluster
	stmts, err := migration.Statements(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stmts {
		if err := conn.Exec(context.Background(), OneShard(s.SQL)); err != nil {
			t.Fatalf("%s: %v\n%s", s.File, err, OneShard(s.SQL))
		}
	}
	return &OneShardConn{Conn: conn}, db
}

// OneShardConn is a connection to a one-shard database (OpenOneShard)
// that runs statements written for the cluster: it drops their ON CLUSTER
// (the engine has no cluster to send them to) and records them as given,
// for a test to check what a cluster would have been sent.
type OneShardConn struct {
	driver.Conn
	mu    sync.Mutex
	execs []string
}

func (c *OneShardConn) Exec(ctx context.Context, sql string, args ...any) error {
	c.mu.Lock()
	c.execs = append(c.execs, sql)
	c.mu.Unlock()
	return c.Conn.Exec(ctx, OneShard(sql), args...)
}

// Execs returns the statements Exec was given, in order.
func (c *OneShardConn) Execs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.execs...)
}

package bench

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/internal/migration"
	"github.com/driftwatch/driftwatch/internal/testcheck"
	"github.com/driftwatch/driftwatch/internal/testdb"
	"github.com/driftwatch/driftwatch/internal/testenv"
	"github.com/driftwatch/driftwatch/monitor/policy"
	"github.com/driftwatch/driftwatch/monitor/window"
)

// TestClusterTablesServeTheMonitorsQueries applies the cluster DDL, made
// one-shard (testdb.OneShard), to a database of the real engine: every statement
// runs, so the local tables, the proxies under the original names, the
// materialized views between local tables and the views over the proxies
// fit together. It then loads the same rows into a single-server database
// (into inferences) and into the cluster one (into inferences_local, as a
// Distributed insert lands them) and runs the monitor's pushed-down window
// aggregation and its verdict against both, unchanged: the results agree,
// and the rollup its materialized view kept counts every row.
func TestClusterTablesServeTheMonitorsQueries(t *testing.T) {
	base := testenv.ClickHouseURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	suffix := fmt.Sprintf("%d", time.Now().UnixNano())
	open := func(db string) driver.Conn {
		u, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		u.Path = "/" + db
		conn, err := chclient.Open(ctx, chclient.Config{URL: u.String()}, true)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+chsql.Ident(db))
			conn.Close()
		})
		return conn
	}
	single, clustered := open("cluster_single_"+suffix), open("cluster_oneshard_"+suffix)
	if err := migration.Apply(ctx, single, migration.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	cfg := migration.DefaultConfig()
	cfg.Cluster = "dw"
	stmts, err := migration.Statements(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stmts {
		sql := testdb.OneShard(s.SQL)
		if strings.Contains(sql, "Replicated") || strings.Contains(sql, "Distributed") || strings.Contains(sql, "ON CLUSTER") {
			t.Fatalf("%s: not made one-shard: %s", s.File, sql)
		}
		if err := clustered.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v\n%s", s.File, err, sql)
		}
	}

	// Every name the single server has, the cluster database has too: a
	// proxy for each table, the same views.
	names := func(conn driver.Conn) map[string]string {
		rows, err := conn.Query(ctx, "SELECT name, engine FROM system.tables WHERE database = currentDatabase()")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]string{}
		for rows.Next() {
			var n, e string
			if err := rows.Scan(&n, &e); err != nil {
				t.Fatal(err)
			}
			out[n] = e
		}
		return out
	}
	one, many := names(single), names(clustered)
	for n, e := range one {
		switch got := many[n]; {
		case strings.HasSuffix(e, "MergeTree") && got != "Merge":
			t.Errorf("%s (%s on one server) is %q in the cluster database, want the proxy of %s_local", n, e, got, n)
		case !strings.HasSuffix(e, "MergeTree") && got != e:
			t.Errorf("%s (%s on one server) is %q in the cluster database", n, e, got)
		}
		if strings.HasSuffix(e, "MergeTree") && many[n+"_local"] != e {
			t.Errorf("%s_local is %q, want %s", n, many[n+"_local"], e)
		}
	}

	const rows = 20000
	// Within the retention, as the benchmark's rows (older ones expire).
	t0 := time.Now().UTC().Truncate(24 * time.Hour).Add(-16 * time.Hour)
	load := benchDataSQL(rows, 6, 3, t0)
	if err := single.Exec(ctx, load); err != nil {
		t.Fatal(err)
	}
	const into = "INSERT INTO inferences ("
	if !strings.Contains(load, into) {
		t.Fatalf("the load SQL has no %q", into)
	}
	if err := clustered.Exec(ctx, strings.Replace(load, into, "INSERT INTO inferences_local (", 1)); err != nil {
		t.Fatal(err)
	}

	ref := window.Span{Start: t0, End: t0.Add(time.Hour)}
	cur := window.Span{Start: t0.Add(time.Hour), End: t0.Add(2 * time.Hour)}
	opts := window.Options{SampleCap: 5000, Samples: true}
	var verdicts [2]policy.Verdict
	for i, conn := range []driver.Conn{single, clustered} {
		snap, err := window.Compute(ctx, conn, benchModel, ref, cur, opts)
		if err != nil {
			t.Fatalf("window.Compute on the %s database: %v", []string{"single-server", "cluster"}[i], err)
		}
		verdicts[i] = policy.Evaluate(snap, policy.Default(), nil)
	}
	a, b := verdicts[0], verdicts[1]
	if len(a.Rows) < 6*2 {
		t.Fatalf("only %d verdict rows on one server", len(a.Rows))
	}
	if len(a.Rows) != len(b.Rows) {
		t.Fatalf("%d verdict rows on one server, %d on the cluster tables", len(a.Rows), len(b.Rows))
	}
	same := func(x, y float64) bool { return math.IsNaN(x) && math.IsNaN(y) || testcheck.WithinScaled(x, y, 1e-9) }
	for i := range a.Rows {
		x, y := a.Rows[i], b.Rows[i]
		if x.Feature != y.Feature || x.Method != y.Method || x.Status != y.Status || x.Drifted != y.Drifted ||
			x.Samples != y.Samples || x.ReferenceSamples != y.ReferenceSamples || !same(x.Value, y.Value) || !same(x.PValue, y.PValue) {
			t.Errorf("row %d: one server %+v, cluster tables %+v", i, x, y)
		}
	}
	if !slices.Equal(a.Drifted, b.Drifted) || len(a.Drifted) == 0 {
		t.Errorf("drifted: one server %v, cluster tables %v (the load shifts some features)", a.Drifted, b.Drifted)
	}

	// The rollup's materialized view (inferences_local → inferences_per_minute_local)
	// counted every row, read back through the proxy.
	var events uint64
	if err := clustered.QueryRow(ctx, "SELECT sum(events) FROM inferences_per_minute").Scan(&events); err != nil {
		t.Fatal(err)
	}
	if events != 2*rows {
		t.Errorf("inferences_per_minute counts %d events, want %d", events, 2*rows)
	}
	t.Logf("%d cluster statements ran one-shard; %d verdict rows agree, drifted %v", len(stmts), len(a.Rows), a.Drifted)
}

package migration

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/internal/testenv"
)

// schemaObjects is what a rendering of the DDL creates, by kind.
type schemaObjects struct {
	tables  map[string]string // MergeTree-family table → its whole CREATE
	dist    map[string]string // Distributed table → its CREATE
	views   map[string]string // plain view → its SELECT (the text after the name line)
	mvs     map[string]string // materialized view → its CREATE
	engines map[string]string // table → its ENGINE line
}

var (
	reCreateTable = regexp.MustCompile(`^CREATE TABLE IF NOT EXISTS (\w+)`)
	reView        = regexp.MustCompile(`^CREATE (?:OR REPLACE VIEW|VIEW IF NOT EXISTS) (\w+)(?: ON CLUSTER \w+)?\n`)
	reMV          = regexp.MustCompile(`^CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+)`)
	reEngine      = regexp.MustCompile(`(?m)^ENGINE = .*$`)
)

func objects(t *testing.T, stmts []Statement) schemaObjects {
	t.Helper()
	o := schemaObjects{tables: map[string]string{}, dist: map[string]string{}, views: map[string]string{}, mvs: map[string]string{}, engines: map[string]string{}}
	for _, s := range stmts {
		switch {
		case reCreateTable.MatchString(s.SQL):
			name := reCreateTable.FindStringSubmatch(s.SQL)[1]
			eng := reEngine.FindString(s.SQL)
			o.engines[name] = eng
			if strings.Contains(eng, "Distributed(") {
				o.dist[name] = s.SQL
			} else {
				o.tables[name] = s.SQL
			}
		case reView.MatchString(s.SQL):
			m := reView.FindStringSubmatch(s.SQL)
			o.views[m[1]] = strings.TrimSpace(s.SQL[len(m[0]):]) // a later CREATE OR REPLACE wins, as on the server
		case reMV.MatchString(s.SQL):
			o.mvs[reMV.FindStringSubmatch(s.SQL)[1]] = s.SQL
		}
	}
	return o
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestClusterDDL renders the DDL with clickhouse_cluster and checks it
// against the single-server rendering, object by object.
func TestClusterDDL(t *testing.T) {
	single, err := Statements(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Cluster = "dw"
	clustered, err := Statements(cfg)
	if err != nil {
		t.Fatal(err)
	}
	one, many := objects(t, single), objects(t, clustered)

	t.Run("every statement runs ON CLUSTER", func(t *testing.T) {
		for _, s := range clustered {
			if head := firstLine(s.SQL); !strings.HasSuffix(head, " ON CLUSTER dw") && !strings.Contains(head, " ON CLUSTER dw ") {
				t.Errorf("%s: %q is not ON CLUSTER dw", s.File, head)
			}
		}
	})

	t.Run("every MergeTree is replicated", func(t *testing.T) {
		mt := regexp.MustCompile(`\b(\w*)MergeTree\b`)
		for _, s := range clustered {
			for _, m := range mt.FindAllStringSubmatch(s.SQL, -1) {
				if !strings.HasPrefix(m[1], "Replicated") {
					t.Errorf("%s: engine %sMergeTree is not replicated in %q", s.File, m[1], firstLine(s.SQL))
				}
			}
			if strings.Contains(s.SQL, "non_replicated_deduplication_window") {
				t.Errorf("%s: %q keeps non_replicated_deduplication_window", s.File, firstLine(s.SQL))
			}
		}
	})

	t.Run("each table is a replicated local table and a Distributed one", func(t *testing.T) {
		if len(one.tables) < 15 {
			t.Fatalf("only %d MergeTree tables in the single-server DDL: %v", len(one.tables), keys(one.tables))
		}
		if len(one.dist) != 0 {
			t.Fatalf("the single-server DDL has Distributed tables: %v", keys(one.dist))
		}
		// The names every query uses are the single server's.
		if got, want := keys(many.dist), keys(one.tables); !slices.Equal(got, want) {
			t.Errorf("Distributed tables %v, want one per single-server table %v", got, want)
		}
		var wantLocal []string
		for _, name := range keys(one.tables) {
			wantLocal = append(wantLocal, name+"_local")
		}
		sort.Strings(wantLocal)
		if got := keys(many.tables); !slices.Equal(got, wantLocal) {
			t.Errorf("replicated tables %v, want %v", got, wantLocal)
		}
		family := regexp.MustCompile(`^ENGINE = (\w*MergeTree)(?:\((.*)\))?$`)
		orderCols := regexp.MustCompile(`(?m)^ORDER BY \(?([^)\n]*)\)?$`)
		for _, name := range keys(one.tables) {
			f := family.FindStringSubmatch(one.engines[name])
			if f == nil {
				t.Errorf("%s: engine %q", name, one.engines[name])
				continue
			}
			// By hand: the Keeper path, the replica macro, then the
			// engine's own arguments.
			want := fmt.Sprintf("ENGINE = Replicated%s('/clickhouse/tables/{shard}/{database}/%s_local', '{replica}'", f[1], name)
			if f[2] != "" {
				want += ", " + f[2]
			}
			want += ")"
			if got := many.engines[name+"_local"]; got != want {
				t.Errorf("%s_local: %q, want %q", name, got, want)
			}
			// The local table is the single-server table but for its
			// head, engine and dedup setting.
			strip := func(sql string) string {
				sql = reEngine.ReplaceAllString(sql, "ENGINE")
				sql = strings.ReplaceAll(sql, "non_replicated_deduplication_window", "replicated_deduplication_window")
				return sql[strings.IndexByte(sql, '\n'):]
			}
			if a, b := strip(one.tables[name]), strip(many.tables[name+"_local"]); a != b {
				t.Errorf("%s_local differs from %s beyond its head and engine:\n%s\n---\n%s", name, name, b, a)
			}
			// Sharded by model_id when the sorting key has it, else by
			// the sorting key's first column.
			cols := strings.Split(orderCols.FindStringSubmatch(one.tables[name])[1], ", ")
			key := cols[0]
			if slices.Contains(cols, "model_id") {
				key = "model_id"
			}
			wantDist := fmt.Sprintf("ENGINE = Distributed(dw, currentDatabase(), %s_local, cityHash64(%s))", name, key)
			if got := many.engines[name]; got != wantDist {
				t.Errorf("%s: %q, want %q", name, got, wantDist)
			}
			if !strings.HasPrefix(many.dist[name], fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s ON CLUSTER dw AS %s_local\n", name, name)) {
				t.Errorf("%s: %q does not take the local table's columns", name, firstLine(many.dist[name]))
			}
		}
		if got := many.engines["monitor_instances"]; !strings.HasSuffix(got, "cityHash64(instance_id))") {
			t.Errorf("monitor_instances (no model_id in its key) is %q, want sharded by instance_id", got)
		}
	})

	t.Run("views read the Distributed tables unchanged", func(t *testing.T) {
		if len(one.views) < 3 {
			t.Fatalf("only %d views: %v", len(one.views), keys(one.views))
		}
		if got, want := keys(many.views), keys(one.views); !slices.Equal(got, want) {
			t.Fatalf("views %v, want %v", got, want)
		}
		for _, v := range keys(one.views) {
			if one.views[v] != many.views[v] {
				t.Errorf("view %s changed:\n%s\n---\n%s", v, many.views[v], one.views[v])
			}
			if strings.Contains(many.views[v], "_local") {
				t.Errorf("view %s reads a local table", v)
			}
		}
	})

	t.Run("materialized views read and write local tables", func(t *testing.T) {
		if got, want := keys(many.mvs), keys(one.mvs); !slices.Equal(got, want) || len(want) < 3 {
			t.Fatalf("materialized views %v, want %v", got, want)
		}
		to := regexp.MustCompile(`\bTO (\w+)`)
		from := regexp.MustCompile(`\bFROM (\w+)`)
		for _, v := range keys(one.mvs) {
			oneTo, manyTo := to.FindStringSubmatch(one.mvs[v])[1], to.FindStringSubmatch(many.mvs[v])[1]
			oneFrom, manyFrom := from.FindStringSubmatch(one.mvs[v])[1], from.FindStringSubmatch(many.mvs[v])[1]
			if manyTo != oneTo+"_local" || manyFrom != oneFrom+"_local" {
				t.Errorf("%s: TO %s FROM %s, want TO %s_local FROM %s_local", v, manyTo, manyFrom, oneTo, oneFrom)
			}
		}
	})

	t.Run("ALTERs reach the local table, column changes the Distributed one too", func(t *testing.T) {
		alter := regexp.MustCompile(`^ALTER TABLE (\w+) ON CLUSTER dw\n`)
		got := map[string][]string{} // table → its ALTER texts, in order
		for _, s := range clustered {
			if m := alter.FindStringSubmatch(s.SQL); m != nil && !s.IsTTL() {
				got[m[1]] = append(got[m[1]], strings.TrimSpace(s.SQL[len(m[0]):]))
			}
		}
		// By hand, from 050_drift_results_segment.sql: both commands
		// to the replicated table, the column alone to the Distributed.
		seg := "ADD COLUMN IF NOT EXISTS segment LowCardinality(String) COMMENT 'slice of the traffic: empty for the whole population, key=value for a slice (region=eu)' AFTER feature"
		if !slices.Contains(got["drift_results_local"], seg+",\n    MODIFY ORDER BY (model_id, window_start, window_end, feature, method, model_version, segment)") {
			t.Errorf("drift_results_local lacks the segment column and sorting key: %q", got["drift_results_local"])
		}
		if !slices.Contains(got["drift_results"], seg) {
			t.Errorf("the Distributed drift_results lacks the segment column: %q", got["drift_results"])
		}
		for table, alters := range got {
			if strings.HasSuffix(table, "_local") {
				continue
			}
			for _, a := range alters {
				if strings.Contains(a, "ORDER BY") || strings.Contains(a, "PROJECTION") || strings.Contains(a, "SETTING") {
					t.Errorf("the Distributed %s gets %q, which only a MergeTree takes", table, a)
				}
			}
		}
	})

	t.Run("TTL updates go to the local tables", func(t *testing.T) {
		n := 0
		for _, s := range clustered {
			if !s.IsTTL() {
				continue
			}
			n++
			want := "ALTER TABLE " + s.Table + " ON CLUSTER dw MODIFY TTL "
			if !strings.HasSuffix(s.Table, "_local") || !strings.HasPrefix(s.SQL, want) {
				t.Errorf("TTL update of %s: %q, want %q…", s.Table, s.SQL, want)
			}
		}
		if n != len(RetentionTables()) {
			t.Errorf("%d TTL updates, want one per table with a TTL (%d)", n, len(RetentionTables()))
		}
	})
}

func TestClusterRejects(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Cluster = "dw; DROP"
	if _, err := Statements(cfg); err == nil || !strings.Contains(err.Error(), "clickhouse_cluster") {
		t.Errorf("cluster name with SQL in it: %v", err)
	}
	tests := []struct{ name, stmt, want string }{
		{"another engine", "CREATE TABLE IF NOT EXISTS m\n(a Int64)\nENGINE = Memory", "not of the MergeTree family"},
		{"a statement of no known shape", "DROP TABLE x", "no cluster form"},
		{"an ALTER of an unknown table", "ALTER TABLE nope ADD COLUMN a Int64", "not a MergeTree table"},
		{"a materialized view into an unknown table", "CREATE MATERIALIZED VIEW IF NOT EXISTS v TO nope AS SELECT 1", "not a MergeTree table"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := newClusterRewriter("dw").rewrite(tt.stmt); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("rewrite(%q) = %v, want an error with %q", tt.stmt, err, tt.want)
			}
		})
	}
}

// TestClusterDDLParses gives every statement of the cluster DDL to the real
// engine's parser (formatQuery; the embedded server has no cluster, Keeper
// or remote shards to run it on) and checks that what it parsed keeps ON
// CLUSTER and the replicated or Distributed engine.
func TestClusterDDLParses(t *testing.T) {
	base := testenv.ClickHouseURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := chclient.Open(ctx, chclient.Config{URL: base}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cfg := DefaultConfig()
	cfg.Cluster = "dw"
	stmts, err := Statements(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stmts {
		var formatted string
		qctx := clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters{"q": paramEscape(s.SQL)}))
		if err := conn.QueryRow(qctx, "SELECT formatQuery({q:String})").Scan(&formatted); err != nil {
			t.Errorf("%s: ClickHouse does not parse %q: %v", s.File, firstLine(s.SQL), err)
			continue
		}
		if !strings.Contains(formatted, " ON CLUSTER dw") {
			t.Errorf("%s: parsed without ON CLUSTER: %q", s.File, firstLine(formatted))
		}
		if reCreateTable.MatchString(s.SQL) && !strings.Contains(formatted, "ENGINE = Replicated") && !strings.Contains(formatted, "ENGINE = Distributed(dw, currentDatabase(), ") {
			t.Errorf("%s: %q parsed without its cluster engine:\n%s", s.File, firstLine(s.SQL), formatted)
		}
	}
	t.Logf("%d cluster statements parsed", len(stmts))
	// The check can fail: a broken statement is refused.
	var out string
	qctx := clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters{"q": paramEscape("CREATE TABLE t ON CLUSTER dw (a Int64 ENGINE = Distributed(dw)")}))
	if err := conn.QueryRow(qctx, "SELECT formatQuery({q:String})").Scan(&out); err == nil {
		t.Errorf("formatQuery accepted a statement with unbalanced parentheses: %q", out)
	}
}

// paramEscape writes s as a query parameter's value, which ClickHouse
// reads in its escaped text form (a raw newline would end the value).
func paramEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\t", `\t`).Replace(s)
}

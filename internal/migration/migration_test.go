package migration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/internal/testenv"
)

func TestSplit(t *testing.T) {
	got := Split("-- comment; with a semicolon\nCREATE TABLE a (x String COMMENT 'a;b');\n\n-- c\nCREATE VIEW v AS SELECT 1;\nSELECT 2")
	want := []string{"CREATE TABLE a (x String COMMENT 'a;b')", "CREATE VIEW v AS SELECT 1", "SELECT 2"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Split = %q, want %q", got, want)
	}
}

func TestStatementsRenderRetention(t *testing.T) {
	stmts, err := Statements(Config{RetentionDays: 7, RollupRetentionDays: 30})
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, s := range stmts {
		all.WriteString(s.SQL + "\n")
		if strings.Contains(s.SQL, "{{") {
			t.Errorf("%s: unrendered template in %q", s.File, firstLine(s.SQL))
		}
	}
	for _, want := range []string{
		"ALTER TABLE inferences MODIFY TTL toDateTime(timestamp) + INTERVAL 7 DAY",
		"ALTER TABLE inferences_per_minute MODIFY TTL minute + INTERVAL 30 DAY",
		"CREATE VIEW IF NOT EXISTS inferences_labeled",
	} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("DDL lacks %q", want)
		}
	}
	if _, err := Statements(Config{RetentionDays: 0, RollupRetentionDays: 1}); err == nil || err.Error() != "retention_days: must be from 1 to 36500, got 0" {
		t.Errorf("bad retention: %v", err)
	}
}

// TestApplyIsIdempotent applies the DDL twice to a fresh database on the
// real engine, then changes the retention and checks the TTL moved.
func TestApplyIsIdempotent(t *testing.T) {
	base := testenv.ClickHouseURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db := fmt.Sprintf("migration_test_%d", time.Now().UnixNano())
	conn, err := chclient.Open(ctx, chclient.Config{URL: withDatabase(base, db)}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	defer conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
	for i := 0; i < 2; i++ {
		if err := Apply(ctx, conn, DefaultConfig()); err != nil {
			t.Fatalf("apply #%d: %v", i+1, err)
		}
	}
	if err := Apply(ctx, conn, Config{RetentionDays: 3, RollupRetentionDays: 5}); err != nil {
		t.Fatalf("apply with new retention: %v", err)
	}
	var ddl string
	if err := conn.QueryRow(ctx, "SELECT create_table_query FROM system.tables WHERE database = currentDatabase() AND name = 'inferences'").Scan(&ddl); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ddl, "toIntervalDay(3)") {
		t.Errorf("TTL not updated: %s", ddl)
	}
	var tables []string
	rows, err := conn.Query(ctx, "SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	want := "[business_correlations business_metrics business_metrics_per_minute business_metrics_per_minute_mv dead_letters drift_distribution_bins drift_distributions drift_results inferences inferences_labeled inferences_per_minute inferences_per_minute_mv labeling_queue models monitor_instances monitor_leases outcomes outcomes_per_minute outcomes_per_minute_mv performance_latest performance_results reference_profiles retrain_triggers root_causes training_leases training_runs window_partial_bins window_partial_buckets window_partial_categories]"
	if fmt.Sprint(tables) != want {
		t.Errorf("tables = %v\nwant     %s", tables, want)
	}
}

func withDatabase(base, db string) string {
	i := strings.Index(base, "://")
	rest := base[i+3:]
	if j := strings.IndexAny(rest, "/?"); j >= 0 {
		rest = rest[:j]
	}
	return base[:i+3] + rest + "/" + db
}

// TestPerTableRetention sets dead_letters to 7 days and inferences_per_minute
// to 30 over the defaults, applies the DDL to the real engine and reads the
// TTLs back from SHOW CREATE TABLE; unknown tables and bad days are errors.
func TestPerTableRetention(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Retention = map[string]int{"dead_letters": 7, "inferences_per_minute": 30}
	base := testenv.ClickHouseURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db := fmt.Sprintf("migration_retention_%d", time.Now().UnixNano())
	conn, err := chclient.Open(ctx, chclient.Config{URL: withDatabase(base, db)}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	defer conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
	// Created with the defaults first, so the overrides must reach existing
	// tables through ALTER … MODIFY TTL.
	if err := Apply(ctx, conn, DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	if err := Apply(ctx, conn, cfg); err != nil {
		t.Fatal(err)
	}
	for table, want := range map[string]string{
		"dead_letters":          "TTL toDateTime(received_at) + toIntervalDay(7)",
		"inferences":            "TTL toDateTime(timestamp) + toIntervalDay(90)",
		"outcomes":              "TTL toDateTime(timestamp) + toIntervalDay(90)",
		"inferences_per_minute": "TTL minute + toIntervalDay(30)",
		"outcomes_per_minute":   "TTL minute + toIntervalDay(400)",
	} {
		var ddl string
		if err := conn.QueryRow(ctx, "SHOW CREATE TABLE "+table).Scan(&ddl); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(ddl, want) {
			t.Errorf("%s: SHOW CREATE TABLE lacks %q:\n%s", table, want, ddl)
		}
	}

	tables := RetentionTables()
	for _, want := range []string{"business_metrics", "dead_letters", "inferences", "inferences_per_minute", "outcomes"} {
		if !strings.Contains(strings.Join(tables, " "), want) {
			t.Errorf("RetentionTables() = %v, lacks %s", tables, want)
		}
	}
	bad := DefaultConfig()
	bad.Retention = map[string]int{"inferences_labeled": 7, "dead_letters": 0}
	err = bad.Validate()
	if err == nil || !strings.Contains(err.Error(), "retention.inferences_labeled: no such table with a TTL") ||
		!strings.Contains(err.Error(), "retention.dead_letters: must be from 1 to 36500 days, got 0") {
		t.Errorf("Validate = %v", err)
	}
}

// TestOneOwnerOfTheTTLs, on the real engine: the owner of the retention
// (Apply: driftwatch migrate, ingest) sets the TTLs; a service that does
// not own it (ApplySchema: the monitor, the trainer) with other retention
// settings leaves them, and CheckTTLs names every table whose TTL differs
// from its settings, with both values; the owner with new settings moves
// them, after which the check finds nothing.
func TestOneOwnerOfTheTTLs(t *testing.T) {
	base := testenv.ClickHouseURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db := fmt.Sprintf("migration_owner_%d", time.Now().UnixNano())
	conn, err := chclient.Open(ctx, chclient.Config{URL: withDatabase(base, db)}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	defer conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)

	owner := DefaultConfig() // 90 and 400 days
	other := Config{RetentionDays: 30, RollupRetentionDays: 100, Retention: map[string]int{"dead_letters": 7}}
	if err := Apply(ctx, conn, owner); err != nil {
		t.Fatal(err)
	}
	check := func(cfg Config) []TTLMismatch {
		t.Helper()
		ms, err := CheckTTLs(ctx, conn, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return ms
	}
	if ms := check(owner); len(ms) != 0 {
		t.Fatalf("right after Apply: %v", ms)
	}
	// The other service starts twice: the TTLs stay the owner's.
	for i := 0; i < 2; i++ {
		if err := ApplySchema(ctx, conn, other); err != nil {
			t.Fatal(err)
		}
	}
	if ms := check(owner); len(ms) != 0 {
		t.Errorf("ApplySchema changed TTLs: %v", ms)
	}
	var ddl string
	if err := conn.QueryRow(ctx, "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = 'inferences'").Scan(&ddl); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ddl, "toIntervalDay(90)") {
		t.Errorf("inferences' TTL after ApplySchema with 30 days: %s", ddl)
	}
	// Every table with a TTL differs from the other's settings, each by
	// the days written here.
	want := map[string][2]int{ // table: configured, actual
		"business_correlations": {100, 400}, "business_metrics": {30, 90}, "business_metrics_per_minute": {100, 400},
		"dead_letters": {7, 90}, "drift_distributions": {100, 400}, "drift_results": {100, 400}, "inferences": {30, 90}, "inferences_per_minute": {100, 400}, "labeling_queue": {30, 90}, "monitor_instances": {30, 90}, "monitor_leases": {30, 90},
		"outcomes": {30, 90}, "outcomes_per_minute": {100, 400}, "performance_results": {100, 400}, "root_causes": {100, 400}, "training_leases": {30, 90},
		"window_partial_bins": {30, 90}, "window_partial_buckets": {30, 90}, "window_partial_categories": {30, 90},
	}
	ms := check(other)
	got := map[string][2]int{}
	for _, m := range ms {
		got[m.Table] = [2]int{m.Want, m.Got}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("CheckTTLs with the other settings:\ngot  %v\nwant %v", got, want)
	}
	if len(ms) > 0 && ms[0].String() != "business_correlations keeps 400 days, configured 100" {
		t.Errorf("first mismatch reads %q", ms[0].String())
	}
	// The owner adopts the other settings: nothing differs any more.
	if err := Apply(ctx, conn, other); err != nil {
		t.Fatal(err)
	}
	if ms := check(other); len(ms) != 0 {
		t.Errorf("after the owner applied them: %v", ms)
	}
}

// TestApplySchemaCreates: on an empty database ApplySchema creates every
// table (a monitor started before ingest works), with its settings' TTL.
func TestApplySchemaCreates(t *testing.T) {
	base := testenv.ClickHouseURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db := fmt.Sprintf("migration_schema_%d", time.Now().UnixNano())
	conn, err := chclient.Open(ctx, chclient.Config{URL: withDatabase(base, db)}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	defer conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
	cfg := Config{RetentionDays: 12, RollupRetentionDays: 34}
	if err := ApplySchema(ctx, conn, cfg); err != nil {
		t.Fatal(err)
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = currentDatabase()").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 29 {
		t.Errorf("%d tables and views, want the DDL's 29", n)
	}
	if ms, err := CheckTTLs(ctx, conn, cfg); err != nil || len(ms) != 0 {
		t.Errorf("CheckTTLs: %v %v", ms, err)
	}
}

// TestStatementsMarkTTLUpdates: the TTL updates carry their table and
// days, the other statements neither.
func TestStatementsMarkTTLUpdates(t *testing.T) {
	stmts, err := Statements(Config{RetentionDays: 7, RollupRetentionDays: 30, Retention: map[string]int{"dead_letters": 3}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, s := range stmts {
		if s.IsTTL() != strings.Contains(s.SQL, "MODIFY TTL") {
			t.Errorf("%s: IsTTL %v for %q", s.File, s.IsTTL(), firstLine(s.SQL))
		}
		if s.IsTTL() {
			got[s.Table] = s.Days
		}
	}
	if got["inferences"] != 7 || got["drift_results"] != 30 || got["dead_letters"] != 3 || len(got) != len(RetentionTables()) {
		t.Errorf("TTL updates %v (tables with a TTL: %v)", got, RetentionTables())
	}
}

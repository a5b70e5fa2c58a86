// Package migration creates and updates driftwatch's ClickHouse tables from
// the DDL in deploy/clickhouse. Every statement is idempotent (CREATE … IF
// NOT EXISTS, ADD COLUMN IF NOT EXISTS, then ALTER … MODIFY TTL to the
// configured retention), so it can run at any time.
//
// The TTLs have one owner: `driftwatch migrate` and ingest apply them
// (Apply); the monitor and the trainer create what is missing but leave
// every TTL as it is (ApplySchema) and compare it with their own
// retention settings (CheckTTLs), warning when they differ. Two services
// given different retention_days used to set the TTL back and forth at
// each start; now the table keeps the owner's value and the other says
// so. Ingest owns it because it writes the raw events the retention is
// mostly about, and runs in every deployment; `driftwatch migrate` is the
// same code, for a deployment step or a retention change without a
// restart.
package migration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/driftwatch/driftwatch/deploy"
	"github.com/driftwatch/driftwatch/internal/chclient"
)

// Config holds the settings the DDL templates take: the retention part of
// a service's configuration, with the YAML keys, environment variables and
// flags every service shares; services embed it with `yaml:",inline"`
// next to config.Common.
type Config struct {
	// RetentionDays is how long raw events are kept (TTL on event time).
	RetentionDays int `yaml:"retention_days" env:"DRIFTWATCH_RETENTION_DAYS" flag:"retention-days" help:"days raw events are kept in ClickHouse (TTL by event time)"`
	// RollupRetentionDays is how long the per-minute rollups are kept.
	RollupRetentionDays int `yaml:"rollup_retention_days" env:"DRIFTWATCH_ROLLUP_RETENTION_DAYS" flag:"rollup-retention-days" help:"days the per-minute rollups are kept"`
	// Retention overrides RetentionDays or RollupRetentionDays for single
	// tables, by table name (`retention: {dead_letters: 7}`): the days
	// that table's TTL keeps. A map, so YAML only (as every map setting).
	Retention map[string]int `yaml:"retention"`
	// Cluster, when set, renders the DDL for that ClickHouse cluster (a
	// name of the servers' remote_servers): replicated local tables
	// <table>_local and Distributed tables under the original names, every
	// statement ON CLUSTER (see cluster.go and docs/operations.md).
	Cluster string `yaml:"clickhouse_cluster" env:"DRIFTWATCH_CLICKHOUSE_CLUSTER" flag:"clickhouse-cluster" help:"ClickHouse cluster (a remote_servers name) to create the tables on: replicated tables named with _local, Distributed tables under the original names, every DDL statement ON CLUSTER; empty for one server"`
}

// DefaultConfig returns 90 days of raw events and 400 days of rollups.
func DefaultConfig() Config { return Config{RetentionDays: 90, RollupRetentionDays: 400} }

// RetentionFor returns the days table's TTL keeps raw rows: its entry in
// Retention, else RetentionDays. The DDL templates call it as
// {{.RetentionFor "inferences"}}.
func (o Config) RetentionFor(table string) int {
	if d, ok := o.Retention[table]; ok {
		return d
	}
	return o.RetentionDays
}

// RollupRetentionFor is RetentionFor for the rollup and result tables,
// whose default is RollupRetentionDays.
func (o Config) RollupRetentionFor(table string) int {
	if d, ok := o.Retention[table]; ok {
		return d
	}
	return o.RollupRetentionDays
}

// retentionTemplate finds the tables whose TTL the DDL templates take from
// RetentionFor or RollupRetentionFor: the tables Retention may name.
var retentionTemplate = regexp.MustCompile(`\{\{\s*\.(?:Rollup)?RetentionFor\s+"(\w+)"\s*\}\}`)

// RetentionTables returns the tables whose retention Retention can set,
// in name order: every table of the DDL with a TTL.
func RetentionTables() []string {
	names, _ := fs.Glob(deploy.ClickHouseDDL, "clickhouse/*.sql")
	seen := map[string]bool{}
	var out []string
	for _, name := range names {
		raw, err := fs.ReadFile(deploy.ClickHouseDDL, name)
		if err != nil {
			panic("BUG: embedded DDL " + name + " unreadable: " + err.Error())
		}
		for _, m := range retentionTemplate.FindAllStringSubmatch(string(raw), -1) {
			if !seen[m[1]] {
				seen[m[1]] = true
				out = append(out, m[1])
			}
		}
	}
	sort.Strings(out)
	return out
}

// Validate reports bad retention settings, naming the YAML keys.
func (o Config) Validate() error {
	var errs []error
	if tables := o.Retention; len(tables) > 0 {
		known := RetentionTables()
		names := make([]string, 0, len(tables))
		for t := range tables {
			names = append(names, t)
		}
		sort.Strings(names)
		for _, t := range names {
			if i := sort.SearchStrings(known, t); i == len(known) || known[i] != t {
				errs = append(errs, fmt.Errorf("retention.%s: no such table with a TTL (one of %s)", t, strings.Join(known, ", ")))
			} else if d := tables[t]; d < 1 || d > 36500 {
				errs = append(errs, fmt.Errorf("retention.%s: must be from 1 to 36500 days, got %d", t, d))
			}
		}
	}
	if o.RetentionDays < 1 || o.RetentionDays > 36500 {
		errs = append(errs, fmt.Errorf("retention_days: must be from 1 to 36500, got %d", o.RetentionDays))
	}
	if o.RollupRetentionDays < 1 || o.RollupRetentionDays > 36500 {
		errs = append(errs, fmt.Errorf("rollup_retention_days: must be from 1 to 36500, got %d", o.RollupRetentionDays))
	}
	if err := ValidateCluster(o.Cluster); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Execer is the part of a clickhouse-go connection Apply needs.
type Execer interface {
	Exec(ctx context.Context, query string, args ...any) error
}

// Statement is one DDL statement and the file it came from.
type Statement struct {
	File string
	SQL  string
	// Table and Days are set on a TTL update (ALTER … MODIFY TTL): the
	// table and the days its TTL keeps rows.
	Table string
	Days  int
}

// IsTTL reports whether s sets an existing table's TTL, which only the
// owner of the retention applies.
func (s Statement) IsTTL() bool { return s.Table != "" }

// Statements renders the DDL for opts, in the order it must run: each file
// in name order, its statements in file order, followed by the TTL updates
// that bring existing tables to the configured retention. With
// opts.Cluster set, every statement is in its cluster form (cluster.go).
func Statements(opts Config) ([]Statement, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	names, err := fs.Glob(deploy.ClickHouseDDL, "clickhouse/*.sql")
	if err != nil {
		return nil, fmt.Errorf("list DDL files: %w", err)
	}
	sort.Strings(names)
	var out, ttls []Statement
	var cl *clusterRewriter
	if opts.Cluster != "" {
		cl = newClusterRewriter(opts.Cluster)
	}
	for _, name := range names {
		raw, err := fs.ReadFile(deploy.ClickHouseDDL, name)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		tmpl, err := template.New(name).Option("missingkey=error").Parse(string(raw))
		if err != nil {
			return nil, fmt.Errorf("parse template %s: %w", name, err)
		}
		var b bytes.Buffer
		if err := tmpl.Execute(&b, opts); err != nil {
			return nil, fmt.Errorf("render %s: %w", name, err)
		}
		for _, s := range Split(b.String()) {
			ttl, table, days := ttlUpdate(s)
			if cl == nil {
				out = append(out, Statement{File: name, SQL: s})
			} else {
				cs, err := cl.rewrite(s)
				if err != nil {
					return nil, fmt.Errorf("render %s for cluster %s: %w", name, opts.Cluster, err)
				}
				for _, c := range cs {
					out = append(out, Statement{File: name, SQL: c})
				}
				if ttl != "" {
					ttl, table = cl.ttl(ttl, table)
				}
			}
			if ttl != "" {
				ttls = append(ttls, Statement{File: name, SQL: ttl, Table: table, Days: days})
			}
		}
	}
	return append(out, ttls...), nil
}

var (
	createTable = regexp.MustCompile(`(?is)^CREATE TABLE IF NOT EXISTS\s+(\w+)`)
	ttlClause   = regexp.MustCompile(`(?m)^TTL (.+)$`)
	// ttlDays is the days of a TTL as the DDL writes it.
	ttlDays = regexp.MustCompile(`(?i)\+\s*INTERVAL\s+(\d+)\s+DAY\b`)
	// serverTTLDays is the days of a TTL as ClickHouse shows it in
	// system.tables.engine_full (… TTL toDateTime(t) + toIntervalDay(90)).
	serverTTLDays = regexp.MustCompile(`\bTTL\b.*?\+\s*toIntervalDay\((\d+)\)`)
)

// ttlUpdate returns the ALTER that sets a created table's TTL, so that a
// changed retention reaches tables created earlier, with the table and
// the days it keeps.
func ttlUpdate(stmt string) (sql, table string, days int) {
	m := createTable.FindStringSubmatch(stmt)
	t := ttlClause.FindStringSubmatch(stmt)
	if m == nil || t == nil {
		return "", "", 0
	}
	d := ttlDays.FindStringSubmatch(t[1])
	if d == nil {
		panic("BUG: the TTL of table " + m[1] + " is not <time> + INTERVAL <days> DAY: " + t[1])
	}
	fmt.Sscan(d[1], &days)
	return fmt.Sprintf("ALTER TABLE %s MODIFY TTL %s SETTINGS materialize_ttl_after_modify = 0", m[1], strings.TrimSpace(t[1])), m[1], days
}

// Split cuts a SQL script into statements at semicolons that end a line,
// dropping comment-only lines and empty statements. The DDL files keep to
// that shape (a test checks it).
func Split(script string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(script, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			if s := strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"); strings.TrimSpace(s) != "" {
				out = append(out, s)
			}
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

// Apply runs every statement in order, the TTL updates included: what the
// owner of the retention (`driftwatch migrate`, ingest) does. It stops at
// the first failure and names the file and the start of the statement.
func Apply(ctx context.Context, conn Execer, opts Config) error { return apply(ctx, conn, opts, true) }

// ApplySchema is Apply without the TTL updates: it creates the tables,
// views and columns that are missing and leaves every existing table's
// TTL alone (a table it creates gets opts' TTL). Services that do not own
// the retention (the monitor, the trainer) start with it and CheckTTLs.
func ApplySchema(ctx context.Context, conn Execer, opts Config) error {
	return apply(ctx, conn, opts, false)
}

func apply(ctx context.Context, conn Execer, opts Config, ttls bool) error {
	stmts, err := Statements(opts)
	if err != nil {
		return err
	}
	for _, s := range stmts {
		if s.IsTTL() && !ttls {
			continue
		}
		if err := conn.Exec(ctx, s.SQL); err != nil {
			return fmt.Errorf("apply %s (%s): %w", s.File, firstLine(s.SQL), err)
		}
	}
	return nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// TTLMismatch is a table whose TTL keeps other days than configured.
type TTLMismatch struct {
	Table string
	// Want is the configured days; Got the table's, 0 when it has no TTL
	// in days (or is missing).
	Want, Got int
}

func (m TTLMismatch) String() string {
	return fmt.Sprintf("%s keeps %d days, configured %d", m.Table, m.Got, m.Want)
}

// Querier is the part of a clickhouse-go connection CheckTTLs needs.
type Querier interface {
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
}

// CheckTTLs compares the TTL of every table of the DDL that has one, in
// the connection's database, with the days opts configures, and returns
// the tables that differ, by name. It changes nothing.
func CheckTTLs(ctx context.Context, conn Querier, opts Config) ([]TTLMismatch, error) {
	stmts, err := Statements(opts)
	if err != nil {
		return nil, err
	}
	want := map[string]int{}
	for _, s := range stmts {
		if s.IsTTL() {
			want[s.Table] = s.Days
		}
	}
	rows, err := conn.Query(ctx, "SELECT name, engine_full FROM system.tables WHERE database = currentDatabase()")
	if err != nil {
		return nil, fmt.Errorf("read the tables' TTLs: %w", err)
	}
	defer rows.Close()
	got := map[string]int{}
	for rows.Next() {
		var name, engine string
		if err := rows.Scan(&name, &engine); err != nil {
			return nil, fmt.Errorf("read the tables' TTLs: %w", err)
		}
		if m := serverTTLDays.FindStringSubmatch(engine); m != nil {
			var d int
			fmt.Sscan(m[1], &d)
			got[name] = d
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the tables' TTLs: %w", err)
	}
	var out []TTLMismatch
	for table, days := range want {
		if got[table] != days {
			out = append(out, TTLMismatch{Table: table, Want: days, Got: got[table]})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Table < out[j].Table })
	return out, nil
}

// Open connects to ClickHouse (creating the database named in the URL if
// needed) and applies the DDL, TTLs included: what ingest does at start.
func Open(ctx context.Context, c chclient.Config, opts Config) (driver.Conn, error) {
	return open(ctx, c, opts, Apply)
}

// OpenSchema is Open with ApplySchema: what the monitor and the trainer do
// at start, before they CheckTTLs.
func OpenSchema(ctx context.Context, c chclient.Config, opts Config) (driver.Conn, error) {
	return open(ctx, c, opts, ApplySchema)
}

func open(ctx context.Context, c chclient.Config, opts Config, apply func(context.Context, Execer, Config) error) (driver.Conn, error) {
	conn, err := chclient.Open(ctx, c, true)
	if err != nil {
		return nil, err
	}
	if err := apply(ctx, conn, opts); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

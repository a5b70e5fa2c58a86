package migration

import (
	"fmt"
	"regexp"
	"strings"
)

// The DDL for a ClickHouse cluster (Config.Cluster, clickhouse_cluster).
//
// Every statement of deploy/clickhouse is written for one server; for a
// cluster it is rewritten, statement by statement, so that every query the
// services run keeps its table names:
//
//   - a MergeTree-family table t becomes t_local, created ON CLUSTER with
//     the Replicated engine of its family (ZooKeeper/Keeper path
//     /clickhouse/tables/{shard}/{database}/t_local, replica '{replica}',
//     the engine's own arguments after them), and t becomes a Distributed
//     table over the t_local of every shard, sharded by cityHash64 of a
//     column of t's ORDER BY: model_id when the ORDER BY has it (every
//     table but monitor_instances), else its first column. A sharding key
//     made of sorting-key columns puts all versions of a row on one shard,
//     so ReplacingMergeTree, AggregatingMergeTree and FINAL stay exact per
//     shard, hence overall; and since every model-keyed table shards by
//     model_id alone, one model's rows of every table share a shard, so a
//     JOIN or IN that matches on model_id can run shard by shard
//     (distributed_product_mode = 'local', docs/operations.md);
//   - a materialized view reads and writes the local tables (each shard
//     aggregates the rows inserted into it) and is created ON CLUSTER;
//   - a plain view is created ON CLUSTER unchanged: it reads the
//     Distributed tables, like every query of the services;
//   - ALTER TABLE t goes to t_local ON CLUSTER; its column commands (ADD,
//     DROP, MODIFY, RENAME, COMMENT COLUMN) go to the Distributed t too,
//     so both keep the same columns; the TTL updates go to t_local.
//
// A statement of another shape is an error, so a new DDL file that this
// rewriting does not understand fails `driftwatch migrate` and the tests
// rather than producing a half-clustered schema.

// localSuffix names the replicated table under a Distributed one.
const localSuffix = "_local"

// LocalTable returns the name of the replicated table that holds the rows
// of table in a cluster: table + "_local".
func LocalTable(table string) string { return table + localSuffix }

// ReplicaPath returns the Keeper path of table's replicated local table.
func ReplicaPath(table string) string {
	return "/clickhouse/tables/{shard}/{database}/" + LocalTable(table)
}

var (
	validCluster = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

	createTableHead = regexp.MustCompile(`^CREATE TABLE IF NOT EXISTS (\w+)\s*\n`)
	engineLine      = regexp.MustCompile(`(?m)^ENGINE = (\w*)MergeTree(?:\(([^()]*)\))?[ \t]*$`)
	anyEngine       = regexp.MustCompile(`(?m)^ENGINE\b`)
	orderBy         = regexp.MustCompile(`(?m)^ORDER BY (\([^()]*\)|\w+)`)
	tableComment    = regexp.MustCompile(`(?s)\nCOMMENT ('(?:[^'\\]|''|\\.)*')\s*$`)
	nonReplDedup    = regexp.MustCompile(`\bnon_replicated_deduplication_window\b`)

	createMV   = regexp.MustCompile(`^CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+) TO (\w+)\s`)
	createView = regexp.MustCompile(`^CREATE (OR REPLACE VIEW|VIEW IF NOT EXISTS) (\w+)\s`)
	alterTable = regexp.MustCompile(`^ALTER TABLE (\w+)\s+`)
	columnCmd  = regexp.MustCompile(`(?i)^(ADD|DROP|MODIFY|RENAME|COMMENT) COLUMN\b`)
	fromTable  = regexp.MustCompile(`\b(FROM|JOIN)\s+(\w+)\b`)
)

// ValidateCluster reports a cluster name that is not a plain identifier
// (it is spliced into DDL and into forget's deletes).
func ValidateCluster(name string) error {
	if name != "" && !validCluster.MatchString(name) {
		return fmt.Errorf("clickhouse_cluster: %q must be a plain identifier (letters, digits and '_', not starting with a digit)", name)
	}
	return nil
}

// clusterRewriter turns single-server statements into cluster ones, in
// order: it learns the MergeTree tables from their CREATEs.
type clusterRewriter struct {
	cluster string
	// shardKey is the sharding column of every MergeTree table seen.
	shardKey map[string]string
}

func newClusterRewriter(cluster string) *clusterRewriter {
	return &clusterRewriter{cluster: cluster, shardKey: map[string]string{}}
}

// rewrite returns the cluster statements for one single-server statement.
func (r *clusterRewriter) rewrite(stmt string) ([]string, error) {
	on := " ON CLUSTER " + r.cluster
	switch {
	case createTableHead.MatchString(stmt):
		return r.table(stmt)
	case createMV.MatchString(stmt):
		m := createMV.FindStringSubmatch(stmt)
		if _, ok := r.shardKey[m[2]]; !ok {
			return nil, fmt.Errorf("materialized view %s writes to %s, which is not a MergeTree table created before it", m[1], m[2])
		}
		body := stmt[len(m[0]):]
		body = fromTable.ReplaceAllStringFunc(body, func(s string) string {
			f := fromTable.FindStringSubmatch(s)
			if _, ok := r.shardKey[f[2]]; ok {
				return f[1] + " " + LocalTable(f[2])
			}
			return s
		})
		return []string{fmt.Sprintf("CREATE MATERIALIZED VIEW IF NOT EXISTS %s%s TO %s\n%s", m[1], on, LocalTable(m[2]), body)}, nil
	case createView.MatchString(stmt):
		m := createView.FindStringSubmatch(stmt)
		return []string{"CREATE " + m[1] + " " + m[2] + on + "\n" + stmt[len(m[0]):]}, nil
	case alterTable.MatchString(stmt):
		return r.alter(stmt)
	}
	return nil, fmt.Errorf("no cluster form for the statement starting %q (a CREATE TABLE IF NOT EXISTS, CREATE MATERIALIZED VIEW IF NOT EXISTS … TO, CREATE VIEW or ALTER TABLE is expected)", firstLine(stmt))
}

// table renders a CREATE TABLE as the replicated local table and the
// Distributed table under the original name.
func (r *clusterRewriter) table(stmt string) ([]string, error) {
	name := createTableHead.FindStringSubmatch(stmt)[1]
	eng := engineLine.FindStringSubmatchIndex(stmt)
	if eng == nil {
		if anyEngine.MatchString(stmt) {
			return nil, fmt.Errorf("table %s: its engine is not of the MergeTree family on a line of its own (ENGINE = …MergeTree[(args)]), so it has no replicated form", name)
		}
		return nil, fmt.Errorf("table %s: no ENGINE line", name)
	}
	order := orderBy.FindStringSubmatch(stmt)
	if order == nil {
		return nil, fmt.Errorf("table %s: no ORDER BY to shard by", name)
	}
	key := shardingColumn(order[1])
	family := stmt[eng[2]:eng[3]]
	args := fmt.Sprintf("'%s', '{replica}'", ReplicaPath(name))
	if eng[4] >= 0 && strings.TrimSpace(stmt[eng[4]:eng[5]]) != "" {
		args += ", " + strings.TrimSpace(stmt[eng[4]:eng[5]])
	}
	local := stmt[:eng[0]] + "ENGINE = Replicated" + family + "MergeTree(" + args + ")" + stmt[eng[1]:]
	head := createTableHead.FindString(local)
	local = "CREATE TABLE IF NOT EXISTS " + LocalTable(name) + " ON CLUSTER " + r.cluster + "\n" + local[len(head):]
	// Replicated tables deduplicate inserts by replicated_deduplication_window.
	local = nonReplDedup.ReplaceAllString(local, "replicated_deduplication_window")
	r.shardKey[name] = key

	dist := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s ON CLUSTER %s AS %s\nENGINE = Distributed(%s, currentDatabase(), %s, cityHash64(%s))",
		name, r.cluster, LocalTable(name), r.cluster, LocalTable(name), key)
	if c := tableComment.FindStringSubmatch(stmt); c != nil {
		dist += "\nCOMMENT " + c[1]
	}
	return []string{local, dist}, nil
}

// shardingColumn picks the sharding column from an ORDER BY expression
// ("(a, b)" or "a"): model_id when it is one of the columns, else the
// first.
func shardingColumn(order string) string {
	cols := splitTopLevel(strings.TrimSuffix(strings.TrimPrefix(order, "("), ")"))
	for _, c := range cols {
		if c == "model_id" {
			return c
		}
	}
	return cols[0]
}

// alter sends an ALTER to the local table, and its column commands to the
// Distributed table as well.
func (r *clusterRewriter) alter(stmt string) ([]string, error) {
	m := alterTable.FindStringSubmatch(stmt)
	name := m[1]
	if _, ok := r.shardKey[name]; !ok {
		return nil, fmt.Errorf("ALTER TABLE %s: not a MergeTree table created before it", name)
	}
	cmds := splitTopLevel(stmt[len(m[0]):])
	on := " ON CLUSTER " + r.cluster
	out := []string{"ALTER TABLE " + LocalTable(name) + on + "\n    " + strings.Join(cmds, ",\n    ")}
	var cols []string
	for _, c := range cmds {
		if columnCmd.MatchString(c) {
			cols = append(cols, c)
		}
	}
	if len(cols) > 0 {
		out = append(out, "ALTER TABLE "+name+on+"\n    "+strings.Join(cols, ",\n    "))
	}
	return out, nil
}

// ttl renders a TTL update (ALTER TABLE t MODIFY TTL …) for the local
// table.
func (r *clusterRewriter) ttl(sql, table string) (string, string) {
	rest := strings.TrimPrefix(sql, "ALTER TABLE "+table+" ")
	return "ALTER TABLE " + LocalTable(table) + " ON CLUSTER " + r.cluster + " " + rest, LocalTable(table)
}

// splitTopLevel cuts s at the commas outside parentheses and quotes and
// trims each part.
func splitTopLevel(s string) []string {
	var out []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '`' || c == '"':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == ',' && depth == 0:
			out = append(out, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	if t := strings.TrimSpace(s[start:]); t != "" {
		out = append(out, t)
	}
	return out
}

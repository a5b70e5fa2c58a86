package admin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/driftwatch/driftwatch/ingest/personal"
	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/migration"
	"github.com/driftwatch/driftwatch/services/driftwatch/command"
)

type forgetConfig struct {
	config.ClickHouse `yaml:",inline"`
	config.Logging    `yaml:",inline"`
	PredictionID      string `yaml:"prediction_id" flag:"prediction-id" help:"erase this prediction: its inferences, outcomes and dead letters"`
	EventID           string `yaml:"event_id" flag:"event-id" help:"erase this event (an inference, outcome or business metric) and the outcomes of its prediction"`
	Segment           string `yaml:"segment" flag:"segment" help:"erase every event whose segment has key=value, and the outcomes of those predictions"`
	Model             string `yaml:"model" flag:"model" help:"erase only this model's rows"`
	// PersonalHashKeyFile is ingest's key: with it a segment value is also
	// matched in its hashed form, as ingest stored it under a hash rule.
	PersonalHashKeyFile string `yaml:"personal_hash_key_file" env:"DRIFTWATCH_INGEST_PERSONAL_HASH_KEY_FILE" flag:"personal-hash-key-file" help:"ingest's personal hash key file: -segment values are also matched hashed"`
	DryRun              bool   `yaml:"dry_run" flag:"dry-run" help:"count the subject's rows per table without deleting them"`
	// Cluster is migrate's clickhouse_cluster: the rows are in each
	// shard's <table>_local, which the deletes go to ON CLUSTER.
	Cluster string `yaml:"clickhouse_cluster" env:"DRIFTWATCH_CLICKHOUSE_CLUSTER" flag:"clickhouse-cluster" help:"the ClickHouse cluster driftwatch migrate created the tables on (clickhouse_cluster): the deletes go to each shard's <table>_local ON CLUSTER; empty for one server"`

	segKey, segValue string
}

func (c *forgetConfig) Validate() error {
	var errs []error
	n := 0
	for _, v := range []string{c.PredictionID, c.EventID, c.Segment} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		errs = append(errs, errors.New("prediction_id, event_id, segment: give exactly one subject (-prediction-id P, -event-id E or -segment key=value)"))
	}
	if c.Segment != "" {
		k, v, ok := strings.Cut(c.Segment, "=")
		if !ok || k == "" || v == "" {
			errs = append(errs, fmt.Errorf("segment: %q is not key=value", c.Segment))
		}
		c.segKey, c.segValue = k, v
	}
	return errors.Join(append(errs, migration.ValidateCluster(c.Cluster), c.ClickHouse.Validate(), c.Logging.Validate())...)
}

func forgetCommand() command.Command {
	return command.Command{
		Name:    "forget",
		Summary: "erase a subject (a prediction, an event or a segment value) from every table",
		Usage: `driftwatch forget -prediction-id P | -event-id E | -segment key=value [-model M]
deletes the subject's rows from every table that holds events: outcomes (the
labels of the subject's predictions), labeling_queue (its predictions handed
out for labelling), inferences, business_metrics and dead_letters (matched
in the rejected payload), with ClickHouse lightweight
DELETE; and the incremental windows' partials (window_partial_buckets,
_bins, _categories) of every bucket that held one of its inferences, which
the monitor then aggregates again from the rows that remain. It prints each table's rows before and after; inferences_labeled is a
view and empties with its tables. The per-minute rollups hold counts, not
events, and are left alone. Kafka topics keep their copies until their own
retention removes them. With -personal-hash-key-file (ingest's key) a segment
value is matched raw and hashed. -dry-run only counts.

On a cluster (-clickhouse-cluster, migrate's clickhouse_cluster) the rows are
counted through the Distributed tables and deleted from every shard's
<table>_local with DELETE … ON CLUSTER, whose conditions name the subject's
predictions literally: a replicated table refuses a delete whose condition
reads another table.`,
		Config: func() config.Validator {
			return &forgetConfig{ClickHouse: config.DefaultClickHouse(), Logging: config.DefaultLogging()}
		},
		Run: func(ctx context.Context, c config.Validator, env command.Env) error {
			cfg := c.(*forgetConfig)
			subj, err := cfg.subject()
			if err != nil {
				return err
			}
			conn, err := chclient.Open(ctx, chclient.FromConfig(cfg.ClickHouse), false)
			if err != nil {
				return err
			}
			defer conn.Close()
			res, err := forget(ctx, conn, subj, cfg.DryRun, cfg.Cluster)
			if err != nil {
				return err
			}
			return printForget(env.Stdout, subj, res, cfg.DryRun)
		},
	}
}

// subject is what forget erases, as predicates over each table.
type subject struct {
	desc string
	// inference selects the subject's rows of inferences (and of the
	// inferences_labeled view); outcome, metric and deadLetter those of
	// the other tables ("" when the table cannot hold the subject); queue
	// those of labeling_queue (the subject's predictions handed out for
	// labelling, with their assignee).
	inference, outcome, metric, deadLetter, queue string
	// ofInferences, when outcome and queue hold it, is their subquery of
	// the subject's predictions, (model_id, prediction_id) IN (SELECT …
	// FROM inferences WHERE inference): on a cluster it is replaced by
	// the pairs it selects (see literalPredictions).
	ofInferences string
}

func (c *forgetConfig) subject() (subject, error) {
	model := ""
	if c.Model != "" {
		model = " AND model_id = " + chsql.String(c.Model)
	}
	// The outcomes of the subject's predictions go with it: they label the
	// same person's prediction.
	ofInferences := func(where string) string {
		return "(model_id, prediction_id) IN (SELECT model_id, prediction_id FROM inferences WHERE " + where + ")"
	}
	switch {
	case c.PredictionID != "":
		p := chsql.String(c.PredictionID)
		return subject{desc: "prediction_id " + p,
			inference:  "prediction_id = " + p + model,
			outcome:    "prediction_id = " + p + model,
			deadLetter: "JSONExtractString(payload, 'prediction_id') = " + p + model,
			queue:      "prediction_id = " + p + model,
		}, nil
	case c.EventID != "":
		e := chsql.String(c.EventID)
		inf := "event_id = " + e + model
		return subject{desc: "event_id " + e,
			inference:    inf,
			outcome:      "(event_id = " + e + " OR " + ofInferences(inf) + ")" + model,
			metric:       inf,
			deadLetter:   "JSONExtractString(payload, 'event_id') = " + e + model,
			queue:        "(event_id = " + e + " OR " + ofInferences(inf) + ")" + model,
			ofInferences: ofInferences(inf),
		}, nil
	default:
		values := []string{chsql.String(c.segValue)}
		if c.PersonalHashKeyFile != "" {
			key, err := os.ReadFile(c.PersonalHashKeyFile)
			if err != nil {
				return subject{}, fmt.Errorf("personal_hash_key_file: read the hash key: %w", err)
			}
			h, err := personal.NewKeyHasher(bytes.TrimRight(key, "\r\n"))
			if err != nil {
				return subject{}, fmt.Errorf("personal_hash_key_file: %w", err)
			}
			values = append(values, chsql.String(h.String(c.segValue)))
		}
		in := " IN (" + strings.Join(values, ", ") + ")"
		k := chsql.String(c.segKey)
		inf := "segment[" + k + "]" + in + model
		return subject{desc: "segment " + c.segKey + "=" + chsql.String(c.segValue),
			inference:    inf,
			outcome:      ofInferences(inf) + model,
			metric:       inf,
			deadLetter:   "JSONExtractString(payload, 'segment', " + k + ")" + in + model,
			queue:        ofInferences(inf) + model,
			ofInferences: ofInferences(inf),
		}, nil
	}
}

// forgetRow is one table's count of the subject's rows.
type forgetRow struct {
	table         string
	before, after uint64
	view          bool
}

// forget counts the subject's rows in every table, deletes them table by
// table and counts again. Outcomes and labeling_queue go first: their
// predicates read inferences, so they are counted after their delete while
// inferences still hold the subject.
//
// With a cluster the rows are counted through the Distributed tables and
// deleted from each shard's <table>_local ON CLUSTER; a replicated table
// takes no delete whose condition reads another table ("statement with
// subquery may be nondeterministic"), so the subject's predictions are
// named literally there (literalPredictions), in deletes of at most
// maxLiteralPredictions each.
func forget(ctx context.Context, conn driver.Conn, s subject, dryRun bool, cluster string) ([]forgetRow, error) {
	type target struct {
		table, where string
		view         bool
	}
	var targets []target
	for _, t := range []target{
		{"outcomes", s.outcome, false},
		{"labeling_queue", s.queue, false},
		{"inferences", s.inference, false},
		{"inferences_labeled", s.inference, true},
		{"business_metrics", s.metric, false},
		{"dead_letters", s.deadLetter, false},
	} {
		if t.where != "" {
			targets = append(targets, t)
		}
	}
	// The incremental windows' partials of the buckets holding the
	// subject's inferences (their sampled values and category counts):
	// found now, while inferences still hold the subject, and deleted
	// after it, the manifest first, so that the monitor aggregates those
	// buckets again from the rows that remain.
	parts, err := partialTargets(ctx, conn, s.inference, uint64(time.Now().UnixNano()))
	if err != nil {
		return nil, err
	}
	for _, t := range parts {
		targets = append(targets, target{t.table, t.where, false})
	}
	count := func(t target) (uint64, error) {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+chsql.Ident(t.table)+" WHERE "+t.where).Scan(&n); err != nil {
			return 0, fmt.Errorf("count the subject's rows in %s: %w", t.table, err)
		}
		return n, nil
	}
	out := make([]forgetRow, len(targets))
	for i, t := range targets {
		n, err := count(t)
		if err != nil {
			return nil, err
		}
		out[i] = forgetRow{table: t.table, before: n, after: n, view: t.view}
	}
	if dryRun {
		return out, nil
	}
	var literal []string // the subject's predictions, on a cluster
	if cluster != "" && s.ofInferences != "" {
		if literal, err = literalPredictions(ctx, conn, s.inference); err != nil {
			return nil, err
		}
	}
	for i, t := range targets {
		if t.view || out[i].before == 0 {
			continue
		}
		for _, sql := range deletes(t.table, t.where, cluster, s.ofInferences, literal) {
			if err := conn.Exec(ctx, sql); err != nil {
				return nil, fmt.Errorf("delete the subject's rows from %s: %w", t.table, err)
			}
		}
		n, err := count(t)
		if err != nil {
			return nil, err
		}
		out[i].after = n
	}
	var left []string
	for i, t := range targets {
		if t.view {
			n, err := count(t)
			if err != nil {
				return nil, err
			}
			out[i].after = n
		}
		if out[i].after > 0 {
			left = append(left, fmt.Sprintf("%s: %d", t.table, out[i].after))
		}
	}
	if len(left) > 0 {
		return out, fmt.Errorf("rows of %s remain after the delete (%s)", s.desc, strings.Join(left, ", "))
	}
	return out, nil
}

// maxLiteralPredictions bounds the predictions one delete names on a
// cluster, so that its text stays well under ClickHouse's max_query_size
// (256 KiB): a subject with more is deleted in several statements.
var maxLiteralPredictions = 2000

// literalPredictions returns the subject's predictions, each as the SQL
// tuple (model_id, prediction_id), read from its inferences.
func literalPredictions(ctx context.Context, conn driver.Conn, inference string) ([]string, error) {
	rows, err := conn.Query(ctx, "SELECT DISTINCT model_id, prediction_id FROM inferences WHERE "+inference)
	if err != nil {
		return nil, fmt.Errorf("find the subject's predictions: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var m, p string
		if err := rows.Scan(&m, &p); err != nil {
			return nil, fmt.Errorf("find the subject's predictions: %w", err)
		}
		out = append(out, "("+chsql.String(m)+", "+chsql.String(p)+")")
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find the subject's predictions: %w", err)
	}
	return out, nil
}

// deletes are the statements that delete the rows where selects from
// table: one lightweight DELETE on one server; on a cluster, DELETEs from
// <table>_local ON CLUSTER with the subquery sub (when where holds it)
// replaced by the predictions it selects, literal, a chunk at a time (none
// selected: false).
func deletes(table, where, cluster, sub string, literal []string) []string {
	if cluster == "" {
		return []string{"DELETE FROM " + chsql.Ident(table) + " WHERE " + where}
	}
	head := "DELETE FROM " + chsql.Ident(migration.LocalTable(table)) + " ON CLUSTER " + cluster + " WHERE "
	if sub == "" || !strings.Contains(where, sub) {
		return []string{head + where}
	}
	if len(literal) == 0 {
		return []string{head + strings.ReplaceAll(where, sub, "false")}
	}
	var out []string
	for len(literal) > 0 {
		n := min(len(literal), maxLiteralPredictions)
		out = append(out, head+strings.ReplaceAll(where, sub, "(model_id, prediction_id) IN ("+strings.Join(literal[:n], ", ")+")"))
		literal = literal[n:]
	}
	return out
}

func printForget(w io.Writer, s subject, rows []forgetRow, dryRun bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if dryRun {
		fmt.Fprintf(w, "would forget %s (dry run, nothing deleted)\n", s.desc)
		fmt.Fprintln(tw, "TABLE\tROWS")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%d\n", r.table, r.before)
		}
		return tw.Flush()
	}
	fmt.Fprintf(w, "forgot %s\n", s.desc)
	fmt.Fprintln(tw, "TABLE\tBEFORE\tAFTER\tREMOVED")
	for _, r := range rows {
		removed := fmt.Sprint(r.before - r.after)
		if r.view {
			removed += " (view)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", r.table, r.before, r.after, removed)
	}
	return tw.Flush()
}

// partialTarget is a table of the incremental windows' partials and the
// predicate of the subject's buckets in it.
type partialTarget struct{ table, where string }

// partialTables are the partials' tables, in the order forget deletes
// from them: the manifest first.
var partialTables = []string{"window_partial_buckets", "window_partial_bins", "window_partial_categories"}

// partialTargets returns, for the partials' tables, the predicate
// selecting the partials (of versions before before, UnixNano as the
// monitor numbers them) of every bucket that holds one of the inferences
// inference selects; none when no such bucket has partials.
func partialTargets(ctx context.Context, conn driver.Conn, inference string, before uint64) ([]partialTarget, error) {
	if inference == "" {
		return nil, nil
	}
	rows, err := conn.Query(ctx, "SELECT model_id, groupUniqArray(toUnixTimestamp64Milli(timestamp)) FROM inferences WHERE "+inference+" GROUP BY model_id")
	if err != nil {
		return nil, fmt.Errorf("find the subject's inferences' times: %w", err)
	}
	times := map[string][]int64{}
	var models []string
	for rows.Next() {
		var (
			m  string
			ts []int64
		)
		if err := rows.Scan(&m, &ts); err != nil {
			rows.Close()
			return nil, fmt.Errorf("find the subject's inferences' times: %w", err)
		}
		times[m] = ts
		models = append(models, chsql.String(m))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find the subject's inferences' times: %w", err)
	}
	if len(models) == 0 {
		return nil, nil
	}
	// The bucket widths each model's partials use.
	rows, err = conn.Query(ctx, "SELECT DISTINCT model_id, bucket_seconds FROM window_partial_buckets WHERE model_id IN ("+strings.Join(models, ", ")+")")
	if err != nil {
		return nil, fmt.Errorf("find the partials' bucket widths: %w", err)
	}
	var ors []string
	for rows.Next() {
		var (
			m string
			w uint32
		)
		if err := rows.Scan(&m, &w); err != nil {
			rows.Close()
			return nil, fmt.Errorf("find the partials' bucket widths: %w", err)
		}
		// bucket_seconds is the width in seconds, or in milliseconds when
		// that is not a whole number of seconds: both are tried (an extra
		// bucket only makes the monitor aggregate it again).
		widths := []int64{int64(w) * 1000}
		if w%1000 != 0 {
			widths = append(widths, int64(w))
		}
		starts := map[int64]bool{}
		for _, width := range widths {
			for _, t := range times[m] {
				starts[t-((t%width)+width)%width] = true
			}
		}
		list := make([]string, 0, len(starts))
		for st := range starts {
			list = append(list, strconv.FormatInt(st, 10))
		}
		ors = append(ors, fmt.Sprintf("(model_id = %s AND bucket_seconds = %d AND toUnixTimestamp64Milli(bucket_start) IN (%s))", chsql.String(m), w, strings.Join(list, ", ")))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find the partials' bucket widths: %w", err)
	}
	if len(ors) == 0 {
		return nil, nil
	}
	where := fmt.Sprintf("(%s) AND version < %d", strings.Join(ors, " OR "), before)
	out := make([]partialTarget, len(partialTables))
	for i, t := range partialTables {
		out[i] = partialTarget{t, where}
	}
	return out, nil
}

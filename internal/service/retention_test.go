package service

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/migration"
	"github.com/driftwatch/driftwatch/internal/testdb"
	"github.com/driftwatch/driftwatch/internal/testenv"
)

// TestOnlyTheOwnerSetsTTLs starts services through Run on the real
// ClickHouse, in a database migrated with the default retention (90 and
// 400 days): one that does not own the retention, configured with 30 and
// 100 days, twice, leaves the TTLs as they are, exports
// driftwatch_retention_ttl_mismatch 1 for a differing table and 0 for one
// that agrees (dead_letters, set to 90 for it); the owner with the same
// settings moves the TTLs and exports no such series.
func TestOnlyTheOwnerSetsTTLs(t *testing.T) {
	conn, db := testdb.Open(t, "service_ttl")
	brokers := testenv.KafkaBrokers(t)
	other := migration.Config{RetentionDays: 30, RollupRetentionDays: 100, Retention: map[string]int{"dead_letters": 90}}
	run := func(name string, owns bool) (mismatch map[string]float64) {
		t.Helper()
		c := config.DefaultCommon("127.0.0.1:0")
		c.ClickHouseURL = testdb.URL(t, db)
		c.KafkaBrokers = brokers
		c.LogLevel = "error"
		mismatch = map[string]float64{}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := Run(ctx, Spec{Name: name, Common: c, Migration: other, OwnsRetention: owns,
			Setup: func(ctx context.Context, rt *Runtime) (func(context.Context) error, error) {
				return func(context.Context) error {
					for _, table := range []string{"inferences", "drift_results", "dead_letters"} {
						mismatch[table] = mismatchOf(t, rt, name, table)
					}
					return nil
				}, nil
			}})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return mismatch
	}
	for i := 0; i < 2; i++ {
		got := run("monitor", false)
		if got["inferences"] != 1 || got["drift_results"] != 1 || got["dead_letters"] != 0 {
			t.Errorf("start %d: driftwatch_retention_ttl_mismatch %v, want inferences 1, drift_results 1, dead_letters 0", i+1, got)
		}
		if ms, err := migration.CheckTTLs(context.Background(), conn, migration.DefaultConfig()); err != nil || len(ms) != 0 {
			t.Errorf("start %d of a service that does not own the retention changed TTLs: %v %v", i+1, ms, err)
		}
	}
	if got := run("ingest", true); got["inferences"] != -1 {
		t.Errorf("the owner exports driftwatch_retention_ttl_mismatch: %v", got)
	}
	if ms, err := migration.CheckTTLs(context.Background(), conn, other); err != nil || len(ms) != 0 {
		t.Errorf("the owner did not set its TTLs: %v %v", ms, err)
	}
}

// mismatchOf reads driftwatch_retention_ttl_mismatch{service,table} from
// the service's registry; -1 when it has none.
func mismatchOf(t *testing.T, rt *Runtime, service, table string) float64 {
	t.Helper()
	mfs, err := rt.Server.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "driftwatch_retention_ttl_mismatch" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["service"] == service && labels["table"] == table {
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

// TestTTLCheckLogsChanges: the check logs the differing tables, with both
// values, once while they stay the same, and again when they change.
func TestTTLCheckLogsChanges(t *testing.T) {
	conn, _ := testdb.Open(t, "service_ttl_log")
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	c := newTTLCheck(prometheus.NewRegistry(), "trainer", log, conn, migration.Config{RetentionDays: 30, RollupRetentionDays: 400})
	c.check(context.Background())
	c.check(context.Background())
	first := buf.String()
	if n := strings.Count(first, "differs from this service's retention settings"); n != 1 ||
		!strings.Contains(first, "inferences keeps 90 days, configured 30") || strings.Contains(first, "drift_results keeps") {
		t.Errorf("after two checks (%d warnings):\n%s", n, first)
	}
	c.opts.RollupRetentionDays = 100
	c.check(context.Background())
	if rest := strings.TrimPrefix(buf.String(), first); !strings.Contains(rest, "drift_results keeps 400 days, configured 100") {
		t.Errorf("changed settings, no new warning:\n%s", rest)
	}
}

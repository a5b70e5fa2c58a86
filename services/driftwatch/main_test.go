package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/internal/testdb"
	"github.com/driftwatch/driftwatch/internal/testenv"
	"github.com/driftwatch/driftwatch/services/driftwatch/command/commandtest"
)

func run(args []string, env map[string]string) (int, string, string) {
	return commandtest.Run(args, env, commands())
}

func TestDispatch(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{name: "no command shows help", args: nil, wantCode: 2, wantOut: "create or update driftwatch's ClickHouse"},
		{name: "help", args: []string{"help"}, wantCode: 0, wantOut: "Usage: driftwatch <command>"},
		{name: "help for a command", args: []string{"help", "migrate"}, wantCode: 0, wantErr: "-retention-days"},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantErr: `driftwatch: unknown command "frobnicate"`},
		{name: "dry run prints the DDL", args: []string{"migrate", "-dry-run", "-retention-days", "12"}, wantCode: 0, wantOut: "INTERVAL 12 DAY"},
		{name: "bad flag value", args: []string{"migrate", "-retention-days", "0"}, wantCode: 2, wantErr: "retention_days: must be from 1 to 36500, got 0"},
		{name: "report needs a model", args: []string{"report"}, wantCode: 2, wantErr: "model: required (-model M)"},
		{name: "report -at is a time", args: []string{"report", "-model", "m", "-at", "yesterday"}, wantCode: 2, wantErr: `at: "yesterday" is not an RFC 3339 time`},
		{name: "backtest needs a model and a range", args: []string{"backtest"}, wantCode: 2, wantErr: "model: required (-model M)"},
		{name: "backtest format", args: []string{"backtest", "-model", "m", "-from", "2026-01-01T00:00:00Z", "-to", "2026-01-02T00:00:00Z", "-format", "csv"}, wantCode: 2, wantErr: `format: "csv" is neither table nor json`},
		{name: "backtest names the bad policy key", args: []string{"backtest", "-model", "m", "-from", "2026-01-01T00:00:00Z", "-to", "2026-01-02T00:00:00Z", "-policy", "testdata/backtest-bad-policy.yaml"}, wantCode: 1, wantErr: "field consecutiv not found"},
		{name: "backtest -check-config prints its own keys", args: []string{"backtest", "-model", "m", "-from", "2026-01-01T00:00:00Z", "-to", "2026-01-02T00:00:00Z", "-policy", "a.yaml", "-policy", "b.yaml", "-check-config"}, wantCode: 0, wantOut: "policy_files:\n    - a.yaml\n    - b.yaml\n"},
		{name: "report against no monitor", args: []string{"report", "-model", "m", "-monitor", "http://127.0.0.1:1", "-o", "/dev/null"}, wantCode: 1, wantErr: "report on model m from http://127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := run(tt.args, nil)
			if code != tt.wantCode || !strings.Contains(out, tt.wantOut) || !strings.Contains(errs, tt.wantErr) {
				t.Errorf("code %d, stdout %q, stderr %q; want %d, %q, %q", code, out, errs, tt.wantCode, tt.wantOut, tt.wantErr)
			}
		})
	}
}

func TestMigrateAgainstServer(t *testing.T) {
	base := testenv.ClickHouseURL(t)
	db := fmt.Sprintf("cli_migrate_%d", time.Now().UnixNano())
	u := base[:strings.LastIndex(base, "/")] + "/" + db
	defer dropDatabase(t, base, db)
	for i := 0; i < 2; i++ {
		code, out, errs := run([]string{"migrate"}, map[string]string{"DRIFTWATCH_CLICKHOUSE_URL": u})
		if code != 0 || !strings.Contains(out, "migrated "+u) {
			t.Fatalf("migrate #%d: code %d, stdout %q, stderr %q", i+1, code, out, errs)
		}
	}
	code, _, errs := run([]string{"migrate", "-clickhouse-url", "http://127.0.0.1:1/" + db}, nil)
	if code != 1 || !strings.Contains(errs, "driftwatch migrate: ") {
		t.Errorf("unreachable ClickHouse: code %d, stderr %q", code, errs)
	}
}

func dropDatabase(t *testing.T, base, db string) {
	conn, err := chclient.Open(context.Background(), chclient.Config{URL: base}, false)
	if err != nil {
		t.Logf("drop database %s: %v", db, err)
		return
	}
	defer conn.Close()
	_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+chsql.Ident(db))
}

// TestBacktestCommand runs driftwatch backtest against the real ClickHouse
// on ten hours of one model (200 labelled inferences an hour, written by
// SQL), hourly windows and a two-hour reference: JSON with 10 windows
// ending at hours 1..10, the first skipped as the monitor skips it (no
// reference before it yet), the next against the growing reference, the
// monitor's own policy as "current", nothing drifted; and the errors for
// an unknown model and an empty range.
func TestBacktestCommand(t *testing.T) {
	conn, db := testdb.Open(t, "cli_backtest")
	start := time.Now().UTC().Truncate(time.Hour).Add(-24 * time.Hour)
	ctx := context.Background()
	for _, q := range []string{
		`INSERT INTO inferences (event_id, model_id, model_version, prediction_id, timestamp, features_numeric, prediction_label, prediction_score, ingested_at)
			SELECT concat('e', toString(number)), 'm', 'v1', concat('p', toString(number)), ` + chsql.Time(start) + ` + toIntervalSecond(number * 18),
			       map('f0', randNormal(0, 1)), if(number % 3 = 0, '1', '0'), (number % 100) / 100, now64(3) FROM numbers(2000)`,
		`INSERT INTO outcomes (event_id, model_id, prediction_id, timestamp, actual_label, ingested_at)
			SELECT concat('o', event_id), model_id, prediction_id, timestamp + toIntervalMinute(1), prediction_label, now64(3) FROM inferences`,
	} {
		if err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	at := func(h int) string { return start.Add(time.Duration(h) * time.Hour).Format(time.RFC3339) }
	env := map[string]string{"DRIFTWATCH_CLICKHOUSE_URL": testdb.URL(t, db)}
	args := []string{"backtest", "-model", "m", "-from", at(0), "-to", at(10), "-window", "1h", "-step", "1h", "-reference", "2h", "-format", "json"}
	code, out, errs := run(args, env)
	if code != 0 {
		t.Fatalf("code %d, stderr %s", code, errs)
	}
	var rep struct {
		Windows  int `json:"windows"`
		Policies []struct {
			Name      string            `json:"name"`
			Alerts    []json.RawMessage `json:"alerts"`
			Evaluated int               `json:"evaluated"`
		} `json:"policies"`
		Performance struct {
			Metric string `json:"metric"`
		} `json:"performance"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if rep.Windows != 10 || len(rep.Policies) != 1 || rep.Policies[0].Name != "current" || rep.Policies[0].Evaluated != 9 ||
		len(rep.Policies[0].Alerts) != 0 || rep.Performance.Metric != "roc_auc" {
		t.Fatalf("report %+v", rep)
	}
	if !strings.Contains(errs, "backtest: policy current: 10/10 windows") {
		t.Errorf("progress: %q", errs)
	}
	code, _, errs = run([]string{"backtest", "-model", "nope", "-from", at(0), "-to", at(10)}, env)
	if code != 1 || !strings.Contains(errs, "unknown model nope") {
		t.Errorf("unknown model: code %d, stderr %q", code, errs)
	}
	code, _, errs = run([]string{"backtest", "-model", "m", "-from", at(-100), "-to", at(-90)}, env)
	if code != 1 || !strings.Contains(errs, "no data in range") {
		t.Errorf("empty range: code %d, stderr %q", code, errs)
	}
}

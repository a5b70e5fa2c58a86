package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/internal/chsql"
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

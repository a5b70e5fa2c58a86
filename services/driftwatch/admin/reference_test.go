package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/internal/testdb"
	"github.com/driftwatch/driftwatch/monitor"
	"github.com/driftwatch/driftwatch/services/driftwatch/command"
)

// TestReferenceCommands runs reference set and reference show against the
// embedded ClickHouse: set computes the period's aggregates and writes
// them; show lists them; a period without rows and bad times are errors.
func TestReferenceCommands(t *testing.T) {
	conn, db := testdb.Open(t, "reference_cli")
	url := testdb.URL(t, db)
	ctx := context.Background()
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var vals []string
	for i := range 500 {
		vals = append(vals, fmt.Sprintf("('e%d', 'm1', 'v1', 'p%d', %s, map('age', %d), map('country', 'c%d'), now64(3))", i, i, chsql.Time(start.Add(time.Duration(i)*time.Minute)), 20+i%40, i%3))
	}
	if err := conn.Exec(ctx, "INSERT INTO inferences (event_id, model_id, model_version, prediction_id, timestamp, features_numeric, features_categorical, ingested_at) VALUES "+strings.Join(vals, ", ")); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"DRIFTWATCH_CLICKHOUSE_URL": url}
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := command.Main(args, command.Env{Stdout: &out, Stderr: &errb, LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}, Commands())
		return code, out.String(), errb.String()
	}

	code, out, errs := run("reference", "set", "-model", "m1", "-from", "2026-11-01T00:00:00Z", "-to", "2026-11-01T04:00:00Z")
	if code != 0 || !strings.Contains(out, "240 inferences, 1 numeric and 1 categorical features") {
		t.Fatalf("reference set: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, errs = run("reference", "show", "-model", "m1", "-json")
	var ps []monitor.ReferenceProfile
	if code != 0 || json.Unmarshal([]byte(out), &ps) != nil || len(ps) != 1 {
		t.Fatalf("reference show: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if p := ps[0]; p.Source != monitor.ProfileSet || p.Rows != 240 || !p.Start.Equal(start) || !p.End.Equal(start.Add(4*time.Hour)) || !strings.Contains(p.CreatedBy, "@") {
		t.Errorf("profile %+v", p)
	}
	if code, out, _ := run("reference", "show"); code != 0 || !strings.Contains(out, "m1") || !strings.Contains(out, "set") {
		t.Errorf("reference show table: exit %d, %q", code, out)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"reference", "set", "-model", "m1", "-from", "2025-01-01T00:00:00Z", "-to", "2025-01-02T00:00:00Z"}, "no inferences of the model in that period"},
		{[]string{"reference", "set", "-model", "m1", "-from", "yesterday", "-to", "2025-01-02T00:00:00Z"}, `from: "yesterday" is not an RFC 3339 time`},
		{[]string{"reference", "set", "-model", "m1", "-from", "2025-01-02T00:00:00Z", "-to", "2025-01-01T00:00:00Z"}, "from (2025-01-02T00:00:00Z) must be before to"},
		{[]string{"reference", "set", "-from", "2025-01-01T00:00:00Z", "-to", "2025-01-02T00:00:00Z"}, "model: required"},
		{[]string{"reference", "show", "-model", "nobody"}, "model nobody has no persisted reference yet"},
	} {
		if code, _, errs := run(c.args...); code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want an error with %q", c.args, code, errs, c.want)
		}
	}
}

package bench

import (
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/services/driftwatch/command/commandtest"
)

func TestBenchRetrainConfig(t *testing.T) {
	commandtest.RunCases(t, []string{"bench", "retrain"}, Commands(), []commandtest.Case{
		{Name: "defaults are valid", Args: []string{"-check-config"}, WantOut: "rows: 1000000"},
		{Name: "everything set", Args: []string{"-check-config", "-rows", "5000", "-features", "3", "-repeat", "5",
			"-server-pid", "42", "-keep", "-work-dir", "/tmp"}, WantOut: "repeat: 5"},
		{Name: "help explains the phases and flags", Args: []string{"-help"},
			WantErr: []string{"load", "retrain", "dataset", "train", "evaluate", "end to end", "-rows", "-features", "-repeat", "-keep", "VmHWM"}},
		{Name: "too few rows", Args: []string{"-rows", "10"}, WantCode: 2, WantErr: []string{"rows: must be from 1000 to 100000000, got 10"}},
		{Name: "no features", Args: []string{"-features", "0"}, WantCode: 2, WantErr: []string{"features: must be from 1 to 1000, got 0"}},
		{Name: "zero repeats", Args: []string{"-repeat", "0"}, WantCode: 2, WantErr: []string{"repeat: must be from 1 to 100, got 0"}},
		{Name: "every problem at once", Args: []string{"-rows", "0", "-features", "1001", "-repeat", "101", "-server-pid", "-3", "-clickhouse-url", ""},
			WantCode: 2, WantErr: []string{"rows:", "features:", "repeat:", "server_pid:", "clickhouse_url:"}},
		{Name: "positional junk", Args: []string{"now"}, WantCode: 2, WantErr: []string{"unexpected arguments"}},
	})
}

// TestBenchRetrainSQL checks the generated statements' shape: every
// feature in the map, both tables from the same rows, the windows.
func TestBenchRetrainSQL(t *testing.T) {
	evalTo := time.Date(2026, 1, 9, 11, 0, 0, 0, time.UTC)
	evalFrom := evalTo.Add(-6 * time.Hour)
	from := evalFrom.Add(-7 * 24 * time.Hour)
	qs := benchRetrainSQL(1000, 100, 4, from, evalFrom, evalTo)
	if len(qs) != 2 {
		t.Fatalf("got %d statements, want 2", len(qs))
	}
	for i, want := range [][]string{
		{"INSERT INTO inferences", "'f00', f00", "'f03', f03", "FROM numbers(1000)", "if(number < 900",
			"toDateTime64('2026-01-02 05:00:00.000', 3, 'UTC')", "toDateTime64('2026-01-09 05:00:00.000', 3, 'UTC')"},
		{"INSERT INTO outcomes", "concat('p', toString(number))", "label", "FROM numbers(1000)"},
	} {
		for _, w := range want {
			if !strings.Contains(qs[i], w) {
				t.Errorf("statement %d lacks %q:\n%s", i, w, qs[i])
			}
		}
	}
	if strings.Contains(qs[0], "'f04'") {
		t.Errorf("generated SQL has more features than asked for:\n%s", qs[0])
	}
}

package bench

import (
	"strings"
	"testing"
	"time"
)

func TestBenchRetrainConfig(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
		wantErr  []string
	}{
		{name: "defaults are valid", args: []string{"-check-config"}, wantOut: "rows: 1000000"},
		{name: "everything set", args: []string{"-check-config", "-rows", "5000", "-features", "3", "-repeat", "5",
			"-server-pid", "42", "-keep", "-work-dir", "/tmp"}, wantOut: "repeat: 5"},
		{name: "help explains the phases and flags", args: []string{"-help"},
			wantErr: []string{"load", "retrain", "dataset", "train", "evaluate", "end to end", "-rows", "-features", "-repeat", "-keep", "VmHWM"}},
		{name: "too few rows", args: []string{"-rows", "10"}, wantCode: 2, wantErr: []string{"rows: must be from 1000 to 100000000, got 10"}},
		{name: "no features", args: []string{"-features", "0"}, wantCode: 2, wantErr: []string{"features: must be from 1 to 1000, got 0"}},
		{name: "zero repeats", args: []string{"-repeat", "0"}, wantCode: 2, wantErr: []string{"repeat: must be from 1 to 100, got 0"}},
		{name: "every problem at once", args: []string{"-rows", "0", "-features", "1001", "-repeat", "101", "-server-pid", "-3", "-clickhouse-url", ""},
			wantCode: 2, wantErr: []string{"rows:", "features:", "repeat:", "server_pid:", "clickhouse_url:"}},
		{name: "positional junk", args: []string{"now"}, wantCode: 2, wantErr: []string{"unexpected arguments"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := run(append([]string{"bench", "retrain"}, tt.args...), nil)
			if code != tt.wantCode || !strings.Contains(out, tt.wantOut) {
				t.Fatalf("code %d, stdout %q, stderr %q; want code %d, stdout with %q", code, out, errs, tt.wantCode, tt.wantOut)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr %q does not contain %q", errs, w)
				}
			}
		})
	}
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

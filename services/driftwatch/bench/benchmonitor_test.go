package bench

import (
	"strings"
	"testing"
	"time"
)

func TestBenchMonitorConfig(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
		wantErr  []string
	}{
		{name: "defaults are valid", args: []string{"-check-config"}, wantOut: "rows: 1000000"},
		{name: "everything set", args: []string{"-check-config", "-rows", "5000", "-numeric", "3", "-categorical", "0", "-repeat", "5",
			"-evidently=false", "-sample-cap", "1000", "-optimize", "-server-pid", "42", "-keep", "-work-dir", "/tmp"}, wantOut: "repeat: 5"},
		{name: "help explains the phases and flags", args: []string{"-help"},
			wantErr: []string{"load", "export", "monitor", "evidently", "-rows", "-numeric", "-categorical", "-repeat", "-evidently", "VmHWM"}},
		{name: "too few rows", args: []string{"-rows", "10"}, wantCode: 2, wantErr: []string{"rows: must be from 1000 to 100000000, got 10"}},
		{name: "no numeric features", args: []string{"-numeric", "0"}, wantCode: 2, wantErr: []string{"numeric: must be from 1 to 1000, got 0"}},
		{name: "negative categorical", args: []string{"-categorical", "-1"}, wantCode: 2, wantErr: []string{"categorical: must be from 0 to 1000, got -1"}},
		{name: "zero repeats", args: []string{"-repeat", "0"}, wantCode: 2, wantErr: []string{"repeat: must be from 1 to 100, got 0"}},
		{name: "evidently needs python", args: []string{"-python", ""}, wantCode: 2, wantErr: []string{"python, script: both are needed unless -evidently=false"}},
		{name: "no python is fine without evidently", args: []string{"-check-config", "-evidently=false", "-python", ""}, wantOut: "evidently: false"},
		{name: "every problem at once", args: []string{"-rows", "0", "-numeric", "0", "-repeat", "101", "-sample-cap", "-1", "-server-pid", "-3", "-clickhouse-url", ""},
			wantCode: 2, wantErr: []string{"rows:", "numeric:", "repeat:", "sample_cap:", "server_pid:", "clickhouse_url:"}},
		{name: "positional junk", args: []string{"now"}, wantCode: 2, wantErr: []string{"unexpected arguments"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := run(append([]string{"bench", "monitor"}, tt.args...), nil)
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

// TestBenchDataSQL checks the generated statement's shape: every feature
// in its map, the drift only in the current hour, the row count.
func TestBenchDataSQL(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 8, 0, 0, 0, time.UTC)
	sql := benchDataSQL(1000, 9, 4, t0)
	for _, want := range []string{"FROM numbers(2000)", "number >= 1000 AS cur", "'f00', f00", "'f08', f08", "'c03', c03",
		"if(cur, (", "'unseen'", "toDateTime64('2026-01-02 08:00:00.000', 3, 'UTC')"} {
		if !strings.Contains(sql, want) {
			t.Errorf("generated SQL lacks %q:\n%s", want, sql)
		}
	}
	if strings.Contains(sql, "'f09'") || strings.Contains(sql, "'c04'") {
		t.Errorf("generated SQL has more features than asked for:\n%s", sql)
	}
	exp := benchExportSQL("/tmp/x.parquet", 2, 1, t0.Add(time.Hour))
	if !strings.Contains(exp, "file('/tmp/x.parquet', 'Parquet')") || !strings.Contains(exp, "features_categorical['c00'] AS c00") {
		t.Errorf("export SQL: %s", exp)
	}
}

func TestMedian(t *testing.T) {
	for _, tt := range []struct {
		in   []float64
		want float64
	}{{[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %g, want %g", tt.in, got, tt.want)
		}
	}
}

package bench

import (
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/services/driftwatch/command/commandtest"
)

func TestBenchMonitorConfig(t *testing.T) {
	commandtest.RunCases(t, []string{"bench", "monitor"}, Commands(), []commandtest.Case{
		{Name: "defaults are valid", Args: []string{"-check-config"}, WantOut: "rows: 1000000"},
		{Name: "everything set", Args: []string{"-check-config", "-rows", "5000", "-numeric", "3", "-categorical", "0", "-repeat", "5",
			"-evidently=false", "-sample-cap", "1000", "-optimize", "-server-pid", "42", "-keep", "-work-dir", "/tmp"}, WantOut: "repeat: 5"},
		{Name: "help explains the phases and flags", Args: []string{"-help"},
			WantErr: []string{"load", "export", "monitor", "evidently", "-rows", "-numeric", "-categorical", "-repeat", "-evidently", "VmHWM"}},
		{Name: "too few rows", Args: []string{"-rows", "10"}, WantCode: 2, WantErr: []string{"rows: must be from 1000 to 100000000, got 10"}},
		{Name: "no numeric features", Args: []string{"-numeric", "0"}, WantCode: 2, WantErr: []string{"numeric: must be from 1 to 1000, got 0"}},
		{Name: "negative categorical", Args: []string{"-categorical", "-1"}, WantCode: 2, WantErr: []string{"categorical: must be from 0 to 1000, got -1"}},
		{Name: "zero repeats", Args: []string{"-repeat", "0"}, WantCode: 2, WantErr: []string{"repeat: must be from 1 to 100, got 0"}},
		{Name: "evidently needs python", Args: []string{"-python", ""}, WantCode: 2, WantErr: []string{"python, script: both are needed unless -evidently=false"}},
		{Name: "no python is fine without evidently", Args: []string{"-check-config", "-evidently=false", "-python", ""}, WantOut: "evidently: false"},
		{Name: "every problem at once", Args: []string{"-rows", "0", "-numeric", "0", "-repeat", "101", "-sample-cap", "-1", "-server-pid", "-3", "-clickhouse-url", ""},
			WantCode: 2, WantErr: []string{"rows:", "numeric:", "repeat:", "sample_cap:", "server_pid:", "clickhouse_url:"}},
		{Name: "positional junk", Args: []string{"now"}, WantCode: 2, WantErr: []string{"unexpected arguments"}},
	})
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

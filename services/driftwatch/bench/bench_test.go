package bench

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/internal/testenv"
	"github.com/driftwatch/driftwatch/internal/teststack"
	"github.com/driftwatch/driftwatch/services/driftwatch/command"
)

func TestBenchIngestConfig(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
		wantErr  []string
	}{
		{name: "defaults are valid", args: []string{"-check-config"}, wantOut: "events: 500000"},
		{name: "everything set", args: []string{"-check-config", "-events", "1000", "-repeat", "3", "-in-process", "-cpuprofile", "/tmp/x.prof",
			"-partitions", "6", "-batch-rows", "20000", "-batch-age", "250ms", "-freshness-duration", "5s", "-freshness-rate", "1000", "-cpu-pids", "1,2"},
			wantOut: "repeat: 3"},
		{name: "help explains the phases", args: []string{"-help"}, wantErr: []string{"produce", "raw", "e2e", "freshness", "-ingest-bin"}},
		{name: "no events", args: []string{"-events", "0"}, wantCode: 2, wantErr: []string{"events: must be from 1"}},
		{name: "zero repeats", args: []string{"-repeat", "0"}, wantCode: 2, wantErr: []string{"repeat: must be from 1 to 100"}},
		{name: "binary and in-process", args: []string{"-in-process", "-ingest-bin", "/bin/true"}, wantCode: 2, wantErr: []string{"in_process, ingest_bin: give at most one"}},
		{name: "profile needs in-process", args: []string{"-cpuprofile", "x.prof"}, wantCode: 2, wantErr: []string{"cpuprofile: needs -in-process"}},
		{name: "short freshness phase", args: []string{"-freshness-duration", "100ms"}, wantCode: 2, wantErr: []string{"freshness_duration: must be 0 (skip) or at least 1s"}},
		{name: "tiny batch age", args: []string{"-batch-age", "1ms"}, wantCode: 2, wantErr: []string{"batch_age: must be 0"}},
		{name: "bad pid", args: []string{"-cpu-pids", "java"}, wantCode: 2, wantErr: []string{`cpu_pids: "java" is not a process id`}},
		{name: "shares", args: []string{"-duplicate-share", "0.5", "-malformed-share", "0.5"}, wantCode: 2, wantErr: []string{"duplicate_share, malformed_share"}},
		{name: "every problem at once", args: []string{"-events", "-1", "-partitions", "0", "-batch-rows", "-1", "-freshness-rate", "-1", "-phase-timeout", "0s", "-kafka-brokers", "nohost"},
			wantCode: 2, wantErr: []string{"events:", "partitions:", "batch_rows:", "freshness_rate:", "phase_timeout:", "kafka_brokers:"}},
		{name: "positional junk", args: []string{"now"}, wantCode: 2, wantErr: []string{"unexpected arguments"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := run(append([]string{"bench", "ingest"}, tt.args...), nil)
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

func TestBenchHelpListed(t *testing.T) {
	code, out, _ := run([]string{"help"}, nil)
	if code != 0 || !strings.Contains(out, "bench ingest") {
		t.Errorf("help: code %d, stdout %q; want the bench ingest command listed", code, out)
	}
	code, _, errs := run([]string{"help", "bench", "ingest"}, nil)
	if code != 0 || !strings.Contains(errs, "-freshness-duration") {
		t.Errorf("help bench ingest: code %d, stderr %q", code, errs)
	}
}

func TestQuantile(t *testing.T) {
	// Nearest rank on the sorted values 1..101: p50 is 51, p99 is 100.
	xs := make([]float64, 101)
	for i := range xs {
		xs[len(xs)-1-i] = float64(i + 1)
	}
	if got := nearestRank(xs, 0.5); got != 51 {
		t.Errorf("p50 = %g, want 51", got)
	}
	if got := nearestRank(xs, 0.99); got != 100 {
		t.Errorf("p99 = %g, want 100", got)
	}
	if xs[0] != 101 {
		t.Error("quantile sorted its input in place")
	}
}

// BenchmarkIngestEndToEnd runs `driftwatch bench ingest` with 100,000
// events and a 10 s freshness phase against the Kafka and ClickHouse in
// the environment, with the ingest binary built from this tree, and reports
// its figures (never asserted).
func BenchmarkIngestEndToEnd(b *testing.B) {
	brokers := testenv.KafkaBrokers(b)
	chURL := testenv.ClickHouseURL(b)
	bin := teststack.Build(b, "./services/ingest")
	cfg := defaultBenchIngestConfig()
	cfg.KafkaBrokers, cfg.ClickHouseURL = brokers, chURL
	cfg.Events = 100000
	cfg.FreshnessFor = 10 * time.Second
	env := command.Env{Stdout: io.Discard, Stderr: io.Discard}
	for i := 0; b.Loop(); i++ {
		r, err := benchIngestOnce(context.Background(), cfg, env, bin, i)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.E2ERate, "e2e-events/s")
		b.ReportMetric(r.RawRate, "raw-events/s")
		b.ReportMetric(r.E2ERate/r.RawRate, "e2e/raw")
		b.ReportMetric(r.RSSMiB, "peak-RSS-MiB")
		b.ReportMetric(r.FreshP99, "freshness-p99-s")
		b.ReportMetric(0, "ns/op")
	}
}

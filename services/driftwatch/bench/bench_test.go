package bench

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/internal/loadgen"
	"github.com/driftwatch/driftwatch/internal/testenv"
	"github.com/driftwatch/driftwatch/internal/teststack"
	"github.com/driftwatch/driftwatch/schemas"
	"github.com/driftwatch/driftwatch/services/driftwatch/command"
	"github.com/driftwatch/driftwatch/services/driftwatch/command/commandtest"
)

func TestBenchIngestConfig(t *testing.T) {
	commandtest.RunCases(t, []string{"bench", "ingest"}, Commands(), []commandtest.Case{
		{Name: "defaults are valid", Args: []string{"-check-config"}, WantOut: "events: 500000"},
		{Name: "everything set", Args: []string{"-check-config", "-events", "1000", "-repeat", "3", "-in-process", "-cpuprofile", "/tmp/x.prof",
			"-partitions", "6", "-batch-rows", "20000", "-batch-age", "250ms", "-freshness-duration", "5s", "-freshness-rate", "1000", "-cpu-pids", "1,2"},
			WantOut: "repeat: 3"},
		{Name: "help explains the phases", Args: []string{"-help"}, WantErr: []string{"produce", "raw", "e2e", "freshness", "-ingest-bin"}},
		{Name: "no events", Args: []string{"-events", "0"}, WantCode: 2, WantErr: []string{"events: must be from 1"}},
		{Name: "zero repeats", Args: []string{"-repeat", "0"}, WantCode: 2, WantErr: []string{"repeat: must be from 1 to 100"}},
		{Name: "binary and in-process", Args: []string{"-in-process", "-ingest-bin", "/bin/true"}, WantCode: 2, WantErr: []string{"in_process, ingest_bin: give at most one"}},
		{Name: "profile needs in-process", Args: []string{"-cpuprofile", "x.prof"}, WantCode: 2, WantErr: []string{"cpuprofile: needs -in-process"}},
		{Name: "short freshness phase", Args: []string{"-freshness-duration", "100ms"}, WantCode: 2, WantErr: []string{"freshness_duration: must be 0 (skip) or at least 1s"}},
		{Name: "tiny batch age", Args: []string{"-batch-age", "1ms"}, WantCode: 2, WantErr: []string{"batch_age: must be 0"}},
		{Name: "bad pid", Args: []string{"-cpu-pids", "java"}, WantCode: 2, WantErr: []string{`cpu_pids: "java" is not a process id`}},
		{Name: "shares", Args: []string{"-duplicate-share", "0.5", "-malformed-share", "0.5"}, WantCode: 2, WantErr: []string{"duplicate_share, malformed_share"}},
		{Name: "every problem at once", Args: []string{"-events", "-1", "-partitions", "0", "-batch-rows", "-1", "-freshness-rate", "-1", "-phase-timeout", "0s", "-kafka-brokers", "nohost"},
			WantCode: 2, WantErr: []string{"events:", "partitions:", "batch_rows:", "freshness_rate:", "phase_timeout:", "kafka_brokers:"}},
		{Name: "positional junk", Args: []string{"now"}, WantCode: 2, WantErr: []string{"unexpected arguments"}},
		{Name: "large events", Args: []string{"-check-config", "-event-bytes", "1047552", "-batch-bytes", "8388608", "-queue-bytes", "4194304"}, WantOut: "event_bytes: 1047552"},
		{Name: "events over a Kafka message", Args: []string{"-event-bytes", "1048576"}, WantCode: 2, WantErr: []string{"event_bytes: must be 0 (loadgen's events) or from 1024 to 1047552"}},
		{Name: "tiny byte bounds", Args: []string{"-batch-bytes", "10", "-queue-bytes", "10"}, WantCode: 2, WantErr: []string{"batch_bytes: must be 0", "queue_bytes: must be 0"}},
	})
}

// TestPadder: a padded inference is exactly the size asked for, still
// decodes, and carries the payload; other events pass unchanged.
func TestPadder(t *testing.T) {
	lc := loadgen.DefaultConfig()
	lc.MalformedShare = 0.2
	g, err := loadgen.New(lc)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := schemas.NewDecoder(schemas.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const size = 200_000
	p := newPadder(size, 1)
	padded := 0
	for range 500 {
		ev := g.Next()
		orig := string(ev.Value)
		out := p.event(ev)
		var inf schemas.Inference
		_, derr := dec.DecodeInference(ev.Value, &inf)
		_, perr := dec.DecodeInference(out.Value, &inf)
		if ev.Kind != schemas.KindInference || derr != nil {
			if derr == nil && string(out.Value) != orig {
				t.Fatalf("a %s event was changed", ev.Kind)
			}
			continue
		}
		padded++
		if len(out.Value) != size || perr != nil || len(inf.Categorical["payload"]) == 0 {
			t.Fatalf("padded inference: %d bytes (want %d), decode error %v, payload of %d bytes", len(out.Value), size, perr, len(inf.Categorical["payload"]))
		}
	}
	if padded < 300 {
		t.Errorf("%d of 500 events padded; want the valid inferences (about 400)", padded)
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

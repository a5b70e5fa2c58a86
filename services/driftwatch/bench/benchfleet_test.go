package bench

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/driftwatch/driftwatch/internal/testenv"
	"github.com/driftwatch/driftwatch/services/driftwatch/command/commandtest"
)

func TestBenchFleetConfig(t *testing.T) {
	commandtest.RunCases(t, []string{"bench", "fleet"}, Commands(), []commandtest.Case{
		{Name: "defaults are valid", Args: []string{"-check-config"}, WantOut: "rows: 20000,100000"},
		{Name: "everything set", Args: []string{"-check-config", "-models", "10,100", "-rows", "1000000,10000000", "-numeric", "60", "-categorical", "0",
			"-window", "30m", "-step", "30s", "-steps", "5", "-concurrency", "2", "-server-pid", "42", "-keep"}, WantOut: "steps: 5"},
		{Name: "help explains the modes", Args: []string{"-help"},
			WantErr: []string{"full", "incremental", "warm-up", "-models", "-rows", "-steps", "/proc/PID/stat"}},
		{Name: "not a list", Args: []string{"-models", "ten"}, WantCode: 2, WantErr: []string{`models: "ten" is not a list of numbers from 1 to 1000`}},
		{Name: "too few rows", Args: []string{"-rows", "100000,10"}, WantCode: 2, WantErr: []string{"rows:"}},
		{Name: "two CPU profiles", Args: []string{"-cpuprofile", "a.pprof", "-cycle-profiles", "b"}, WantCode: 2, WantErr: []string{"cpuprofile, cycle_profiles: one CPU profile at a time"}},
		{Name: "step not dividing the window", Args: []string{"-window", "1h", "-step", "7m"}, WantCode: 2, WantErr: []string{"window, step:"}},
		{Name: "every problem at once", Args: []string{"-models", "0", "-rows", "x", "-numeric", "0", "-steps", "0", "-concurrency", "0", "-server-pid", "-1"},
			WantCode: 2, WantErr: []string{"models:", "rows:", "numeric:", "steps:", "concurrency:", "server_pid:"}},
	})
}

// TestProcCPUSeconds reads this process's CPU time from /proc, as the
// benchmark reads the server's: not negative, and growing with work.
func TestProcCPUSeconds(t *testing.T) {
	pid := os.Getpid()
	before := procCPUSeconds(pid)
	x := 0.0
	for i := range 50_000_000 {
		x += float64(i % 7)
	}
	after := procCPUSeconds(pid)
	if x == 0 || !(after > before) {
		t.Errorf("CPU seconds %v then %v after work", before, after)
	}
}

// TestBenchFleetRuns runs a small fleet on the test stack's ClickHouse
// with a 30-minute window (the rows must be laid out on the window, not on
// an hour: the load checks where they are) and checks that both monitors
// were measured and compared.
func TestBenchFleetRuns(t *testing.T) {
	url := testenv.ClickHouseURL(t)
	code, stdout, stderr := run([]string{"bench", "fleet", "-clickhouse-url", url, "-models", "1", "-rows", "20000", "-reference-rows", "5000",
		"-window", "30m", "-step", "5m", "-steps", "1", "-concurrency", "1", "-query-stats"}, nil)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	// The incremental monitor's statements are recorded (its manifest
	// read: its partials are written behind, not at every step), and the
	// means printed.
	for _, want := range []string{"full", "incremental", "x cycle", "… window_partial_buckets", "means at 20000 rows/window, 1 models"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, "load: 1 models × 20000 rows per window") {
		t.Errorf("stderr lacks the load line:\n%s", stderr)
	}
	// -incremental-only measures the incremental monitor alone; with
	// -cycle-profiles, a CPU profile of each of its timed cycles.
	prefix := filepath.Join(t.TempDir(), "cycle")
	code, stdout, stderr = run([]string{"bench", "fleet", "-clickhouse-url", url, "-models", "1", "-rows", "20000", "-reference-rows", "5000",
		"-window", "30m", "-step", "5m", "-steps", "2", "-concurrency", "1", "-incremental-only", "-cycle-profiles", prefix}, nil)
	if code != 0 {
		t.Fatalf("-incremental-only: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "incremental") || strings.Contains(stdout, " full ") || strings.Contains(stdout, "speed-up") {
		t.Errorf("-incremental-only printed a full row or a speed-up:\n%s", stdout)
	}
	profiles, _ := filepath.Glob(prefix + "-*.pprof")
	if want := []string{prefix + "-20000x1-1.pprof", prefix + "-20000x1-2.pprof"}; !slices.Equal(profiles, want) {
		t.Fatalf("cycle profiles %v, want %v", profiles, want)
	}
	for _, f := range profiles {
		// A CPU profile is gzipped protobuf.
		if b, err := os.ReadFile(f); err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
			t.Errorf("%s: not a gzipped profile (%d bytes, %v)", f, len(b), err)
		}
	}
}

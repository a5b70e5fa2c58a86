package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/migration"
	"github.com/driftwatch/driftwatch/monitor"
	"github.com/driftwatch/driftwatch/monitor/multivariate"
	"github.com/driftwatch/driftwatch/monitor/perf"
	"github.com/driftwatch/driftwatch/monitor/policy"
	"github.com/driftwatch/driftwatch/monitor/window"
	"github.com/driftwatch/driftwatch/services/driftwatch/command"
)

// Targets `bench monitor` prints its figures next to.
const (
	targetMonitorSeconds = 5.0
	targetEvidentlyRatio = 50.0
	// targetSlicesRatio bounds the evaluation time with 10 slices over the
	// population-only time.
	targetSlicesRatio = 2.0
	// targetExtrasRatio bounds the evaluation time (drift and performance)
	// with performance estimation and both multivariate methods over the
	// time without them (issue 18).
	targetExtrasRatio = 1.3
)

// benchModel is the model_id the benchmark's rows carry.
const benchModel = "bench"

// benchMonitorConfig is the configuration of `driftwatch bench monitor`.
type benchMonitorConfig struct {
	config.ClickHouse `yaml:",inline"`
	config.Logging    `yaml:",inline"`
	Rows              int64  `yaml:"rows" flag:"rows" help:"rows in each window: the reference and the current window get this many each"`
	Numeric           int    `yaml:"numeric" flag:"numeric" help:"numeric features per row"`
	Categorical       int    `yaml:"categorical" flag:"categorical" help:"categorical features per row"`
	Repeat            int    `yaml:"repeat" flag:"repeat" help:"evaluate (and run every Evidently pass) this many times on the same data and print medians"`
	Evidently         bool   `yaml:"evidently" flag:"evidently" help:"run the Evidently comparison (-evidently=false skips Python)"`
	Python            string `yaml:"python" flag:"python" help:"Python interpreter with evidently installed (scripts/deps.sh python)"`
	Script            string `yaml:"script" flag:"script" help:"the Evidently side of the benchmark"`
	EvidentlyPasses   string `yaml:"evidently_passes" flag:"evidently-passes" help:"comma-separated Evidently passes to run (default, ks+chisquare, psi+psi, wasserstein+jensenshannon, jensenshannon); empty runs all, and only all give the speed-up"`
	WorkDir           string `yaml:"work_dir" flag:"work-dir" help:"directory for the Parquet export; the ClickHouse server must be able to write there (empty: the system temp directory)"`
	SampleCap         int    `yaml:"sample_cap" flag:"sample-cap" help:"monitor's per-feature sample cap for the rank tests; 0 keeps its default"`
	Optimize          bool   `yaml:"optimize" flag:"optimize" help:"OPTIMIZE TABLE inferences FINAL after loading, as after background merges"`
	ServerPID         int    `yaml:"server_pid" flag:"server-pid" help:"process id of the ClickHouse server whose memory is printed; 0 looks for a local clickhouse-embedded serving the URL's port"`
	Keep              bool   `yaml:"keep" flag:"keep" help:"keep the benchmark database and the Parquet file"`
	Slices            bool   `yaml:"slices" flag:"slices" help:"also evaluate with 10 slices (segment_by the second categorical feature, 10 categories) and print the time next to the population-only one"`
	Extras            bool   `yaml:"extras" flag:"extras" help:"also time drift and performance evaluation with performance estimation (CBPE) and both multivariate methods on, next to the same evaluation with them off"`
}

func defaultBenchMonitorConfig() *benchMonitorConfig {
	return &benchMonitorConfig{
		ClickHouse:  config.DefaultClickHouse(),
		Logging:     config.DefaultLogging(),
		Rows:        1_000_000,
		Numeric:     50,
		Categorical: 10,
		Repeat:      1,
		Evidently:   true,
		Python:      filepath.Join(".deps", "venv", "bin", "python"),
		Script:      filepath.Join("testdata", "bench", "evidently_drift.py"),
		Slices:      true,
		Extras:      true,
	}
}

// Validate reports every invalid setting, each naming its key.
func (c *benchMonitorConfig) Validate() error {
	var p problems
	inRange(&p, "rows", c.Rows, 1000, 100_000_000)
	inRange(&p, "numeric", c.Numeric, 1, 1000)
	inRange(&p, "categorical", c.Categorical, 0, 1000)
	p.repeat(c.Repeat)
	if c.SampleCap < 0 {
		p.add("sample_cap: must be 0 (monitor's default) or positive, got %d", c.SampleCap)
	}
	p.serverPID(c.ServerPID)
	if c.Evidently && (c.Python == "" || c.Script == "") {
		p.add("python, script: both are needed unless -evidently=false")
	}
	return p.join(c.ClickHouse.Validate(), c.Logging.Validate())
}

func monitorCommand() command.Command {
	return command.Command{
		Name:    "bench monitor",
		Summary: "measure one monitor evaluation of 2x1M rows on ClickHouse: wall time, peak RSS, speed-up over Evidently",
		Usage: `driftwatch bench monitor measures one monitor evaluation — window.Compute's
queries, policy.Evaluate's statistics and the drift_results insert, i.e.
monitor.Monitor.Evaluate — against the configured ClickHouse, and compares
it with Evidently's DataDriftPreset on the same rows. Every run uses a fresh
database (named after the run, beside the one in the URL) created with the
migrations, and drops it at the end unless -keep.

Phases, in order (progress on stderr):
  load       -rows reference rows (hour 1) and -rows current rows (hour 2)
             of one model are generated inside ClickHouse by one
             INSERT … SELECT FROM numbers(2·rows): -numeric numeric features
             (normal, log-normal, integers 0..99, rounded normal,
             exponential, in turn; every 4th shifted by x·1.1+0.3 and every
             8th from the 7th by +0.02 in the current hour) and -categorical
             categorical ones (3, 10, 17, … categories, skewed; every 3rd
             re-skewed in the current hour, the last with 2% unseen values),
             plus a score and a label. Deterministic: hashes of the row
             number, no Kafka. With -optimize the table is merged after.
  export     with Evidently, the same rows go to a Parquet file written by
             the server (INSERT INTO FUNCTION file(...)): the server must
             share this machine's file system.
  monitor    -repeat times: Monitor.Evaluate with the default policy
             (numeric ks, psi, wasserstein_norm, jensen_shannon; categorical
             chi_square, psi, jensen_shannon, unseen_share; the reference
             is hour 1, the current window hour 2). Wall time, and peak RSS
             of this process during it (VmHWM, reset through
             /proc/self/clear_refs right before). The ClickHouse server
             runs the queries: its VmRSS before and after and its VmHWM
             (since it started, not reset) are printed beside, with
             -server-pid or a local clickhouse-embedded on the URL's port.
             Each run uses a new monitor, so both windows are read (the
             target's figure). Then the same evaluation again on that
             monitor, with the reference's aggregates cached as a running
             monitor keeps them between steps; and, untimed in the total,
             window.Compute and policy.Evaluate alone, for the split.
  extras     with -extras (default), the reference hour is labelled (one
             outcome per inference, the truth drawn from the score) and
             -repeat times, alternating, a new monitor evaluates the
             window's drift (Monitor.Evaluate) and performance
             (EvaluatePerformance, the current hour unlabelled) with
             performance estimation (CBPE) and policy.multivariate off,
             then on, and each again on the same monitor (reference
             aggregates and fitted estimator cached, a running monitor's
             steady state). Prints both medians and their ratio (issue 18:
             at most 30 % more).
  evidently  -script under -python reads the Parquet file and runs
             DataDriftPreset -repeat times per pass: Evidently's default
             methods, then ks+chisquare, psi+psi, wasserstein+jensenshannon,
             and jensenshannon on numeric columns: the four method passes
             together compute driftwatch's default methods (all but
             unseen_share). Timed around Report.run, data already in memory.
             Prints the ratio of Evidently's time to driftwatch's and the
             largest difference per method between the two tools' figures,
             noting where the definitions differ (binning, smoothing, test).
With -repeat k the medians of every figure are printed too.
Figures are measurements on this machine, never assertions: ClickHouse,
Python and this benchmark share its CPUs.`,
		Config: func() config.Validator { return defaultBenchMonitorConfig() },
		Run: func(ctx context.Context, c config.Validator, env command.Env) error {
			return runBenchMonitor(ctx, c.(*benchMonitorConfig), env)
		},
	}
}

// monitorRun is one evaluation's figures.
type monitorRun struct {
	Seconds        float64 // Monitor.Evaluate, reference read (a new monitor)
	WarmSeconds    float64 // the same evaluation again, reference aggregates cached
	ComputeSeconds float64 // window.Compute alone
	PolicySeconds  float64 // policy.Evaluate alone
	RSSMiB         float64 // VmHWM of this process during Monitor.Evaluate
	ServerRSSMiB   [2]float64
	ServerHWMMiB   float64
	Rows           int
	Drifted        []string
}

func runBenchMonitor(ctx context.Context, cfg *benchMonitorConfig, env command.Env) (err error) {
	logf := func(format string, args ...any) { fmt.Fprintf(env.Stderr, "bench monitor: "+format+"\n", args...) }
	id := fmt.Sprintf("benchmon%d%04d", time.Now().Unix(), rand.IntN(10000))
	u, err := url.Parse(cfg.ClickHouseURL)
	if err != nil {
		return fmt.Errorf("clickhouse_url: %w", err)
	}
	u.Path = "/" + id
	chCfg := chclient.Config{URL: u.String(), User: cfg.ClickHouseUser, Password: cfg.ClickHousePassword.Reveal()}
	conn, err := chclient.Open(ctx, chCfg, true)
	if err != nil {
		return err
	}
	defer conn.Close()
	var parquet string
	defer func() {
		if cfg.Keep {
			logf("kept database %s and %s", id, parquet)
			return
		}
		if parquet != "" {
			os.Remove(parquet)
		}
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if derr := conn.Exec(cctx, "DROP DATABASE IF EXISTS "+chsql.Ident(id)+" SYNC"); derr != nil {
			logf("drop database %s: %v", id, derr)
		}
	}()
	if err := migration.Apply(ctx, conn, migration.DefaultConfig()); err != nil {
		return err
	}

	// load
	t0 := time.Now().UTC().Truncate(24 * time.Hour).Add(-24*time.Hour + 8*time.Hour)
	start := time.Now()
	logf("load: generating %d rows (%d numeric, %d categorical features) in database %s", 2*cfg.Rows, cfg.Numeric, cfg.Categorical, id)
	if err := conn.Exec(ctx, benchDataSQL(cfg.Rows, cfg.Numeric, cfg.Categorical, t0)); err != nil {
		return fmt.Errorf("generate rows: %w", err)
	}
	loadSecs := time.Since(start).Seconds()
	if cfg.Optimize {
		s := time.Now()
		if err := conn.Exec(ctx, "OPTIMIZE TABLE inferences FINAL"); err != nil {
			return fmt.Errorf("optimize inferences: %w", err)
		}
		logf("load: optimized in %.1fs", time.Since(s).Seconds())
	}
	// Background merges of the freshly inserted parts compete for the
	// same two CPUs: the timed runs start once they are done (at most 2
	// minutes), so every run measures the steady state.
	if waited, err := waitMerges(ctx, conn, 2*time.Minute); err != nil {
		return err
	} else if waited > 0 {
		logf("load: waited %.1fs for background merges to finish", waited.Seconds())
	}
	var n uint64
	var parts uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM inferences").Scan(&n); err != nil {
		return fmt.Errorf("count rows: %w", err)
	}
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.parts WHERE database = currentDatabase() AND table = 'inferences' AND active").Scan(&parts); err != nil {
		return fmt.Errorf("count active parts: %w", err)
	}
	logf("load: %d rows in %.1fs (%.0f rows/s), %d active parts", n, loadSecs, float64(n)/loadSecs, parts)
	if n != uint64(2*cfg.Rows) {
		return fmt.Errorf("generated %d rows, want %d", n, 2*cfg.Rows)
	}

	// export
	if cfg.Evidently {
		dir := cfg.WorkDir
		if dir == "" {
			dir = os.TempDir()
		}
		if dir, err = filepath.Abs(dir); err != nil {
			return fmt.Errorf("work_dir: %w", err)
		}
		parquet = filepath.Join(dir, id+".parquet")
		s := time.Now()
		if err := conn.Exec(ctx, benchExportSQL(parquet, cfg.Numeric, cfg.Categorical, t0.Add(time.Hour))); err != nil {
			return fmt.Errorf("export Parquet to %s (the server must share this file system; -evidently=false skips it): %w", parquet, err)
		}
		st, err := os.Stat(parquet)
		if err != nil {
			return fmt.Errorf("export Parquet: the server wrote no %s (does it run on this machine?): %w", parquet, err)
		}
		logf("export: %s, %.0f MiB in %.1fs", parquet, float64(st.Size())/(1<<20), time.Since(s).Seconds())
	}

	// monitor
	serverPID := cfg.ServerPID
	if serverPID == 0 {
		serverPID = findServerPID(cfg.ClickHouseURL)
	}
	ref := window.Span{Start: t0, End: t0.Add(time.Hour)}
	cur := window.Span{Start: t0.Add(time.Hour), End: t0.Add(2 * time.Hour)}
	agg := window.Options{SampleCap: cfg.SampleCap, Samples: true}
	var runs []monitorRun
	var last monitor.Result
	for i := range cfg.Repeat {
		r, res, err := benchMonitorOnce(ctx, conn, ref, cur, agg, serverPID, nil)
		if err != nil {
			return fmt.Errorf("monitor run %d: %w", i+1, err)
		}
		logf("monitor: run %d of %d: Monitor.Evaluate %.2fs (window.Compute %.2fs, policy.Evaluate %.3fs alone), peak RSS %.0f MiB, %d result rows, %d features drifted",
			i+1, cfg.Repeat, r.Seconds, r.ComputeSeconds, r.PolicySeconds, r.RSSMiB, r.Rows, len(r.Drifted))
		runs = append(runs, r)
		last = res
	}

	// slices: the same evaluation with 10 slices of the second categorical
	// feature (10 categories), a new monitor each run as above.
	var sliced []float64
	nSlices := 0
	if cfg.Slices && cfg.Categorical >= 2 {
		for i := range cfg.Repeat {
			r, res, err := benchMonitorOnce(ctx, conn, ref, cur, agg, serverPID, []string{benchCategoricalName(1)})
			if err != nil {
				return fmt.Errorf("monitor run %d with slices: %w", i+1, err)
			}
			nSlices = len(res.Segments)
			logf("monitor: run %d of %d with %d slices: Monitor.Evaluate %.2fs", i+1, cfg.Repeat, nSlices, r.Seconds)
			sliced = append(sliced, r.Seconds)
		}
	}

	// extras: drift + performance, estimation and multivariate off, then
	// on, alternating so that both see the same load.
	var extras [2][]extrasRun
	if cfg.Extras {
		s := time.Now()
		if err := conn.Exec(ctx, benchOutcomesSQL(cfg.Rows, t0)); err != nil {
			return fmt.Errorf("generate the reference's outcomes: %w", err)
		}
		logf("extras: %d outcomes of the reference hour in %.1fs", cfg.Rows, time.Since(s).Seconds())
		for i := range cfg.Repeat {
			for k, on := range []bool{false, true} {
				r, err := benchExtrasOnce(ctx, conn, ref, cur, agg, on)
				if err != nil {
					return fmt.Errorf("monitor run %d (estimation and multivariate %v): %w", i+1, on, err)
				}
				logf("extras: run %d of %d, estimation and multivariate %v: drift %.2fs + performance %.2fs, again (cached) %.2fs + %.2fs; %s", i+1, cfg.Repeat, on, r.Drift, r.Performance, r.WarmDrift, r.WarmPerformance, r.Note)
				extras[k] = append(extras[k], r)
			}
		}
	}

	// evidently
	var ev *evidentlyOut
	if cfg.Evidently {
		if ev, err = runEvidently(ctx, cfg, env, parquet); err != nil {
			return err
		}
	}
	printBenchMonitor(env.Stdout, cfg, loadSecs, runs, last, ev, serverPID)
	if len(sliced) > 0 {
		secs := make([]float64, len(runs))
		for i, r := range runs {
			secs[i] = r.Seconds
		}
		pop, sl := median(secs), median(sliced)
		fmt.Fprintf(env.Stdout, "with %d slices      %6.2f s (median; segment_by %s) vs %.2f s population-only: %.2fx  target <= %.0fx: %s\n",
			nSlices, sl, benchCategoricalName(1), pop, sl/pop, targetSlicesRatio, meets(sl/pop <= targetSlicesRatio))
	}
	if len(extras[0]) > 0 {
		printExtras(env.Stdout, extras)
	}
	return nil
}

// extrasRun is one drift + performance evaluation of the extras phase.
type extrasRun struct {
	Drift, Performance float64 // seconds of Evaluate and EvaluatePerformance, a new monitor
	// WarmDrift and WarmPerformance are the same again on that monitor:
	// the reference's aggregates and the fitted estimator cached, as a
	// running monitor keeps them from one step to the next.
	WarmDrift, WarmPerformance float64
	Note                       string // what the extras found
}

func (r extrasRun) total() float64 { return r.Drift + r.Performance }
func (r extrasRun) warm() float64  { return r.WarmDrift + r.WarmPerformance }

// benchExtrasOnce evaluates the window's drift and its performance on a
// new monitor (both windows read), with performance estimation and
// policy.multivariate on or off; the performance window is the current
// hour (recompute 1), labels withheld there, the reference's labelled.
func benchExtrasOnce(ctx context.Context, conn driver.Conn, ref, cur window.Span, agg window.Options, on bool) (extrasRun, error) {
	var r extrasRun
	set := monitor.DefaultSettings()
	set.Window, set.Step, set.Reference, set.Lookback = time.Hour, time.Hour, time.Hour, 48*time.Hour
	pol := policy.Default()
	pol.Multivariate.Enabled = on
	set.Models = map[string]monitor.ModelConfig{benchModel: {ReferenceStart: ref.Start, ReferenceEnd: ref.End, Policy: &pol}}
	set.Performance.Recompute, set.Performance.PositiveLabel, set.Performance.BusinessTrigger = 1, "yes", false
	set.Performance.Estimation.Enabled = on
	if agg.SampleCap != 0 {
		set.SampleCap = agg.SampleCap
	}
	m, err := monitor.New(monitor.Options{
		Settings: set, Conn: conn, TriggerWriter: discardTriggers{}, Registerer: prometheus.NewRegistry(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:    func() time.Time { return cur.End },
	})
	if err != nil {
		return r, err
	}
	runtime.GC()
	start := time.Now()
	res, err := m.Evaluate(ctx, benchModel, cur.End)
	r.Drift = time.Since(start).Seconds()
	if err != nil {
		return r, err
	}
	start = time.Now()
	pr, err := m.EvaluatePerformance(ctx, benchModel, cur.End)
	r.Performance = time.Since(start).Seconds()
	if err != nil {
		return r, err
	}
	start = time.Now()
	if _, err := m.Evaluate(ctx, benchModel, cur.End); err != nil {
		return r, err
	}
	r.WarmDrift = time.Since(start).Seconds()
	start = time.Now()
	if _, err := m.EvaluatePerformance(ctx, benchModel, cur.End); err != nil {
		return r, err
	}
	r.WarmPerformance = time.Since(start).Seconds()
	var notes []string
	for _, row := range res.Verdict.Rows {
		if multivariate.IsFeature(row.Feature) && row.Method != monitor.MethodVerdict {
			notes = append(notes, fmt.Sprintf("%s %s %.4g (threshold %.4g, %s)", row.Feature, row.Status, row.Value, row.Threshold, row.Note))
		}
	}
	for _, w := range pr.Windows {
		for _, mt := range w.Metrics {
			if strings.HasPrefix(mt.Name, perf.EstimatedPrefix) && !strings.HasSuffix(mt.Name, perf.LowerSuffix) && !strings.HasSuffix(mt.Name, perf.UpperSuffix) {
				notes = append(notes, fmt.Sprintf("%s %.4g", mt.Name, mt.Value))
			}
		}
	}
	if on && len(notes) == 0 {
		return r, errors.New("estimation and multivariate on, yet neither an estimate nor a multivariate row came out")
	}
	r.Note = strings.Join(notes, "; ")
	return r, nil
}

// printExtras prints the extras phase's medians and their ratio.
func printExtras(w io.Writer, runs [2][]extrasRun) {
	med := func(rs []extrasRun, f func(extrasRun) float64) float64 {
		xs := make([]float64, len(rs))
		for i, r := range rs {
			xs[i] = f(r)
		}
		return median(xs)
	}
	for _, p := range []struct {
		name        string
		total       func(extrasRun) float64
		drift, perf func(extrasRun) float64
	}{
		{"new monitor", extrasRun.total, func(r extrasRun) float64 { return r.Drift }, func(r extrasRun) float64 { return r.Performance }},
		{"cached     ", extrasRun.warm, func(r extrasRun) float64 { return r.WarmDrift }, func(r extrasRun) float64 { return r.WarmPerformance }},
	} {
		off, on := med(runs[0], p.total), med(runs[1], p.total)
		fmt.Fprintf(w, "estimation+multivariate, %s %6.2f s (median of %d; drift %.2f s + performance %.2f s) vs %.2f s without (drift %.2f s + performance %.2f s): %+.0f %%  target <= %+.0f %%: %s\n",
			p.name, on, len(runs[1]), med(runs[1], p.drift), med(runs[1], p.perf), off, med(runs[0], p.drift), med(runs[0], p.perf),
			100*(on/off-1), 100*(targetExtrasRatio-1), meets(on/off <= targetExtrasRatio))
	}
	if n := len(runs[1]); n > 0 {
		fmt.Fprintf(w, "  with them, last run: %s\n", runs[1][n-1].Note)
	}
}

// benchOutcomesSQL labels every reference-hour inference of benchDataSQL
// (one outcome a minute after it, truth drawn from the score, so the
// score is calibrated); the current hour stays unlabelled, as before its
// labels arrive.
func benchOutcomesSQL(rows int64, t0 time.Time) string {
	u := "((cityHash64(number, 8888, 1) % 1000000007) + 0.5) / 1000000007"
	score := "1 / (1 + exp(-4 * ((((cityHash64(number, 9999, 1) % 1000000007) + 0.5) / 1000000007) - 0.5)))"
	return fmt.Sprintf(`INSERT INTO outcomes (event_id, model_id, prediction_id, timestamp, actual_label, kafka_topic, kafka_partition, kafka_offset, ingested_at)
SELECT concat('o', toString(number)), '%s', concat('p', toString(number)),
    addMilliseconds(toDateTime64('%s', 3, 'UTC'), intDiv(number * 3600000, %d) + 60000),
    if(%s < %s, 'yes', 'no'), 'bench', 0, toInt64(number), now64(3)
FROM numbers(%d)`, benchModel, t0.Format("2006-01-02 15:04:05.000"), rows, u, score, rows)
}

// discardTriggers stands in for the retrain-triggers topic.
type discardTriggers struct{}

func (discardTriggers) WriteMessages(context.Context, ...kafka.Message) error { return nil }

func benchMonitorOnce(ctx context.Context, conn driver.Conn, ref, cur window.Span, agg window.Options, serverPID int, segmentBy []string) (monitorRun, monitor.Result, error) {
	var r monitorRun
	set := monitor.DefaultSettings()
	set.Window, set.Step, set.Reference, set.Lookback = time.Hour, time.Hour, time.Hour, 48*time.Hour
	set.Models = map[string]monitor.ModelConfig{benchModel: {ReferenceStart: ref.Start, ReferenceEnd: ref.End, SegmentBy: segmentBy}}
	set.Performance.Enabled = false
	if agg.SampleCap != 0 {
		set.SampleCap = agg.SampleCap
	}
	m, err := monitor.New(monitor.Options{
		Settings: set, Conn: conn, TriggerWriter: discardTriggers{}, Registerer: prometheus.NewRegistry(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:    func() time.Time { return cur.End },
	})
	if err != nil {
		return r, monitor.Result{}, err
	}
	runtime.GC()
	resetPeakRSS()
	r.ServerRSSMiB[0], _ = procMemMiB(serverPID)
	start := time.Now()
	res, err := m.Evaluate(ctx, benchModel, cur.End)
	r.Seconds = time.Since(start).Seconds()
	_, r.RSSMiB = procMemMiB(os.Getpid())
	r.ServerRSSMiB[1], r.ServerHWMMiB = procMemMiB(serverPID)
	if err != nil {
		return r, res, err
	}
	if res.Skipped != "" {
		return r, res, fmt.Errorf("evaluation skipped: %s", res.Skipped)
	}
	r.Rows, r.Drifted = len(res.Verdict.Rows), res.Verdict.Drifted

	// The monitor's steady state: the same window again, with the
	// reference's aggregates cached by the first evaluation.
	start = time.Now()
	if _, err := m.Evaluate(ctx, benchModel, cur.End); err != nil {
		return r, res, err
	}
	r.WarmSeconds = time.Since(start).Seconds()

	start = time.Now()
	agg.Samples = true
	snap, err := window.Compute(ctx, conn, benchModel, ref, cur, agg)
	r.ComputeSeconds = time.Since(start).Seconds()
	if err != nil {
		return r, res, err
	}
	start = time.Now()
	policy.Evaluate(snap, policy.Default(), nil)
	r.PolicySeconds = time.Since(start).Seconds()
	return r, res, nil
}

// resetPeakRSS resets this process's VmHWM to its current RSS (Linux 4.0+);
// elsewhere the peak stays the process's lifetime peak.
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// procMemMiB returns VmRSS and VmHWM of pid in MiB (zeros when unknown).
func procMemMiB(pid int) (rss, hwm float64) {
	if pid <= 0 {
		return 0, 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb / 1024
		case "VmHWM:":
			hwm = kb / 1024
		}
	}
	return rss, hwm
}

// findServerPID looks for a local clickhouse-embedded whose command line
// names the URL's port; 0 when there is none or the URL is not local.
func findServerPID(raw string) int {
	u, err := url.Parse(raw)
	if err != nil || (u.Hostname() != "127.0.0.1" && u.Hostname() != "localhost") || u.Port() == "" {
		return 0
	}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) == 0 || filepath.Base(args[0]) != "clickhouse-embedded" {
			continue
		}
		for _, a := range args[1:] {
			if strings.HasSuffix(a, ":"+u.Port()) {
				return pid
			}
		}
	}
	return 0
}

// benchNumericName and benchCategoricalName name the generated features.
func benchNumericName(i int) string     { return fmt.Sprintf("f%02d", i) }
func benchCategoricalName(j int) string { return fmt.Sprintf("c%02d", j) }

// benchDataSQL generates 2·rows inferences of model "bench" inside
// ClickHouse: rows in [t0, t0+1h) (reference), rows in [t0+1h, t0+2h)
// (current). Every value is a function of the row number through
// cityHash64, so two runs load identical data.
func benchDataSQL(rows int64, numeric, categorical int, t0 time.Time) string {
	return benchRowsSQL(benchModel, rows, rows, time.Hour, time.Hour, numeric, categorical, t0)
}

// benchRowsSQL generates refRows rows of model over refFor from t0 and
// then curRows over curFor from t0 + refFor (the "current" rows, with the
// drift), evenly spaced; otherwise as benchDataSQL.
func benchRowsSQL(model string, refRows, curRows int64, refFor, curFor time.Duration, numeric, categorical int, t0 time.Time) string {
	// u(i, s): a uniform in (0, 1) per row, feature i and stream s.
	u := func(i, s int) string {
		return fmt.Sprintf("((cityHash64(number, %d, %d) %% 1000000007) + 0.5) / 1000000007", i, s)
	}
	var cols, nmap, cmap []string
	for i := range numeric {
		z := fmt.Sprintf("sqrt(-2 * log(%s)) * cos(2 * pi() * %s)", u(i, 1), u(i, 2))
		var v string
		switch i % 5 {
		case 0:
			v = fmt.Sprintf("%s * %d + %d", z, 1+i%7, i)
		case 1:
			v = fmt.Sprintf("exp(0.5 * %s)", z)
		case 2:
			v = fmt.Sprintf("floor(%s * 100)", u(i, 1))
		case 3:
			v = fmt.Sprintf("round(%s, 2)", z)
		case 4:
			v = fmt.Sprintf("-log(%s) * 3", u(i, 1))
		}
		switch {
		case i%4 == 0:
			v = fmt.Sprintf("if(cur, (%s) * 1.1 + 0.3, %s)", v, v)
		case i%8 == 6:
			v = fmt.Sprintf("if(cur, (%s) + 0.02, %s)", v, v)
		}
		name := benchNumericName(i)
		cols = append(cols, fmt.Sprintf("toFloat64(%s) AS %s", v, name))
		nmap = append(nmap, fmt.Sprintf("'%s', %s", name, name))
	}
	for j := range categorical {
		card := 3 + 7*j
		skew := "1.6"
		if j%3 == 0 {
			skew = "if(cur, 1.0, 1.6)"
		}
		v := fmt.Sprintf("concat('v', toString(toUInt32(floor(pow(%s, %s) * %d))))", u(1000+j, 1), skew, card)
		if j == categorical-1 {
			v = fmt.Sprintf("if(cur AND %s < 0.02, 'unseen', %s)", u(1000+j, 2), v)
		}
		name := benchCategoricalName(j)
		cols = append(cols, fmt.Sprintf("%s AS %s", v, name))
		cmap = append(cmap, fmt.Sprintf("'%s', %s", name, name))
	}
	catMap := "CAST(map(), 'Map(String, String)')"
	if len(cmap) > 0 {
		catMap = "map(" + strings.Join(cmap, ", ") + ")"
	}
	return fmt.Sprintf(`INSERT INTO inferences (event_id, model_id, model_version, prediction_id, timestamp,
    features_numeric, features_categorical, missing_features, prediction_label, prediction_score,
    kafka_topic, kafka_partition, kafka_offset, ingested_at)
SELECT concat('e', toString(number)), %[1]s, 'v1', concat('p', toString(number)),
    addMilliseconds(toDateTime64('%[2]s', 3, 'UTC'), if(cur, %[11]d + intDiv((number - %[3]d) * %[5]d, %[4]d), intDiv(number * %[11]d, %[3]d))),
    map(%[6]s), %[7]s, [], if(score > 0.5, 'yes', 'no'), score,
    'bench', 0, toInt64(number), now64(3)
FROM (SELECT number, number >= %[3]d AS cur, 1 / (1 + exp(-4 * (%[8]s - 0.5))) AS score, %[9]s FROM numbers(%[10]d))`,
		chsql.String(model), t0.Format("2006-01-02 15:04:05.000"), refRows, curRows, curFor.Milliseconds(), strings.Join(nmap, ", "), catMap, u(9999, 1), strings.Join(cols, ", "), refRows+curRows, refFor.Milliseconds())
}

// benchExportSQL writes the benchmark's rows, one column per feature and
// is_cur for the window, to a Parquet file through the server.
func benchExportSQL(path string, numeric, categorical int, curStart time.Time) string {
	cols := []string{fmt.Sprintf("toUInt8(timestamp >= toDateTime64('%s', 3, 'UTC')) AS is_cur", curStart.Format("2006-01-02 15:04:05.000"))}
	for i := range numeric {
		cols = append(cols, fmt.Sprintf("features_numeric['%s'] AS %s", benchNumericName(i), benchNumericName(i)))
	}
	for j := range categorical {
		cols = append(cols, fmt.Sprintf("features_categorical['%s'] AS %s", benchCategoricalName(j), benchCategoricalName(j)))
	}
	return fmt.Sprintf("INSERT INTO FUNCTION file(%s, 'Parquet') SELECT %s FROM inferences WHERE model_id = '%s'",
		chsql.String(path), strings.Join(cols, ", "), benchModel)
}

// evidentlyOut is what the script writes.
type evidentlyOut struct {
	Version       string          `json:"evidently"`
	Pandas        string          `json:"pandas"`
	LoadSeconds   float64         `json:"load_seconds"`
	ReferenceRows int64           `json:"reference_rows"`
	CurrentRows   int64           `json:"current_rows"`
	Passes        []evidentlyPass `json:"passes"`
	MaxRSSMiB     float64         `json:"-"`
}

type evidentlyPass struct {
	Name      string    `json:"name"`
	NumMethod *string   `json:"num_method"`
	CatMethod *string   `json:"cat_method"`
	Seconds   []float64 `json:"seconds"`
	Scores    map[string]struct {
		Method string  `json:"method"`
		Score  float64 `json:"score"`
	} `json:"scores"`
}

func runEvidently(ctx context.Context, cfg *benchMonitorConfig, env command.Env, parquet string) (*evidentlyOut, error) {
	out := strings.TrimSuffix(parquet, ".parquet") + ".evidently.json"
	defer os.Remove(out)
	fmt.Fprintf(env.Stderr, "bench monitor: evidently: %s %s (%d run(s) per pass)\n", cfg.Python, cfg.Script, cfg.Repeat)
	args := []string{cfg.Script, "--parquet", parquet, "--out", out, "--repeat", strconv.Itoa(cfg.Repeat)}
	if cfg.EvidentlyPasses != "" {
		args = append(args, "--passes", cfg.EvidentlyPasses)
	}
	cmd := exec.CommandContext(ctx, cfg.Python, args...)
	cmd.Stdout, cmd.Stderr = env.Stderr, env.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("run %s %s (install it with scripts/deps.sh python, or pass -evidently=false): %w", cfg.Python, cfg.Script, err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("read the Evidently results: %w", err)
	}
	var ev evidentlyOut
	if err := json.Unmarshal(b, &ev); err != nil {
		return nil, fmt.Errorf("decode the Evidently results: %w", err)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		ev.MaxRSSMiB = float64(ru.Maxrss) / 1024
	}
	return &ev, nil
}

// methodPasses says which Evidently passes compute driftwatch's default
// methods; their times add up to Evidently's time for the same work.
var methodPasses = []string{"ks+chisquare", "psi+psi", "wasserstein+jensenshannon", "jensenshannon"}

func (ev *evidentlyOut) pass(name string) *evidentlyPass {
	for i := range ev.Passes {
		if ev.Passes[i].Name == name {
			return &ev.Passes[i]
		}
	}
	return nil
}

// methodSeconds returns Evidently's time in run i for every default
// method, NaN when a method pass did not run (-evidently-passes).
func (ev *evidentlyOut) methodSeconds(i int) float64 {
	var s float64
	for _, name := range methodPasses {
		p := ev.pass(name)
		if p == nil || i >= len(p.Seconds) {
			return math.NaN()
		}
		s += p.Seconds[i]
	}
	return s
}

// comparison is one method's largest difference between the two tools.
type comparison struct {
	method, kind, evMethod, note string
	same                         bool // the definitions coincide (up to sampling)
	features                     int
	maxDiff                      float64
	feature                      string
	dw, ev                       float64
}

// compare matches driftwatch's rows with Evidently's scores.
func compare(res monitor.Result, ev *evidentlyOut) []comparison {
	numeric := map[string]bool{}
	for _, n := range res.Snapshot.Numeric {
		numeric[n.Feature] = true
	}
	type key struct{ feature, method string }
	rows := map[key]policy.Row{}
	for _, r := range res.Verdict.Rows {
		rows[key{r.Feature, r.Method}] = r
	}
	invSqrtLn2 := 1 / math.Sqrt(math.Ln2)
	specs := []struct {
		comparison
		pass string
		dw   func(policy.Row) float64
		ev   func(float64) float64
	}{
		{comparison{method: "ks", kind: "numeric", evMethod: "ks p-value", same: true,
			note: "same test; driftwatch on a sample of about -sample-cap rows per window, Evidently on every row"},
			"ks+chisquare", func(r policy.Row) float64 { return r.PValue }, nil},
		{comparison{method: "wasserstein_norm", kind: "numeric", evMethod: "wasserstein", same: true,
			note: "same definition (W1 / reference std, ddof 0); driftwatch on the sample"},
			"wasserstein+jensenshannon", func(r policy.Row) float64 { return r.Value }, nil},
		{comparison{method: "jensen_shannon", kind: "categorical", evMethod: "jensenshannon/sqrt(ln 2)", same: true,
			note: "same counts; Evidently uses natural logs, converted to base 2"},
			"wasserstein+jensenshannon", func(r policy.Row) float64 { return r.Value }, func(x float64) float64 { return x * invSqrtLn2 }},
		{comparison{method: "psi", kind: "categorical", evMethod: "psi", same: true,
			note: "same counts; smoothing differs: +0.5 counts vs 0 shares set to 1e-4 (unseen categories diverge)"},
			"psi+psi", func(r policy.Row) float64 { return r.Value }, nil},
		{comparison{method: "chi_square", kind: "categorical", evMethod: "chisquare p-value",
			note: "differs by definition: 2xK homogeneity test vs goodness of fit to reference shares"},
			"ks+chisquare", func(r policy.Row) float64 { return r.PValue }, nil},
		{comparison{method: "psi", kind: "numeric", evMethod: "psi",
			note: "differs by definition: 10 reference-decile bins vs Sturges equal-width bins over both windows"},
			"psi+psi", func(r policy.Row) float64 { return r.Value }, nil},
		{comparison{method: "jensen_shannon", kind: "numeric", evMethod: "jensenshannon/sqrt(ln 2)",
			note: "differs by definition: decile bins vs Sturges bins"},
			"jensenshannon", func(r policy.Row) float64 { return r.Value }, func(x float64) float64 { return x * invSqrtLn2 }},
	}
	var out []comparison
	for _, s := range specs {
		c := s.comparison
		p := ev.pass(s.pass)
		if p == nil {
			continue
		}
		for col, sc := range p.Scores {
			if numeric[col] != (c.kind == "numeric") {
				continue
			}
			r, ok := rows[key{col, c.method}]
			if !ok || r.Status == policy.StatusInsufficient || r.Status == policy.StatusUndefined {
				continue
			}
			e := sc.Score
			if s.ev != nil {
				e = s.ev(e)
			}
			d := s.dw(r)
			c.features++
			// A NaN difference is the largest there is: it replaces any
			// number and no number replaces it, so the table shows it.
			if diff := math.Abs(d - e); c.feature == "" || !math.IsNaN(c.maxDiff) && !(diff <= c.maxDiff) {
				c.maxDiff, c.feature, c.dw, c.ev = diff, col, d, e
			}
		}
		out = append(out, c)
	}
	return out
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func meets(ok bool) string {
	if ok {
		return "meets"
	}
	return "MISSES"
}

func printBenchMonitor(w io.Writer, cfg *benchMonitorConfig, loadSecs float64, runs []monitorRun, last monitor.Result, ev *evidentlyOut, serverPID int) {
	fmt.Fprintf(w, "bench monitor: %d reference + %d current rows, %d numeric + %d categorical features (+ __score, __label), %d CPUs, load %.1fs\n",
		cfg.Rows, cfg.Rows, cfg.Numeric, cfg.Categorical, runtime.NumCPU(), loadSecs)
	if len(last.Verdict.Drifted) > 0 {
		fmt.Fprintf(w, "drifted features (%d): %s\n", len(last.Verdict.Drifted), strings.Join(last.Verdict.Drifted, " "))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	// Without Evidently its three columns are left out.
	evCols := func(format string, args ...any) string {
		if ev == nil {
			return ""
		}
		return strings.ReplaceAll(fmt.Sprintf(format, args...), "NaN", "-")
	}
	fmt.Fprintln(tw, "run\tMonitor.Evaluate s\treference cached s\twindow.Compute s\tpolicy.Evaluate s\tpeak RSS MiB\tserver RSS MiB before→after\t"+evCols("Evidently methods s\tEvidently default s\tratio\t"))
	var secs, warm, comp, pol, rss, evs, evd, ratios []float64
	for i, r := range runs {
		e, d, ratio := math.NaN(), math.NaN(), math.NaN()
		if ev != nil {
			e = ev.methodSeconds(i)
			if p := ev.pass("default"); p != nil && i < len(p.Seconds) {
				d = p.Seconds[i]
			}
			ratio = e / r.Seconds
		}
		fmt.Fprintf(tw, "%d\t%.2f\t%.2f\t%.2f\t%.3f\t%.0f\t%.0f→%.0f\t%s\n", i+1, r.Seconds, r.WarmSeconds, r.ComputeSeconds, r.PolicySeconds, r.RSSMiB,
			r.ServerRSSMiB[0], r.ServerRSSMiB[1], evCols("%.1f\t%.1f\t%.1fx\t", e, d, ratio))
		secs, comp, pol, rss = append(secs, r.Seconds), append(comp, r.ComputeSeconds), append(pol, r.PolicySeconds), append(rss, r.RSSMiB)
		warm = append(warm, r.WarmSeconds)
		evs, evd, ratios = append(evs, e), append(evd, d), append(ratios, ratio)
	}
	fmt.Fprintf(tw, "median\t%.2f\t%.2f\t%.2f\t%.3f\t%.0f\t\t%s\n", median(secs), median(warm), median(comp), median(pol), median(rss),
		evCols("%.1f\t%.1f\t%.1fx\t", median(evs), median(evd), median(ratios)))
	tw.Flush()
	fmt.Fprintln(w)
	m := median(secs)
	fmt.Fprintf(w, "monitor evaluation  %6.2f s (median of %d; both windows read)  target <= %.0f s: %s\n", m, len(runs), targetMonitorSeconds, meets(m <= targetMonitorSeconds))
	fmt.Fprintf(w, "reference cached    %6.2f s (median; the same window again, the reference's aggregates kept by the monitor)\n", median(warm))
	fmt.Fprintf(w, "peak RSS            %6.0f MiB  VmHWM of this process during Monitor.Evaluate (reset before it); the queries run in the server\n", median(rss))
	if serverPID > 0 {
		fmt.Fprintf(w, "server memory       clickhouse-embedded pid %d: VmRSS %.0f MiB after the last run, VmHWM %.0f MiB since it started (shared, not reset)\n",
			serverPID, runs[len(runs)-1].ServerRSSMiB[1], runs[len(runs)-1].ServerHWMMiB)
	} else {
		fmt.Fprintf(w, "server memory       not measured (no local clickhouse-embedded on the URL's port; pass -server-pid)\n")
	}
	if ev == nil {
		return
	}
	r := median(ratios)
	// A pass left out by -evidently-passes prints as "-".
	num := func(format string, x float64) string {
		if math.IsNaN(x) {
			return "-"
		}
		return fmt.Sprintf(format, x)
	}
	fmt.Fprintf(w, "Evidently %s       %s s for the same methods (sum of 4 passes, median), %s s for its default preset; peak RSS %.0f MiB; load %.1fs untimed\n",
		ev.Version, num("%6.1f", median(evs)), num("%.1f", median(evd)), ev.MaxRSSMiB, ev.LoadSeconds)
	if math.IsNaN(r) {
		fmt.Fprintf(w, "speed-up            not measured: -evidently-passes left out a method pass;  vs its default preset %sx\n", num("%.1f", median(evd)/m))
	} else {
		fmt.Fprintf(w, "speed-up            %6.1fx  (median of per-run Evidently/driftwatch)  target >= %.0fx: %s;  vs its default preset %sx\n",
			r, targetEvidentlyRatio, meets(r >= targetEvidentlyRatio), num("%.1f", median(evd)/m))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "largest difference per method (driftwatch vs Evidently, same features):")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "method\tkind\tEvidently\tfeatures\tmax |diff|\tat\tdriftwatch\tEvidently\tnote")
	var worst comparison
	for _, c := range compare(last, ev) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.3g\t%s\t%.6g\t%.6g\t%s\n", c.method, c.kind, c.evMethod, c.features, c.maxDiff, c.feature, c.dw, c.ev, c.note)
		if c.same && (math.IsNaN(c.maxDiff) || !math.IsNaN(worst.maxDiff) && c.maxDiff >= worst.maxDiff) {
			worst = c
		}
	}
	tw.Flush()
	if worst.feature != "" {
		fmt.Fprintf(w, "largest difference where the methods coincide: %.3g (%s %s on %s: driftwatch %.6g, Evidently %.6g)\n",
			worst.maxDiff, worst.kind, worst.method, worst.feature, worst.dw, worst.ev)
	}
}

// waitMerges waits until the current database has no merge running, or
// limit has passed, and returns how long it waited.
func waitMerges(ctx context.Context, conn driver.Conn, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		var running uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.merges WHERE database = currentDatabase()").Scan(&running); err != nil {
			return 0, fmt.Errorf("watch background merges: %w", err)
		}
		if running == 0 || time.Since(start) > limit {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

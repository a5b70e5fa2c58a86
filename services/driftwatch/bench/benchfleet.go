package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/url"
	"os"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/migration"
	"github.com/driftwatch/driftwatch/monitor"
	"github.com/driftwatch/driftwatch/services/driftwatch/command"
)

// Targets `bench fleet` prints its figures next to (issue 17).
const (
	// targetFlatGrowth bounds the incremental CPU per model-step at the
	// largest rows per window over that at the smallest.
	targetFlatGrowth = 1.5
	// targetFleetSpeedup is full recomputation's time over the incremental
	// one's, per model-step.
	targetFleetSpeedup = 10.0
)

// benchFleetConfig is the configuration of `driftwatch bench fleet`.
type benchFleetConfig struct {
	config.ClickHouse `yaml:",inline"`
	config.Logging    `yaml:",inline"`
	Models            string        `yaml:"models" flag:"models" help:"comma-separated fleet sizes (models evaluated per step), each run on the same data"`
	Rows              string        `yaml:"rows" flag:"rows" help:"comma-separated rows per window per model; each size is loaded as models of its own"`
	Numeric           int           `yaml:"numeric" flag:"numeric" help:"numeric features per row"`
	Categorical       int           `yaml:"categorical" flag:"categorical" help:"categorical features per row"`
	Window            time.Duration `yaml:"window" flag:"window" help:"the monitor's window (and reference) length"`
	Step              time.Duration `yaml:"step" flag:"step" help:"the monitor's step: how far the simulated clock moves between cycles"`
	Steps             int           `yaml:"steps" flag:"steps" help:"timed cycles per fleet size and mode (medians printed)"`
	Concurrency       int           `yaml:"concurrency" flag:"concurrency" help:"models evaluated at once (the monitor's evaluation_concurrency)"`
	ServerPID         int           `yaml:"server_pid" flag:"server-pid" help:"process id of the ClickHouse server whose CPU time is counted; 0 looks for a local clickhouse-embedded serving the URL's port"`
	Keep              bool          `yaml:"keep" flag:"keep" help:"keep the benchmark database"`
	ReferenceRows     int64         `yaml:"reference_rows" flag:"reference-rows" help:"rows in each model's reference window; 0 is the -rows size (the reference is pinned and cached, so its size costs only in the warm-up)"`
	SampleCap         int           `yaml:"sample_cap" flag:"sample-cap" help:"the monitors' sample_cap; 0 keeps the monitor's default"`
	ReferenceCacheMB  int           `yaml:"reference_cache_mb" flag:"reference-cache-mb" help:"the monitors' reference_cache_mb each; 0 keeps the monitor's default"`
	WindowCacheMB     int           `yaml:"window_cache_mb" flag:"window-cache-mb" help:"the incremental monitor's window_cache_mb; 0 keeps the monitor's default, -1 turns the cache off"`
	IncrementalOnly   bool          `yaml:"incremental_only" flag:"incremental-only" help:"run only the incremental monitor (a fleet whose full recomputation would take too long to measure); no speed-up is printed"`
	QueryStats        bool          `yaml:"query_stats" flag:"query-stats" help:"print the incremental monitor's statements by time spent, per timed cycle"`
	CPUProfile        string        `yaml:"cpuprofile" flag:"cpuprofile" help:"write a CPU profile of this process over the whole run (loading, both monitors) to this file (go tool pprof)"`
	CycleProfiles     string        `yaml:"cycle_profiles" flag:"cycle-profiles" help:"write a CPU profile of this process over each timed cycle of the incremental monitor alone, to PREFIX-<rows>x<models>-<step>.pprof; go tool pprof merges the files it is given (go tool pprof -top bin/driftwatch PREFIX-*)"`

	models, rows []int64
}

func defaultBenchFleetConfig() *benchFleetConfig {
	return &benchFleetConfig{
		ClickHouse: config.DefaultClickHouse(), Logging: config.DefaultLogging(),
		Models: "1,2", Rows: "20000,100000", Numeric: 50, Categorical: 10,
		Window: time.Hour, Step: time.Minute, Steps: 3, Concurrency: 4,
	}
}

// Validate reports every invalid setting, each naming its key.
func (c *benchFleetConfig) Validate() error {
	var p problems
	list := func(key, s string, lo, hi int64) []int64 {
		var out []int64
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
			if err != nil || n < lo || n > hi {
				p.add("%s: %q is not a list of numbers from %d to %d", key, s, lo, hi)
				return nil
			}
			out = append(out, n)
		}
		sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
		return out
	}
	c.models = list("models", c.Models, 1, 1000)
	c.rows = list("rows", c.Rows, 1000, 100_000_000)
	inRange(&p, "numeric", c.Numeric, 1, 1000)
	inRange(&p, "categorical", c.Categorical, 0, 1000)
	inRange(&p, "steps", c.Steps, 1, 1000)
	inRange(&p, "concurrency", c.Concurrency, 1, 64)
	if c.Window < time.Minute || c.Step < time.Second || c.Step > c.Window || c.Window%c.Step != 0 {
		p.add("window, step: need window ≥ 1m, step ≥ 1s, step ≤ window and window a multiple of step, got %s and %s", c.Window, c.Step)
	}
	if c.ReferenceRows < 0 || c.SampleCap < 0 || c.ReferenceCacheMB < 0 || c.WindowCacheMB < -1 {
		p.add("reference_rows, sample_cap, reference_cache_mb: must not be negative; window_cache_mb: at least -1")
	}
	if c.CPUProfile != "" && c.CycleProfiles != "" {
		p.add("cpuprofile, cycle_profiles: one CPU profile at a time, got both")
	}
	p.serverPID(c.ServerPID)
	return p.join(c.ClickHouse.Validate(), c.Logging.Validate())
}

func fleetCommand() command.Command {
	return command.Command{
		Name:    "bench fleet",
		Summary: "measure a fleet of models × 60 features stepping on a simulated clock: cycle time and CPU per model-step, incremental windows next to full recomputation",
		Usage: `driftwatch bench fleet loads, for every -rows size, max(-models) models of
-numeric + -categorical features (50 + 10 = 60 by default; bench monitor's
generator: the same distributions and drift) into a fresh database created
with the migrations: per model -rows rows over its first -window (the
reference) and then -rows per -window for one window plus -steps steps
(the current data, shifted); the benchmark's inferences are not merged
(SYSTEM STOP MERGES), so that the load needs only its own disk: about
430 MB per model of 1M rows per window. Then, for each fleet size n of -models, two
monitors step a simulated clock over the first n models of the size:

  full         Monitor.Evaluate as today: each window aggregated from the
               raw rows (the pinned reference's aggregates cached).
  incremental  the same with incremental: true: each window merged from
               per-bucket partials, only the new bucket aggregated.

Both monitors first evaluate the window ending one -window after the
reference twice (the first evaluation pins the reference, the second, for
incremental, builds the window's partials: printed as "warm-up", not
counted), then -steps cycles,
the clock one -step further each. A cycle evaluates every model, -concurrency
at a time; its wall time is the cycle time, and CPU seconds per model-step
are this process's CPU time (getrusage) plus the ClickHouse server's
(/proc/PID/stat, -server-pid or a local clickhouse-embedded on the URL's
port, clock ticks of 1/100 s) over the cycle, divided by the models. The two
modes alternate within each step, on the same windows.

Printed per rows, models and mode: the median cycle time, whether it is
under the step, the median CPU seconds per model-step and of them this
process's (the monitor's Go side, "of which monitor"), and the full/
incremental ratio; then how the incremental cost grows from the smallest
to the largest -rows (target ≤ 1.5×) and the speed-up (target ≥ 10×).
Figures are measurements on this machine, never assertions.`,
		Config: func() config.Validator { return defaultBenchFleetConfig() },
		Run: func(ctx context.Context, c config.Validator, env command.Env) error {
			return runBenchFleet(ctx, c.(*benchFleetConfig), env)
		},
	}
}

// fleetFigures are one (rows, models, mode)'s medians.
type fleetFigures struct {
	rows, models           int64
	incremental            bool
	cycle, cpuPerModelStep float64
	// monitorCPU is the part of cpuPerModelStep this process spent (the
	// monitor's Go side); the rest is the server's.
	monitorCPU float64
	// cycleMean and cpuMean are the means: they include the steps that
	// write the window caches' partials (window_cache_write_buckets).
	cycleMean, cpuMean float64
	warmup             float64
	drifted            int
}

func runBenchFleet(ctx context.Context, cfg *benchFleetConfig, env command.Env) error {
	logf := func(format string, args ...any) { fmt.Fprintf(env.Stderr, "bench fleet: "+format+"\n", args...) }
	id := fmt.Sprintf("benchfleet%d%04d", time.Now().Unix(), rand.IntN(10000))
	u, err := url.Parse(cfg.ClickHouseURL)
	if err != nil {
		return fmt.Errorf("clickhouse_url: %w", err)
	}
	u.Path = "/" + id
	conn, err := chclient.Open(ctx, chclient.Config{URL: u.String(), User: cfg.ClickHouseUser, Password: cfg.ClickHousePassword.Reveal()}, true)
	if err != nil {
		return err
	}
	defer conn.Close()
	defer func() {
		if cfg.Keep {
			logf("kept database %s", id)
			return
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
	serverPID := cfg.ServerPID
	if serverPID == 0 {
		serverPID = findServerPID(cfg.ClickHouseURL)
	}
	if serverPID == 0 {
		logf("no local ClickHouse server found: CPU seconds count this process only (give -server-pid)")
	}
	maxModels := cfg.models[len(cfg.models)-1]
	t0 := time.Now().UTC().Truncate(24 * time.Hour).Add(-48 * time.Hour)
	curFor := cfg.Window + time.Duration(cfg.Steps)*cfg.Step
	var figs []fleetFigures
	stats := newQueryStats(conn)
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	// No merges of the benchmark's inferences: the models share the day
	// partitions, and concurrent merges reserve the disk of the parts they
	// merge, so a 100-model fleet's load ran out of this machine's disk.
	// Each model's rows stay in the parts its inserts wrote.
	if err := conn.Exec(ctx, "SYSTEM STOP MERGES "+chsql.Ident(id)+".inferences"); err != nil {
		return fmt.Errorf("stop the merges of the benchmark's inferences: %w", err)
	}
	for _, rows := range cfg.rows {
		names := make([]string, maxModels)
		start := time.Now()
		for i := range names {
			names[i] = fmt.Sprintf("fleet-%d-%03d", rows, i)
			// In milliseconds: rows × nanoseconds overflows int64 from
			// about 2.5M rows per window.
			curRows := rows * curFor.Milliseconds() / cfg.Window.Milliseconds()
			refRows := rows
			if cfg.ReferenceRows > 0 {
				refRows = cfg.ReferenceRows
			}
			if err := conn.Exec(ctx, benchRowsSQL(names[i], refRows, curRows, cfg.Window, curFor, cfg.Numeric, cfg.Categorical, t0)); err != nil {
				return fmt.Errorf("generate rows of %s: %w", names[i], err)
			}
			if (i+1)%10 == 0 && i+1 < len(names) {
				logf("load: %d of %d models × %d rows per window, %.0fs", i+1, len(names), rows, time.Since(start).Seconds())
			}
		}
		if _, err := waitMerges(ctx, conn, 2*time.Minute); err != nil {
			return err
		}
		// Every model holds the rows generated for it.
		refRows := rows
		if cfg.ReferenceRows > 0 {
			refRows = cfg.ReferenceRows
		}
		want := uint64(refRows + rows*curFor.Milliseconds()/cfg.Window.Milliseconds())
		var fewest uint64
		if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT min(c) FROM (SELECT model_id, count() AS c FROM inferences WHERE model_id LIKE %s GROUP BY model_id)",
			chsql.String(fmt.Sprintf("fleet-%d-%%", rows)))).Scan(&fewest); err != nil {
			return fmt.Errorf("count the loaded rows: %w", err)
		}
		if fewest != want {
			return fmt.Errorf("load: a model holds %d rows, want %d", fewest, want)
		}
		// … placed where the monitors look: the reference's in the first
		// window, -rows in the one after it.
		var inRef, inCur, models uint64
		if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT uniqExact(model_id), countIf(timestamp < %[2]s), countIf(timestamp >= %[2]s AND timestamp < %[3]s) FROM inferences WHERE model_id LIKE %[1]s",
			chsql.String(fmt.Sprintf("fleet-%d-%%", rows)), chsql.Time(t0.Add(cfg.Window)), chsql.Time(t0.Add(2*cfg.Window)))).Scan(&models, &inRef, &inCur); err != nil {
			return fmt.Errorf("count the loaded rows by window: %w", err)
		}
		if models == 0 || inRef != models*uint64(refRows) || inCur != models*uint64(rows) {
			return fmt.Errorf("load: %d models hold %d reference rows and %d in the first current window, want %d and %d each", models, inRef, inCur, refRows, rows)
		}
		logf("load: %d models × %d rows per window (+%d steps) in %.1fs", maxModels, rows, cfg.Steps, time.Since(start).Seconds())
		for _, n := range cfg.models {
			f, err := fleetRun(ctx, stats, cfg, names[:n], t0, rows, serverPID, logf)
			if err != nil {
				return err
			}
			figs = append(figs, f...)
		}
	}
	printBenchFleet(env.Stdout, cfg, figs)
	if cfg.QueryStats {
		stats.print(env.Stdout, cfg.Steps*len(cfg.rows)*len(cfg.models))
	}
	return nil
}

// fleetRun steps the two monitors over models and returns their medians.
func fleetRun(ctx context.Context, conn *queryStats, cfg *benchFleetConfig, models []string, t0 time.Time, rows int64, serverPID int, logf func(string, ...any)) ([]fleetFigures, error) {
	first := t0.Add(2 * cfg.Window)
	mons := make([]*monitor.Monitor, 2)
	for i := range mons {
		set := monitor.DefaultSettings()
		set.Window, set.Step, set.Reference, set.Lookback = cfg.Window, cfg.Step, cfg.Window, 7*24*time.Hour
		set.Performance.Enabled = false
		set.EvaluationConcurrency = cfg.Concurrency
		set.Incremental = i == 1
		if cfg.SampleCap > 0 {
			set.SampleCap = cfg.SampleCap
		}
		if cfg.ReferenceCacheMB > 0 {
			set.ReferenceCacheMB = cfg.ReferenceCacheMB
		}
		switch {
		case cfg.WindowCacheMB > 0:
			set.WindowCacheMB = cfg.WindowCacheMB
		case cfg.WindowCacheMB < 0:
			set.WindowCacheMB = 0
		}
		m, err := monitor.New(monitor.Options{
			Settings: set, Conn: conn, TriggerWriter: discardTriggers{}, Registerer: prometheus.NewRegistry(),
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Now:    func() time.Time { return first.Add(time.Duration(cfg.Steps) * cfg.Step) },
		})
		if err != nil {
			return nil, err
		}
		mons[i] = m
	}
	out := []fleetFigures{{rows: rows, models: int64(len(models))}, {rows: rows, models: int64(len(models)), incremental: true}}
	cycles := make([][]float64, 2)
	cpus := make([][]float64, 2)
	selfs := make([][]float64, 2)
	for k := 0; k <= cfg.Steps; k++ {
		end := first.Add(time.Duration(k) * cfg.Step)
		for i, m := range mons {
			if i == 0 && cfg.IncrementalOnly {
				continue
			}
			cpu0, self0 := cpuSeconds(serverPID), selfCPUSeconds()
			start := time.Now()
			conn.record(i == 1 && k > 0)
			stop := func() error { return nil }
			if i == 1 && k > 0 && cfg.CycleProfiles != "" {
				var err error
				if stop, err = cycleProfile(fmt.Sprintf("%s-%dx%d-%d.pprof", cfg.CycleProfiles, rows, len(models), k)); err != nil {
					return nil, err
				}
			}
			drifted, err := fleetCycle(ctx, m, models, end, cfg.Concurrency)
			if perr := stop(); err == nil {
				err = perr
			}
			if err == nil && k == 0 {
				// The first evaluation pins the reference (the incremental
				// monitor falls back to a full one without a pinned
				// reference); the second builds the incremental window's
				// partials. Both are the warm-up.
				drifted, err = fleetCycle(ctx, m, models, end, cfg.Concurrency)
			}
			conn.record(false)
			secs := time.Since(start).Seconds()
			cpu, self := cpuSeconds(serverPID)-cpu0, selfCPUSeconds()-self0
			if err != nil {
				return nil, fmt.Errorf("%s cycle to %s: %w", mode(i == 1), end.Format(time.RFC3339), err)
			}
			out[i].drifted = drifted
			if k == 0 {
				out[i].warmup = secs
				continue
			}
			cycles[i] = append(cycles[i], secs)
			cpus[i] = append(cpus[i], cpu/float64(len(models)))
			selfs[i] = append(selfs[i], self/float64(len(models)))
		}
		full := fmt.Sprintf("full %.2fs, ", last(cycles[0], out[0].warmup))
		if cfg.IncrementalOnly {
			full = ""
		}
		logf("%d rows × %d models, step %d of %d: %sincremental %.2fs", rows, len(models), k, cfg.Steps, full, last(cycles[1], out[1].warmup))
	}
	for i := range out {
		out[i].cycle, out[i].cpuPerModelStep, out[i].monitorCPU = median(cycles[i]), median(cpus[i]), median(selfs[i])
		out[i].cycleMean, out[i].cpuMean = mean(cycles[i]), mean(cpus[i])
	}
	if cfg.IncrementalOnly {
		return out[1:], nil
	}
	return out, nil
}

// cycleProfile starts a CPU profile into path; stop ends it and closes
// the file.
func cycleProfile(path string) (stop func() error, err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cycle_profiles: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cycle_profiles: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("cycle_profiles: %w", err)
		}
		return nil
	}, nil
}

func last(xs []float64, otherwise float64) float64 {
	if len(xs) == 0 {
		return otherwise
	}
	return xs[len(xs)-1]
}

func mode(incremental bool) string {
	if incremental {
		return "incremental"
	}
	return "full"
}

// fleetCycle evaluates every model's window ending at end, concurrency at
// a time, and returns how many models had a drifted feature.
func fleetCycle(ctx context.Context, m *monitor.Monitor, models []string, end time.Time, concurrency int) (int, error) {
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		first   error
		drifted int
	)
	sem := make(chan struct{}, concurrency)
	for _, model := range models {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			res, err := m.Evaluate(ctx, model, end)
			if err == nil && res.Skipped != "" {
				err = fmt.Errorf("evaluation of %s skipped: %s", model, res.Skipped)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil && first == nil {
				first = err
			}
			if len(res.Verdict.Drifted) > 0 {
				drifted++
			}
		}()
	}
	wg.Wait()
	return drifted, first
}

// cpuSeconds is this process's CPU time plus the server's (when known).
func cpuSeconds(serverPID int) float64 {
	return selfCPUSeconds() + procCPUSeconds(serverPID)
}

// selfCPUSeconds is this process's user and system time (getrusage).
func selfCPUSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

// procCPUSeconds is pid's user and system time from /proc/PID/stat, in
// clock ticks of 1/100 s (Linux's USER_HZ); 0 when unknown.
func procCPUSeconds(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	// After the command: state (field 3), …, utime (14), stime (15).
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}

func printBenchFleet(w io.Writer, cfg *benchFleetConfig, figs []fleetFigures) {
	sampleCap := cfg.SampleCap
	if sampleCap == 0 {
		sampleCap = monitor.DefaultSettings().SampleCap
	}
	fmt.Fprintf(w, "bench fleet: %d numeric + %d categorical features, window %s, step %s, %d timed steps, concurrency %d, sample_cap %d (medians)\n",
		cfg.Numeric, cfg.Categorical, cfg.Window, cfg.Step, cfg.Steps, cfg.Concurrency, sampleCap)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "rows/window\tmodels\tmode\twarm-up s\tcycle s\tunder step\tCPU s/model-step\tof which monitor\tfull/incremental\t")
	byKey := map[[2]int64]*fleetFigures{}
	for i := range figs {
		f := &figs[i]
		ratio := ""
		if !f.incremental {
			byKey[[2]int64{f.rows, f.models}] = f
		} else if full := byKey[[2]int64{f.rows, f.models}]; full != nil {
			ratio = fmt.Sprintf("%.1fx cycle, %.1fx CPU", full.cycle/f.cycle, full.cpuPerModelStep/f.cpuPerModelStep)
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%.2f\t%.2f\t%s\t%.3f\t%.3f\t%s\t\n", f.rows, f.models, mode(f.incremental), f.warmup, f.cycle,
			yesNo(f.cycle < cfg.Step.Seconds()), f.cpuPerModelStep, f.monitorCPU, ratio)
	}
	tw.Flush()
	for i := range figs {
		f := &figs[i]
		if full := byKey[[2]int64{f.rows, f.models}]; f.incremental && full != nil {
			fmt.Fprintf(w, "means at %d rows/window, %d models (with the steps that write the partials): full %.2fs %.3f CPU-s, incremental %.2fs %.3f CPU-s: %.1fx cycle, %.1fx CPU\n",
				f.rows, f.models, full.cycleMean, full.cpuMean, f.cycleMean, f.cpuMean, full.cycleMean/f.cycleMean, full.cpuMean/f.cpuMean)
		}
	}
	// Growth with rows per window and models, incremental and full.
	for _, inc := range []bool{false, true} {
		var lo, hi *fleetFigures
		for i := range figs {
			f := &figs[i]
			if f.incremental != inc || f.models != cfg.models[0] {
				continue
			}
			if lo == nil || f.rows < lo.rows {
				lo = f
			}
			if hi == nil || f.rows > hi.rows {
				hi = f
			}
		}
		if lo != nil && hi != nil && hi.rows > lo.rows {
			g := hi.cpuPerModelStep / lo.cpuPerModelStep
			target := ""
			if inc {
				target = fmt.Sprintf("  target <= %.1fx: %s", targetFlatGrowth, meets(g <= targetFlatGrowth))
			}
			fmt.Fprintf(w, "%-11s CPU per model-step from %d to %d rows/window (%d models): %.2fx (rows %.0fx)%s\n",
				mode(inc), lo.rows, hi.rows, lo.models, g, float64(hi.rows)/float64(lo.rows), target)
		}
		var few, many *fleetFigures
		for i := range figs {
			f := &figs[i]
			if f.incremental != inc || f.rows != cfg.rows[len(cfg.rows)-1] {
				continue
			}
			if few == nil || f.models < few.models {
				few = f
			}
			if many == nil || f.models > many.models {
				many = f
			}
		}
		if few != nil && many != nil && many.models > few.models {
			fmt.Fprintf(w, "%-11s cycle from %d to %d models (%d rows/window): %.2fx (models %.0fx); CPU per model-step %.2fx\n",
				mode(inc), few.models, many.models, few.rows, many.cycle/few.cycle, float64(many.models)/float64(few.models), many.cpuPerModelStep/few.cpuPerModelStep)
		}
	}
	for i := range figs {
		f := &figs[i]
		if f.incremental && f.rows == cfg.rows[len(cfg.rows)-1] && f.models == cfg.models[0] {
			if full := byKey[[2]int64{f.rows, f.models}]; full != nil {
				s := full.cycle / f.cycle
				fmt.Fprintf(w, "speed-up at %d rows/window, %d models: %.1fx  target >= %.0fx: %s\n", f.rows, f.models, s, targetFleetSpeedup, meets(s >= targetFleetSpeedup))
			}
		}
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// mean is the arithmetic mean of xs (NaN when empty).
func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	var t float64
	for _, x := range xs {
		t += x
	}
	return t / float64(len(xs))
}

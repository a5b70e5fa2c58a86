package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/migration"
	"github.com/driftwatch/driftwatch/retrain"
	"github.com/driftwatch/driftwatch/schemas"
	"github.com/driftwatch/driftwatch/services/driftwatch/command"
)

// Targets `bench retrain` prints its figures next to (issue 6).
const (
	targetRetrainSeconds = 60.0
	targetRetrainRSSMiB  = 1024.0
)

// benchRetrainEvalFraction of the rows fall in the evaluation window; the
// rest spread over the training range.
const benchRetrainEvalFraction = 0.1

// benchRetrainConfig is the configuration of `driftwatch bench retrain`.
type benchRetrainConfig struct {
	config.ClickHouse `yaml:",inline"`
	config.Logging    `yaml:",inline"`
	Rows              int64  `yaml:"rows" flag:"rows" help:"labelled rows (inferences with an outcome) to generate; 10% fall in the evaluation window"`
	Features          int    `yaml:"features" flag:"features" help:"numeric features per row"`
	Repeat            int    `yaml:"repeat" flag:"repeat" help:"run the trainer this many times on the same data and print medians"`
	WorkDir           string `yaml:"work_dir" flag:"work-dir" help:"directory for the runs' datasets and artifacts (empty: a new directory in the system temp directory)"`
	ServerPID         int    `yaml:"server_pid" flag:"server-pid" help:"process id of the ClickHouse server whose memory is printed; 0 looks for a local clickhouse-embedded serving the URL's port"`
	Keep              bool   `yaml:"keep" flag:"keep" help:"keep the benchmark database, the datasets and the artifacts"`
}

func defaultBenchRetrainConfig() *benchRetrainConfig {
	return &benchRetrainConfig{
		ClickHouse: config.DefaultClickHouse(),
		Logging:    config.DefaultLogging(),
		Rows:       1_000_000,
		Features:   20,
		Repeat:     1,
	}
}

// Validate reports every invalid setting, each naming its key.
func (c *benchRetrainConfig) Validate() error {
	var p problems
	inRange(&p, "rows", c.Rows, 1000, 100_000_000)
	inRange(&p, "features", c.Features, 1, 1000)
	p.repeat(c.Repeat)
	p.serverPID(c.ServerPID)
	return p.join(c.ClickHouse.Validate(), c.Logging.Validate())
}

func retrainCommand() command.Command {
	return command.Command{
		Name:    "bench retrain",
		Summary: "measure one trainer run on 1M labelled rows: dataset build, training, evaluation, peak RSS",
		Usage: `driftwatch bench retrain measures the trainer's run of one retrain trigger —
retrain.Trainer.RunTrigger with the default model configuration and the
built-in logistic regression — against the configured ClickHouse. Every run
uses a fresh database (named after the run, beside the one in the URL)
created with the migrations, and drops it at the end unless -keep.

Phases, in order (progress on stderr):
  load       -rows inferences of model "bench" and one outcome for each
             (same prediction_id, labelled 30 minutes later) are generated
             inside ClickHouse by two INSERT … SELECT FROM numbers(rows):
             -features standard-normal numeric features, a binary label
             drawn from a logistic formula of all of them, and a champion
             score (prediction_score) from the same formula on half of
             them, so the challenger has something to beat. Timestamps
             match the trainer's default windows for a clock fixed at the
             start: 90% spread over the 7-day training range, 10% over the
             6-hour evaluation window ending 1 hour (the label maturity)
             before "now". Deterministic: hashes of the row number, no Kafka.
  retrain    -repeat times: one manual trigger through RunTrigger, each a
             new run (and version) on the same rows. Timed steps, as the
             trainer records them in training_runs.step_seconds:
               dataset   inferences_labeled (FINAL, joined to outcomes) →
                         Arrow batches → Parquet train/validation/test/eval
                         splits in -work-dir
               train     the built-in logistic regression (model.Train)
                         reading the train split back from Parquet
               evaluate  champion (its recorded scores) vs challenger on
                         the eval split: metrics and the paired bootstrap
             end to end is RunTrigger's wall time, which adds recording
             the run (training_runs, models, artifact, model event) to the
             three steps. Peak RSS is the VmHWM of this process during
             RunTrigger (reset through /proc/self/clear_refs right before);
             the ClickHouse server runs the dataset query: its VmRSS
             before and after and its VmHWM (since it started, not reset)
             are printed beside, with -server-pid or a local
             clickhouse-embedded on the URL's port.
With -repeat k the medians of every figure are printed too.
Figures are measurements on this machine, never assertions: ClickHouse and
this benchmark share its CPUs.`,
		Config: func() config.Validator { return defaultBenchRetrainConfig() },
		Run: func(ctx context.Context, c config.Validator, env command.Env) error {
			return runBenchRetrain(ctx, c.(*benchRetrainConfig), env)
		},
	}
}

// retrainRun is one trainer run's figures.
type retrainRun struct {
	Steps        map[string]float64 // dataset, train, evaluate, as recorded
	Seconds      float64            // RunTrigger, end to end
	RSSMiB       float64            // VmHWM of this process during RunTrigger
	ServerRSSMiB [2]float64
	ServerHWMMiB float64
	Run          *retrain.Run
}

// benchRetrainSteps are the timed steps, in order.
var benchRetrainSteps = []string{"dataset", "train", "evaluate"}

func runBenchRetrain(ctx context.Context, cfg *benchRetrainConfig, env command.Env) (err error) {
	logf := func(format string, args ...any) { fmt.Fprintf(env.Stderr, "bench retrain: "+format+"\n", args...) }
	id := fmt.Sprintf("benchretrain%d%04d", time.Now().Unix(), rand.IntN(10000))
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
	workDir := cfg.WorkDir
	if workDir == "" {
		if workDir, err = os.MkdirTemp("", id+"-"); err != nil {
			return fmt.Errorf("work_dir: %w", err)
		}
	} else {
		workDir = filepath.Join(workDir, id)
	}
	defer func() {
		if cfg.Keep {
			logf("kept database %s and %s", id, workDir)
			return
		}
		os.RemoveAll(workDir)
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if derr := conn.Exec(cctx, "DROP DATABASE IF EXISTS "+chsql.Ident(id)+" SYNC"); derr != nil {
			logf("drop database %s: %v", id, derr)
		}
	}()
	if err := migration.Apply(ctx, conn, migration.DefaultConfig()); err != nil {
		return err
	}

	// load: the clock is fixed so that the trainer's default windows
	// (eval 6h, train 7d) with a maturity of 1h select every generated row.
	now := time.Now().UTC().Truncate(time.Hour)
	mc := retrain.DefaultModelConfig()
	mc.Maturity = time.Hour
	// Every repeat is a run of the same model at the same instant: no budget.
	mc.MaxRunsPerDay, mc.MinInterval = -1, -1
	evalTo := now.Add(-mc.Maturity)
	evalFrom := evalTo.Add(-mc.EvalWindow)
	from := evalFrom.Add(-mc.TrainWindow)
	nEval := int64(float64(cfg.Rows) * benchRetrainEvalFraction)
	start := time.Now()
	logf("load: generating %d labelled rows (%d features) in database %s: %d in [%s, %s), %d in [%s, %s)", cfg.Rows, cfg.Features, id,
		cfg.Rows-nEval, from.Format(time.RFC3339), evalFrom.Format(time.RFC3339), nEval, evalFrom.Format(time.RFC3339), evalTo.Format(time.RFC3339))
	for _, q := range benchRetrainSQL(cfg.Rows, nEval, cfg.Features, from, evalFrom, evalTo) {
		if err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("generate rows: %w", err)
		}
	}
	loadSecs := time.Since(start).Seconds()
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM inferences_labeled").Scan(&n); err != nil {
		return fmt.Errorf("count labelled rows: %w", err)
	}
	logf("load: %d labelled rows in %.1fs (%.0f rows/s)", n, loadSecs, float64(n)/loadSecs)
	if n != uint64(cfg.Rows) {
		return fmt.Errorf("generated %d labelled rows, want %d", n, cfg.Rows)
	}

	// retrain
	serverPID := cfg.ServerPID
	if serverPID == 0 {
		serverPID = findServerPID(cfg.ClickHouseURL)
	}
	tr, err := retrain.New(retrain.Options{
		Conn: conn, Events: discardTriggers{},
		Settings:   retrain.Settings{Defaults: mc, DataDir: workDir, KeepWork: cfg.Keep},
		Registerer: prometheus.NewRegistry(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now: func() time.Time { return now },
	})
	if err != nil {
		return err
	}
	var runs []retrainRun
	for i := range cfg.Repeat {
		r, err := benchRetrainOnce(ctx, tr, now, serverPID)
		if err != nil {
			return fmt.Errorf("trainer run %d: %w", i+1, err)
		}
		logf("retrain: run %d of %d: %s; dataset %.2fs, train %.2fs, evaluate %.2fs, end to end %.2fs, peak RSS %.0f MiB",
			i+1, cfg.Repeat, r.Run.Status, r.Steps["dataset"], r.Steps["train"], r.Steps["evaluate"], r.Seconds, r.RSSMiB)
		runs = append(runs, r)
	}
	printBenchRetrain(env.Stdout, cfg, loadSecs, runs, serverPID)
	return nil
}

func benchRetrainOnce(ctx context.Context, tr *retrain.Trainer, now time.Time, serverPID int) (retrainRun, error) {
	var r retrainRun
	trig := schemas.NewManualTrigger(benchModel, "bench retrain", now)
	runtime.GC()
	debug.FreeOSMemory()
	resetPeakRSS()
	r.ServerRSSMiB[0], _ = procMemMiB(serverPID)
	start := time.Now()
	run, err := tr.RunTrigger(ctx, trig)
	r.Seconds = time.Since(start).Seconds()
	_, r.RSSMiB = procMemMiB(os.Getpid())
	r.ServerRSSMiB[1], r.ServerHWMMiB = procMemMiB(serverPID)
	if err != nil {
		return r, err
	}
	if run == nil {
		return r, errors.New("the trigger was skipped as a duplicate")
	}
	if run.Status == retrain.RunFailed {
		return r, fmt.Errorf("run failed: %s", run.DecisionReason)
	}
	r.Run, r.Steps = run, run.StepSeconds
	return r, nil
}

// benchRetrainSQL returns the two statements that generate the rows: rows
// inferences of model "bench" (rows−nEval spread over [from, evalFrom),
// nEval over [evalFrom, evalTo)) and their outcomes. Every value is a
// function of the row number through cityHash64, so both statements (and
// two runs) agree.
func benchRetrainSQL(rows, nEval int64, features int, from, evalFrom, evalTo time.Time) []string {
	u := func(i, s int) string {
		return fmt.Sprintf("((cityHash64(number, %d, %d) %% 1000000007) + 0.5) / 1000000007", i, s)
	}
	nTrain := rows - nEval
	var cols, nmap, logit, champ []string
	for i := range features {
		name := benchNumericName(i)
		cols = append(cols, fmt.Sprintf("sqrt(-2 * log(%s)) * cos(2 * pi() * %s) AS %s", u(i, 1), u(i, 2), name))
		nmap = append(nmap, fmt.Sprintf("'%s', %s", name, name))
		// Weights ±1, ±0.5, ±0.33, ±0.25, ±0.2 in turn.
		term := fmt.Sprintf("%s * %s%g", name, map[bool]string{true: "", false: "-"}[i%2 == 0], 1/float64(1+i%5))
		logit = append(logit, term)
		if i < (features+1)/2 {
			champ = append(champ, term)
		}
	}
	ts := fmt.Sprintf("if(number < %d, addMilliseconds(%s, intDiv(toInt64(number) * %d, %d)), addMilliseconds(%s, intDiv(toInt64(number - %d) * %d, %d)))",
		nTrain, chTime(from), evalFrom.Sub(from).Milliseconds(), max(nTrain, 1), chTime(evalFrom), nTrain, evalTo.Sub(evalFrom).Milliseconds(), max(nEval, 1))
	src := fmt.Sprintf(`(SELECT number, %s AS ts, 1 / (1 + exp(-(-0.3 + %s))) AS p, 1 / (1 + exp(-(-0.3 + %s))) AS score,
    if(%s < p, '1', '0') AS label, %s
  FROM numbers(%d))`, ts, strings.Join(logit, " + "), strings.Join(champ, " + "), u(9999, 1), strings.Join(cols, ", "), rows)
	inferences := fmt.Sprintf(`INSERT INTO inferences (event_id, model_id, model_version, prediction_id, timestamp,
    features_numeric, features_categorical, missing_features, prediction_label, prediction_score,
    kafka_topic, kafka_partition, kafka_offset, ingested_at)
SELECT concat('e', toString(number)), '%s', 'v1', concat('p', toString(number)), ts,
    map(%s), CAST(map(), 'Map(String, String)'), [], if(score > 0.5, '1', '0'), score,
    'bench', 0, toInt64(number), now64(3)
FROM %s`, benchModel, strings.Join(nmap, ", "), src)
	outcomes := fmt.Sprintf(`INSERT INTO outcomes (event_id, model_id, prediction_id, timestamp, actual_label,
    kafka_topic, kafka_partition, kafka_offset, ingested_at)
SELECT concat('o', toString(number)), '%s', concat('p', toString(number)), addMinutes(ts, 30), label,
    'bench', 0, toInt64(number), now64(3)
FROM %s`, benchModel, src)
	return []string{inferences, outcomes}
}

func chTime(t time.Time) string {
	return fmt.Sprintf("toDateTime64('%s', 3, 'UTC')", t.UTC().Format("2006-01-02 15:04:05.000"))
}

func printBenchRetrain(w io.Writer, cfg *benchRetrainConfig, loadSecs float64, runs []retrainRun, serverPID int) {
	last := runs[len(runs)-1].Run
	fmt.Fprintf(w, "bench retrain: %d labelled rows, %d numeric features, %d CPUs, load %.1fs (untimed)\n", cfg.Rows, cfg.Features, runtime.NumCPU(), loadSecs)
	fmt.Fprintf(w, "dataset: %d train, %d validation, %d test, %d eval rows; %d rows read, %.0f MiB written\n",
		last.RowsTrain, last.RowsValidation, last.RowsTest, last.RowsEval, last.RowsRead, float64(last.BytesWritten)/(1<<20))
	fmt.Fprintf(w, "last run: %s (%s)\n", last.Status, last.DecisionReason)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "run\tdataset s\ttrain s\tevaluate s\tend to end s\tpeak RSS MiB\tserver RSS MiB before→after\tCPU s\t")
	cols := make([][]float64, 6)
	for i, r := range runs {
		vals := []float64{r.Steps["dataset"], r.Steps["train"], r.Steps["evaluate"], r.Seconds, r.RSSMiB, r.Run.CPUSeconds}
		fmt.Fprintf(tw, "%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.0f\t%.0f→%.0f\t%.1f\t\n", i+1, vals[0], vals[1], vals[2], vals[3], vals[4],
			r.ServerRSSMiB[0], r.ServerRSSMiB[1], vals[5])
		for j, v := range vals {
			cols[j] = append(cols[j], v)
		}
	}
	med := make([]float64, len(cols))
	for j := range cols {
		med[j] = median(cols[j])
	}
	fmt.Fprintf(tw, "median\t%.2f\t%.2f\t%.2f\t%.2f\t%.0f\t\t%.1f\t\n", med[0], med[1], med[2], med[3], med[4], med[5])
	tw.Flush()
	fmt.Fprintln(w)
	for j, s := range benchRetrainSteps {
		fmt.Fprintf(w, "%-10s %7.2f s (median of %d)\n", s, med[j], len(runs))
	}
	fmt.Fprintf(w, "end to end %7.2f s (median of %d; the three steps plus recording the run)  target <= %.0f s: %s\n",
		med[3], len(runs), targetRetrainSeconds, meets(med[3] <= targetRetrainSeconds))
	fmt.Fprintf(w, "peak RSS   %7.0f MiB  VmHWM of this process during the run (reset before it)  target <= %.0f MiB: %s\n",
		med[4], targetRetrainRSSMiB, meets(med[4] <= targetRetrainRSSMiB))
	if serverPID > 0 {
		fmt.Fprintf(w, "server     clickhouse-embedded pid %d: VmRSS %.0f MiB after the last run, VmHWM %.0f MiB since it started (shared, not reset)\n",
			serverPID, runs[len(runs)-1].ServerRSSMiB[1], runs[len(runs)-1].ServerHWMMiB)
	} else {
		fmt.Fprintf(w, "server     memory not measured (no local clickhouse-embedded on the URL's port; pass -server-pid)\n")
	}
}

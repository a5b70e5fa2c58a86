package retrain

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"

	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/retrain/dataset"
)

// logTail is how much of an external trainer's output a failure reason
// quotes (the whole log is in <output>/../trainer.log).
const logTail = 2048

// external holds an external trainer's predictions by event id.
type external map[string]float64

func (e external) predict(rec arrow.Record, ids *array.String, dst []float64) ([]float64, error) {
	dst = dst[:0]
	for i := range int(rec.NumRows()) {
		p, ok := e[ids.Value(i)]
		if !ok {
			return nil, fmt.Errorf("predictions.csv has no prediction for evaluation row %s", ids.Value(i))
		}
		dst = append(dst, p)
	}
	return dst, nil
}

// runExternal runs the configured command as
//
//	COMMAND... --dataset DIR --metadata DIR/metadata.json --output OUT
//
// with DRIFTWATCH_DATASET_DIR, DRIFTWATCH_DATASET_METADATA,
// DRIFTWATCH_OUTPUT_DIR, DRIFTWATCH_MODEL_ID, DRIFTWATCH_TASK and
// DRIFTWATCH_POSITIVE_CLASS in its environment. It must write
// OUT/predictions.csv (header event_id,prediction; one row per evaluation
// row) and its artifact into OUT/model/, which is moved to artifactDir.
// It returns the command's CPU seconds too.
//
// The command's environment is an allow-list, not the trainer's own: see
// externalEnv. Its output goes to the log and to the tail a failure quotes
// (training_runs.decision_reason) with every secret of red replaced by
// [REDACTED].
func runExternal(ctx context.Context, mc ModelConfig, ds *dataset.Manifest, out, artifactDir string, red *config.Redactor) (external, float64, error) {
	if err := os.MkdirAll(out, 0o700); err != nil {
		return nil, 0, fmt.Errorf("create trainer output directory: %w", err)
	}
	logPath := filepath.Join(filepath.Dir(out), "trainer.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, 0, fmt.Errorf("create trainer log: %w", err)
	}
	defer logf.Close()
	// The tail keeps a secret's length more, so one cut at its start is
	// still whole when redacted.
	tail := &tailBuffer{max: logTail + red.Longest(), red: red}
	lw := &redactWriter{w: logf, red: red}
	defer lw.Flush()
	w := io.MultiWriter(lw, tail)

	cctx, cancel := context.WithTimeout(ctx, mc.Timeout)
	defer cancel()
	args := append(append([]string(nil), mc.Command[1:]...), "--dataset", ds.Dir, "--metadata", ds.MetadataPath(), "--output", out)
	cmd := exec.CommandContext(cctx, mc.Command[0], args...)
	cmd.Env = externalEnv(os.LookupEnv, mc, map[string]string{"DRIFTWATCH_DATASET_DIR": ds.Dir, "DRIFTWATCH_DATASET_METADATA": ds.MetadataPath(),
		"DRIFTWATCH_OUTPUT_DIR": out, "DRIFTWATCH_MODEL_ID": ds.ModelID, "DRIFTWATCH_TASK": string(mc.Task), "DRIFTWATCH_POSITIVE_CLASS": mc.PositiveClass})
	cmd.Stdout, cmd.Stderr = w, w
	// Its own process group, so a timeout kills the trainer's children
	// (a shell script's python) too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	runErr := cmd.Run()
	var cpu float64
	if cmd.ProcessState != nil {
		cpu = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	}
	switch {
	case ctx.Err() != nil:
		return nil, cpu, ctx.Err()
	case errors.Is(cctx.Err(), context.DeadlineExceeded):
		return nil, cpu, fmt.Errorf("%w: external trainer timed out after %s; last output: %s", ErrRunFailed, mc.Timeout, tail.String())
	case runErr != nil:
		return nil, cpu, fmt.Errorf("%w: external trainer: %v; last output: %s", ErrRunFailed, runErr, tail.String())
	}
	preds, err := readPredictions(filepath.Join(out, "predictions.csv"), ds.Splits[dataset.Eval].Rows)
	if err != nil {
		return nil, cpu, fmt.Errorf("%w: external trainer output: %w", ErrRunFailed, err)
	}
	src := filepath.Join(out, "model")
	if fi, err := os.Stat(src); err != nil || !fi.IsDir() {
		return nil, cpu, fmt.Errorf("%w: external trainer output: no model directory %s", ErrRunFailed, src)
	}
	if err := os.MkdirAll(filepath.Dir(artifactDir), 0o700); err != nil {
		return nil, cpu, fmt.Errorf("create artifact directory: %w", err)
	}
	_ = os.RemoveAll(artifactDir)
	if err := os.Rename(src, artifactDir); err != nil {
		return nil, cpu, fmt.Errorf("move external artifact: %w", err)
	}
	// The command made the directory with its own umask.
	if err := os.Chmod(artifactDir, 0o700); err != nil {
		return nil, cpu, fmt.Errorf("restrict external artifact directory: %w", err)
	}
	return preds, cpu, nil
}

func readPredictions(path string, want int64) (external, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open predictions: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = 2
	head, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("predictions.csv: %w", err)
	}
	if head[0] != "event_id" || head[1] != "prediction" {
		return nil, fmt.Errorf("predictions.csv: header %q, want event_id,prediction", head)
	}
	out := make(external, want)
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("predictions.csv: %w", err)
		}
		p, err := strconv.ParseFloat(rec[1], 64)
		if err != nil || math.IsNaN(p) || math.IsInf(p, 0) {
			line, _ := r.FieldPos(1)
			return nil, fmt.Errorf("predictions.csv line %d: prediction %q is not a finite number", line, rec[1])
		}
		out[rec[0]] = p
	}
	if int64(len(out)) != want {
		return nil, fmt.Errorf("predictions.csv has %d predictions for %d evaluation rows", len(out), want)
	}
	return out, nil
}

// ExternalEnvAllowed are the variables of the trainer's own environment an
// external trainer inherits (when set); nothing else of it reaches the
// command — in particular no DRIFTWATCH_CLICKHOUSE_* or DRIFTWATCH_KAFKA_*
// variable.
var ExternalEnvAllowed = []string{"PATH", "HOME", "LANG", "TMPDIR"}

// datasetEnv are the variables runExternal sets itself; env: may not
// replace them.
var datasetEnv = []string{"DRIFTWATCH_DATASET_DIR", "DRIFTWATCH_DATASET_METADATA", "DRIFTWATCH_OUTPUT_DIR", "DRIFTWATCH_MODEL_ID",
	"DRIFTWATCH_TASK", "DRIFTWATCH_POSITIVE_CLASS"}

// externalEnv is the external command's whole environment: the allowed
// variables of the trainer's, the model's env: and the dataset variables,
// sorted by name.
func externalEnv(lookup func(string) (string, bool), mc ModelConfig, dataset map[string]string) []string {
	vars := map[string]string{}
	for _, k := range ExternalEnvAllowed {
		if v, ok := lookup(k); ok {
			vars[k] = v
		}
	}
	for k, v := range mc.Env {
		vars[k] = v
	}
	for k, v := range dataset {
		vars[k] = v
	}
	out := make([]string, 0, len(vars))
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// validateEnv refuses an env: that would hand the command a credential of
// the trainer's (a DRIFTWATCH_CLICKHOUSE_* or DRIFTWATCH_KAFKA_* name, a
// URL with a password), replace a dataset variable, or is not a variable
// name.
func validateEnv(key string, env map[string]string) error {
	var errs []error
	for k, v := range env {
		switch {
		case k == "" || strings.ContainsAny(k, "=\x00") || strings.TrimSpace(k) != k:
			errs = append(errs, fmt.Errorf("%s.env: %q is not an environment variable name", key, k))
		case strings.HasPrefix(k, "DRIFTWATCH_CLICKHOUSE_") || strings.HasPrefix(k, "DRIFTWATCH_KAFKA_"):
			errs = append(errs, fmt.Errorf("%s.env.%s: the trainer's ClickHouse and Kafka settings are not passed to an external trainer", key, k))
		case slices.Contains(datasetEnv, k):
			errs = append(errs, fmt.Errorf("%s.env.%s: set by the trainer for each run", key, k))
		case strings.ContainsRune(v, 0):
			errs = append(errs, fmt.Errorf("%s.env.%s: the value holds a NUL byte", key, k))
		case len(config.URLSecrets(v)) > 0:
			errs = append(errs, fmt.Errorf("%s.env.%s: a URL with a password (the value is not shown); give the command its credentials another way", key, k))
		}
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errors.Join(errs...)
}

// redactWriter writes whole lines to w with red's secrets replaced; Flush
// writes what is left of the last line.
type redactWriter struct {
	w   io.Writer
	red *config.Redactor
	buf []byte
}

func (r *redactWriter) Write(p []byte) (int, error) {
	r.buf = append(r.buf, p...)
	if i := bytes.LastIndexByte(r.buf, '\n'); i >= 0 {
		if _, err := io.WriteString(r.w, r.red.Redact(string(r.buf[:i+1]))); err != nil {
			return 0, err
		}
		r.buf = append(r.buf[:0], r.buf[i+1:]...)
	}
	// A line without an end is written in pieces, each a secret's length
	// short of the buffer's end.
	if keep := r.red.Longest(); len(r.buf) > 64<<10+keep {
		cut := len(r.buf) - keep
		if _, err := io.WriteString(r.w, r.red.Redact(string(r.buf[:cut]))); err != nil {
			return 0, err
		}
		r.buf = append(r.buf[:0], r.buf[cut:]...)
	}
	return len(p), nil
}

// Flush writes the buffered rest.
func (r *redactWriter) Flush() {
	_, _ = io.WriteString(r.w, r.red.Redact(string(r.buf)))
	r.buf = r.buf[:0]
}

// tailBuffer keeps the last max bytes written to it; String redacts red's
// secrets and keeps logTail bytes.
type tailBuffer struct {
	max int
	b   []byte
	red *config.Redactor
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	s := t.red.Redact(string(t.b))
	if len(s) > logTail {
		s = s[len(s)-logTail:]
	}
	return strings.TrimSpace(s)
}

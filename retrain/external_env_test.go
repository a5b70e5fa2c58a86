package retrain

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/internal/config"
)

// TestExternalTrainerGetsNoSecrets runs the real external command
// (testdata/envtrainer.sh, which dumps its environment and echoes a
// password into its log) for a trainer whose configuration was loaded as
// the service loads it, with the ClickHouse password in
// DRIFTWATCH_CLICKHOUSE_PASSWORD and another inside the URL's userinfo,
// and Kafka credentials in DRIFTWATCH_KAFKA_* variables. The command's
// environment is the allow-list plus the model's env: and the dataset
// variables; neither password is in it, nor in the run's row of
// training_runs (its decision_reason holds the log's tail) nor in
// trainer.log, where [REDACTED] stands instead.
func TestExternalTrainerGetsNoSecrets(t *testing.T) {
	w := newWorld(t)
	const (
		envPassword = "ch-env-pw-7f3a9c"
		urlPassword = "ch-url-pw-41d8e2"
		kafkaSecret = "kafka-sasl-pw-90b1"
	)
	script, err := filepath.Abs("testdata/envtrainer.sh")
	if err != nil {
		t.Fatal(err)
	}
	dump := filepath.Join(t.TempDir(), "env.txt")
	t.Setenv("DRIFTWATCH_CLICKHOUSE_PASSWORD", envPassword)
	t.Setenv("DRIFTWATCH_CLICKHOUSE_URL", strings.Replace(w.url, "://", "://default:"+urlPassword+"@", 1))
	t.Setenv("DRIFTWATCH_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512") // loaded, never dialled here
	t.Setenv("DRIFTWATCH_KAFKA_SASL_USERNAME", "trainer")
	t.Setenv("DRIFTWATCH_KAFKA_SASL_PASSWORD", kafkaSecret)
	t.Setenv("DRIFTWATCH_KAFKA_BROKERS", strings.Join(w.brokers, ","))
	t.Setenv("LANG", "C.UTF-8")

	cfgFile := filepath.Join(t.TempDir(), "trainer.yaml")
	yml := "defaults:\n  trainer: external\n  command: [sh, " + script + ", --echo, " + envPassword + "]\n" +
		"  env:\n    ENV_DUMP: " + dump + "\n    TRAINER_MODE: test\n"
	if err := os.WriteFile(cfgFile, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	if _, err := config.Load(cfg, config.LoadOptions{Name: "trainer", Args: []string{"-config", cfgFile}}); err != nil {
		t.Fatal(err)
	}
	if cfg.ClickHousePassword.Reveal() != envPassword {
		t.Fatalf("the password did not come from the environment")
	}
	mc := modelCfg()
	mc.Trainer, mc.Command, mc.Env, mc.Timeout = TrainerExternal, cfg.Defaults.Command, cfg.Defaults.Env, 2*time.Minute
	opts := Options{Settings: Settings{Defaults: mc, KeepWork: true}, Secrets: config.SecretValues(cfg)}
	tr := w.trainer(t, opts)

	r, err := tr.RunTrigger(context.Background(), trigger("model-1", "trig-env", "env:model-1", w.now()))
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != RunFailed || !strings.Contains(r.DecisionReason, "envtrainer: connecting with password=[REDACTED]") {
		t.Fatalf("run %s: %q, want failed with the redacted password in the log tail", r.Status, r.DecisionReason)
	}

	raw, err := os.ReadFile(dump)
	if err != nil {
		t.Fatalf("the external command wrote no environment: %v", err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		env[k] = v
	}
	for _, want := range []string{"PATH", "LANG", "ENV_DUMP", "TRAINER_MODE", "DRIFTWATCH_DATASET_DIR", "DRIFTWATCH_OUTPUT_DIR", "DRIFTWATCH_MODEL_ID"} {
		if _, ok := env[want]; !ok {
			t.Errorf("the command's environment lacks %s:\n%s", want, raw)
		}
	}
	if env["TRAINER_MODE"] != "test" {
		t.Errorf("env: TRAINER_MODE is %q, want test", env["TRAINER_MODE"])
	}
	for k := range env {
		if strings.HasPrefix(k, "DRIFTWATCH_CLICKHOUSE_") || strings.HasPrefix(k, "DRIFTWATCH_KAFKA_") {
			t.Errorf("the command's environment has %s", k)
		}
	}
	for _, secret := range []string{envPassword, urlPassword, kafkaSecret} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("the command's environment holds %q:\n%s", secret, raw)
		}
	}

	// The stored row, every column as text, and the log on disk.
	rows, err := w.conn.Query(context.Background(), "SELECT formatRow('TSV', *) FROM training_runs")
	if err != nil {
		t.Fatal(err)
	}
	var stored []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, s)
	}
	rows.Close()
	if len(stored) == 0 {
		t.Fatal("no training_runs row for the run")
	}
	logs, _ := filepath.Glob(filepath.Join(tr.workDir, "*", "*", "trainer.log"))
	if len(logs) != 1 {
		t.Fatalf("trainer logs %q, want one", logs)
	}
	log, err := os.ReadFile(logs[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "password=[REDACTED]") {
		t.Errorf("trainer.log does not show the echoed password redacted:\n%s", log)
	}
	for what, text := range map[string]string{"training_runs": strings.Join(stored, "\n"), "trainer.log": string(log), "decision_reason": r.DecisionReason} {
		if strings.Contains(text, envPassword) {
			t.Errorf("%s holds the ClickHouse password:\n%s", what, text)
		}
	}
}

func TestModelConfigEnvValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string // "" when valid
	}{
		{"plain variables", map[string]string{"MLFLOW_TRACKING_URI": "http://mlflow:5000", "SEED": "7"}, ""},
		{"ClickHouse setting", map[string]string{"DRIFTWATCH_CLICKHOUSE_PASSWORD": "x"}, "defaults.env.DRIFTWATCH_CLICKHOUSE_PASSWORD: the trainer's ClickHouse and Kafka settings"},
		{"Kafka setting", map[string]string{"DRIFTWATCH_KAFKA_BROKERS": "k:9092"}, "defaults.env.DRIFTWATCH_KAFKA_BROKERS: the trainer's ClickHouse and Kafka settings"},
		{"URL with a password", map[string]string{"DB": "postgres://u:hunter2@db/x"}, "defaults.env.DB: a URL with a password (the value is not shown)"},
		{"dataset variable", map[string]string{"DRIFTWATCH_OUTPUT_DIR": "/tmp"}, "defaults.env.DRIFTWATCH_OUTPUT_DIR: set by the trainer"},
		{"bad name", map[string]string{"A=B": "x"}, `defaults.env: "A=B" is not an environment variable name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mc := DefaultModelConfig()
			mc.Trainer, mc.Command, mc.Env = TrainerExternal, []string{"true"}, tc.env
			err := mc.Validate("defaults")
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate: %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate: %v, want %q", err, tc.want)
			case err != nil && strings.Contains(err.Error(), "hunter2"):
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

// TestExternalLogRedaction checks the two writers an external trainer's
// output goes through with a secret cut across writes, cut by the tail's
// start, and on an unfinished last line.
func TestExternalLogRedaction(t *testing.T) {
	const secret = "s3cr3t-value-0042"
	red := config.RedactorOf([]string{secret})
	var log strings.Builder
	w := &redactWriter{w: &log, red: red}
	tail := &tailBuffer{max: logTail + red.Longest(), red: red}
	out := io.MultiWriter(w, tail)
	// Pieces that cut the secret in the middle.
	for _, p := range []string{"line one s3cr", "3t-value-0042 end\n", strings.Repeat("x", logTail-10) + " " + secret[:5], secret[5:] + "\nlast " + secret} {
		if _, err := io.WriteString(out, p); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	for what, text := range map[string]string{"log": log.String(), "tail": tail.String()} {
		if strings.Contains(text, "s3cr3t") || strings.Contains(text, "value-0042") {
			t.Errorf("%s holds (part of) the secret: %q", what, text)
		}
		if !strings.HasSuffix(text, "last [REDACTED]") {
			t.Errorf("%s does not end with the redacted last line: …%q", what, text[max(0, len(text)-40):])
		}
	}
	if n := strings.Count(log.String(), "[REDACTED]"); n != 3 {
		t.Errorf("log has %d redactions, want 3:\n%s", n, log.String())
	}
	if len(tail.String()) > logTail {
		t.Errorf("tail is %d bytes, want at most %d", len(tail.String()), logTail)
	}

	// A secret whose start the last logTail bytes cut off: redacted
	// before the cut, so not even its end shows.
	cut := &tailBuffer{max: logTail + red.Longest(), red: red}
	io.WriteString(cut, "x "+secret+strings.Repeat("y", logTail-5))
	if s := cut.String(); strings.Contains(s, "0042") || len(s) > logTail {
		t.Errorf("tail of %d bytes starts %q", len(s), s[:20])
	}
}

package retrain

import (
	"errors"
	"fmt"
	"time"

	"github.com/driftwatch/driftwatch/retrain/model"
)

// Trainer kinds.
const (
	TrainerBuiltin  = "builtin"
	TrainerExternal = "external"
)

// Guardrail is a secondary metric the challenger must not make worse than
// the champion's by more than MaxDegradation (in the metric's units).
type Guardrail struct {
	Metric         model.Metric `yaml:"metric" json:"metric"`
	MaxDegradation float64      `yaml:"max_degradation" json:"max_degradation"`
}

// ModelConfig is how one model is retrained and judged.
type ModelConfig struct {
	// Task is binary_classification or regression.
	Task model.Task `yaml:"task"`
	// PositiveClass is the label that counts as 1 (classification).
	PositiveClass string `yaml:"positive_class"`
	// Metric is the primary metric (roc_auc for classification, rmse for
	// regression when empty).
	Metric model.Metric `yaml:"metric"`
	// Margin is how much better (in Metric's units) the challenger must be.
	Margin float64 `yaml:"margin"`
	// Guardrails (brier ≤ +0.01 for classification, r2 ≥ −0.02 for
	// regression when nil, that is when the key is absent); an empty list,
	// guardrails: [], is no guardrail at all. -check-config prints the
	// default guardrail, so its output keeps it.
	Guardrails []Guardrail `yaml:"guardrails"`
	// Maturity is how old an inference must be for its label to count as
	// final: when 0, the p99 label delay of the model's last day of labels
	// (plus a second), at most MaxMaturity (DefaultMaxMaturity when 0; the
	// maturity itself when no label has arrived). TrainWindow and
	// EvalWindow are the lengths of the training range and the evaluation
	// window that end at now − Maturity.
	Maturity    time.Duration `yaml:"maturity"`
	MaxMaturity time.Duration `yaml:"max_maturity"`
	TrainWindow time.Duration `yaml:"train_window"`
	EvalWindow  time.Duration `yaml:"eval_window"`
	// EvalMaxShare is the largest share of the matured labelled rows the
	// evaluation window takes (DefaultEvalMaxShare when 0); MinEvalRows and
	// MinTrainRows the fewest rows the evaluation window and the training
	// range hold (DefaultMinEvalRows and DefaultMinTrainRows when 0). The
	// evaluation window is EvalWindow's rows capped at the share and raised
	// to the minimum; a run with too few rows for both fails and says when
	// enough will have matured.
	EvalMaxShare float64 `yaml:"eval_max_share"`
	MinEvalRows  int     `yaml:"min_eval_rows"`
	MinTrainRows int     `yaml:"min_train_rows"`
	// Resamples of the bootstrap (1000 when 0) and its confidence level.
	Resamples int     `yaml:"resamples"`
	Level     float64 `yaml:"level"`
	// Trainer is builtin (default) or external; Command the external
	// trainer's argv and Timeout its time limit (30m when 0).
	Trainer string        `yaml:"trainer"`
	Command []string      `yaml:"command"`
	Timeout time.Duration `yaml:"timeout"`
	// Env is what the external trainer's environment has beyond the
	// allow-list (ExternalEnvAllowed and the DRIFTWATCH_* dataset
	// variables): name → value. The trainer's own environment, with its
	// ClickHouse and Kafka credentials, never reaches the command.
	Env map[string]string `yaml:"env"`
	// C and Alpha are the built-in trainers' regularisation (model.Config).
	C     float64 `yaml:"c"`
	Alpha float64 `yaml:"alpha"`
	// MaxFeatures is the most columns of the built-in trainers' design
	// matrix (model.DefaultMaxFeatures, 1024, when 0): the features present
	// in the most training rows and the most frequent categories are kept,
	// the rest ignored, so a model whose events carry thousands of distinct
	// feature names trains in bounded memory.
	MaxFeatures int `yaml:"max_features"`
	// MaxRunsPerDay is how many runs the model may start in any 24 hours
	// (DefaultMaxRunsPerDay when 0, unlimited when negative); MinInterval
	// how long after the start of its last run the next may start
	// (DefaultMinInterval when 0, none when negative). A trigger over
	// budget is recorded as a skipped run; manual triggers are held to
	// MaxRunsPerDay only.
	MaxRunsPerDay int           `yaml:"max_runs_per_day"`
	MinInterval   time.Duration `yaml:"min_interval"`
}

// Retrain budget and window defaults.
const (
	DefaultMaxRunsPerDay = 4
	DefaultMinInterval   = time.Hour
	DefaultMaxMaturity   = 24 * time.Hour
	DefaultEvalMaxShare  = 0.2
	DefaultMinEvalRows   = 200
	DefaultMinTrainRows  = 1000
)

// DefaultModelConfig is binary classification of label "1" judged by ROC
// AUC with a margin of 0.005 on the last 6 hours of labels matured for
// their p99 label delay (at most 24 hours), but at most a fifth of the
// labelled rows and at least 200, trained on the 7 days before (at least
// 1000 rows), with the built-in trainer, at most 4 runs a day and 1 hour
// apart, and a design matrix of at most 1024 columns.
func DefaultModelConfig() ModelConfig {
	return ModelConfig{Task: model.Classification, PositiveClass: "1", Margin: 0.005, MaxMaturity: DefaultMaxMaturity,
		TrainWindow: 7 * 24 * time.Hour, EvalWindow: 6 * time.Hour, EvalMaxShare: DefaultEvalMaxShare,
		MinEvalRows: DefaultMinEvalRows, MinTrainRows: DefaultMinTrainRows, Trainer: TrainerBuiltin, Timeout: 30 * time.Minute,
		MaxRunsPerDay: DefaultMaxRunsPerDay, MinInterval: DefaultMinInterval, MaxFeatures: model.DefaultMaxFeatures}
}

func (c ModelConfig) withDefaults() ModelConfig {
	if c.Metric == "" {
		c.Metric = model.AUC
		if c.Task == model.Regression {
			c.Metric = model.RMSE
		}
	}
	if c.Guardrails == nil {
		c.Guardrails = []Guardrail{{Metric: model.Brier, MaxDegradation: 0.01}}
		if c.Task == model.Regression {
			c.Guardrails = []Guardrail{{Metric: model.R2, MaxDegradation: 0.02}}
		}
	}
	if c.Resamples == 0 {
		c.Resamples = model.DefaultResamples
	}
	if c.Level == 0 {
		c.Level = 0.95
	}
	if c.Trainer == "" {
		c.Trainer = TrainerBuiltin
	}
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Minute
	}
	if c.MaxRunsPerDay == 0 {
		c.MaxRunsPerDay = DefaultMaxRunsPerDay
	}
	if c.MinInterval == 0 {
		c.MinInterval = DefaultMinInterval
	}
	if c.MaxMaturity == 0 {
		c.MaxMaturity = max(DefaultMaxMaturity, c.Maturity)
	}
	if c.EvalMaxShare == 0 {
		c.EvalMaxShare = DefaultEvalMaxShare
	}
	if c.MinEvalRows == 0 {
		c.MinEvalRows = DefaultMinEvalRows
	}
	if c.MinTrainRows == 0 {
		c.MinTrainRows = DefaultMinTrainRows
	}
	if c.MaxFeatures == 0 {
		c.MaxFeatures = model.DefaultMaxFeatures
	}
	if c.C == 0 {
		c.C = model.DefaultC
	}
	if c.Alpha == 0 {
		c.Alpha = model.DefaultAlpha
	}
	return c
}

// Validate reports every bad field, prefixed with key.
func (c ModelConfig) Validate(key string) error {
	c = c.withDefaults()
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf(key+"."+f, a...)) }
	switch c.Task {
	case model.Classification:
		if c.PositiveClass == "" {
			bad("positive_class: required for binary_classification")
		}
	case model.Regression:
	default:
		bad("task: %q is neither %s nor %s", c.Task, model.Classification, model.Regression)
	}
	for _, m := range append([]model.Metric{c.Metric}, guardMetrics(c.Guardrails)...) {
		if m.Classification() != (c.Task == model.Classification) {
			bad("metric %q does not apply to task %s", m, c.Task)
		}
	}
	if c.Margin < 0 {
		bad("margin: must not be negative")
	}
	if c.Maturity < 0 || c.TrainWindow <= 0 || c.EvalWindow <= 0 {
		bad("maturity, train_window and eval_window: must be positive")
	}
	if c.MaxMaturity < 0 {
		bad("max_maturity: must be positive, got %s", c.MaxMaturity)
	}
	if c.EvalMaxShare <= 0 || c.EvalMaxShare >= 1 {
		bad("eval_max_share: must be in (0, 1), got %g", c.EvalMaxShare)
	}
	if c.MaxFeatures < 0 {
		bad("max_features: must not be negative, got %d", c.MaxFeatures)
	}
	if c.MinEvalRows < 0 || c.MinTrainRows < 0 {
		bad("min_eval_rows and min_train_rows: must not be negative")
	}
	if c.Level <= 0 || c.Level >= 1 {
		bad("level: must be in (0, 1)")
	}
	switch c.Trainer {
	case TrainerBuiltin:
	case TrainerExternal:
		if len(c.Command) == 0 {
			bad("command: required for the external trainer")
		}
	default:
		bad("trainer: %q is neither builtin nor external", c.Trainer)
	}
	errs = append(errs, validateEnv(key, c.Env))
	return errors.Join(errs...)
}

func guardMetrics(gs []Guardrail) []model.Metric {
	out := make([]model.Metric, len(gs))
	for i, g := range gs {
		out[i] = g.Metric
	}
	return out
}

// priority orders trigger reasons: lower runs first.
var priority = map[string]int{"manual": 0, "performance": 1, "business": 2, "prediction_drift": 3, "feature_drift": 4, "data_quality": 5, "schedule": 6}

package retrain

import (
	"strings"
	"testing"

	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/config/configtest"
)

// TestCheckConfigRoundTrip: the trainer's -check-config prints the
// configuration in effect (the task's metric and guardrail, 1000
// resamples at 0.95, …), and read back as a -config file it configures
// the trainer the same way: no "guardrails: []" that would turn the
// default guardrail off.
func TestCheckConfigRoundTrip(t *testing.T) {
	zero := []string{"models", "trigger_signing_key_file"}
	for _, k := range []string{"defaults", "models.*"} {
		zero = append(zero,
			k+".maturity", // 0s: the p99 label delay of the model's last day
			k+".command",  // only the external trainer has one
			k+".env",
			k+".margin",         // 0: any significant gain promotes
			k+".positive_class") // regression has none
	}
	configtest.RoundTrip(t, "trainer", func() config.Validator { return DefaultConfig() }, zero,
		[]configtest.Case{
			{Name: "defaults"},
			{Name: "regression defaults", File: "defaults:\n  task: regression\n"},
			{Name: "zeros in the file are defaults", File: "defaults:\n  metric: \"\"\n  resamples: 0\n  level: 0\n  timeout: 0s\n"},
			{Name: "models take the built-in defaults, not defaults:", File: "defaults:\n  margin: 0.02\nmodels:\n  m1:\n    task: regression\n    train_window: 24h\n    eval_window: 1h\n  m2:\n    task: binary_classification\n    positive_class: \"yes\"\n    train_window: 24h\n    eval_window: 1h\n    guardrails:\n      - metric: log_loss\n        max_degradation: 0.1\n"},
		})
}

// TestCheckConfigShowsDefaultGuardrail: the dump names the default
// guardrail, so pasting it back keeps it.
func TestCheckConfigShowsDefaultGuardrail(t *testing.T) {
	var b strings.Builder
	if err := config.Dump(&b, DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"metric: roc_auc", "- metric: brier", "resamples: 1000", "level: 0.95"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("-check-config output lacks %q:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "guardrails: []") {
		t.Errorf("-check-config output shows guardrails: [] (read back it turns the default guardrail off):\n%s", b.String())
	}
}

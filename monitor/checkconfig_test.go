package monitor

import (
	"testing"

	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/config/configtest"
)

// TestCheckConfigRoundTrip: the monitor's -check-config prints the
// configuration in effect (evaluation_timeout 0 as half of step, a
// model's missing policy as the instance's), and read back as a -config
// file it configures the monitor the same way.
func TestCheckConfigRoundTrip(t *testing.T) {
	configtest.RoundTrip(t, "monitor", func() config.Validator { return DefaultConfig() },
		[]string{
			"policy.thresholds", "policy.features", "models", "trigger_signing_key_file",
			"triggers.schedule",     // 0s: no scheduled retrain
			"triggers.data_quality", // false is a setting
			"performance.metric",    // per model by its task, learnt from its outcomes
			"instance_id",           // the host name and pid of the process that runs, not of -check-config's
			"segments.keys",         // none: no slices of segment keys
			"policy.min_importance", // 0: off, importance excludes nothing
			"models.*.policy.thresholds", "models.*.policy.features", "models.*.policy.min_importance",
		},
		[]configtest.Case{
			{Name: "defaults"},
			{Name: "step changes the evaluation timeout", Args: []string{"-step", "10m"}},
			{Name: "a model with its own reference", File: "models:\n  m1:\n    reference_start: 2026-01-01T00:00:00Z\n    reference_end: 2026-01-02T00:00:00Z\n  m2:\n    evaluation_timeout: 5s\n"},
		})
}

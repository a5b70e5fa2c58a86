package retrain

import (
	"strings"
	"testing"
	"time"
)

func TestOverBudget(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	ago := func(ds ...time.Duration) []time.Time {
		var out []time.Time
		for _, d := range ds {
			out = append(out, now.Add(-d))
		}
		return out
	}
	budget := func(perDay int, interval time.Duration) ModelConfig {
		mc := DefaultModelConfig()
		mc.MaxRunsPerDay, mc.MinInterval = perDay, interval
		return mc
	}
	for _, tc := range []struct {
		name   string
		mc     ModelConfig
		manual bool
		starts []time.Time
		cause  string
		reason string
	}{
		{name: "no runs yet", mc: budget(4, time.Hour)},
		{name: "defaults when unset", mc: budget(0, 0), starts: ago(30 * time.Minute), cause: BudgetMinInterval, reason: "budget: min_interval 1h0m0s not elapsed"},
		{name: "interval elapsed", mc: budget(4, time.Hour), starts: ago(61 * time.Minute)},
		{name: "interval not elapsed", mc: budget(4, time.Hour), starts: ago(59*time.Minute, 5*time.Hour), cause: BudgetMinInterval,
			reason: "budget: min_interval 1h0m0s not elapsed: the last run started at 2026-05-01T11:01:00Z (59m0s before); the next may start at 2026-05-01T12:01:00Z"},
		{name: "manual ignores interval", mc: budget(4, time.Hour), manual: true, starts: ago(time.Minute)},
		{name: "day full", mc: budget(2, time.Hour), starts: ago(2*time.Hour, 23*time.Hour), cause: BudgetMaxRunsPerDay,
			reason: "budget: max_runs_per_day 2 reached: 2 runs started in the 24 hours before 2026-05-01T12:00:00Z; the next may start at 2026-05-01T13:00:00Z"},
		{name: "day full manual too", mc: budget(2, time.Hour), manual: true, starts: ago(2*time.Hour, 3*time.Hour), cause: BudgetMaxRunsPerDay, reason: "budget: max_runs_per_day 2 reached"},
		{name: "runs older than a day do not count", mc: budget(2, time.Hour), starts: ago(2*time.Hour, 25*time.Hour, 26*time.Hour)},
		{name: "day limit checked first", mc: budget(1, time.Hour), starts: ago(time.Minute), cause: BudgetMaxRunsPerDay},
		{name: "unlimited", mc: budget(-1, -1), starts: ago(time.Second, time.Minute, 2*time.Minute, 3*time.Minute, 4*time.Minute, 5*time.Minute)},
		{name: "long interval", mc: budget(-1, 48*time.Hour), starts: ago(30 * time.Hour), cause: BudgetMinInterval},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cause, reason := overBudget(tc.mc, tc.manual, now, tc.starts)
			if cause != tc.cause || !strings.HasPrefix(reason, tc.reason) || (cause == "") != (reason == "") {
				t.Fatalf("overBudget = %q, %q; want %q, %q…", cause, reason, tc.cause, tc.reason)
			}
		})
	}
}

func TestBudgetConfigDefaults(t *testing.T) {
	mc := ModelConfig{Task: "binary_classification", PositiveClass: "1", TrainWindow: time.Hour, EvalWindow: time.Hour}.withDefaults()
	if mc.MaxRunsPerDay != DefaultMaxRunsPerDay || mc.MinInterval != DefaultMinInterval {
		t.Fatalf("defaults: %d runs a day, %s apart", mc.MaxRunsPerDay, mc.MinInterval)
	}
}

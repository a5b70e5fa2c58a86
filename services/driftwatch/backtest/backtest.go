// Package backtest is `driftwatch backtest`: it replays a model's stored
// history with one or more proposed drift policies through the monitor's
// own evaluation (package monitor/backtest), publishing nothing, and
// prints each policy's alerts, triggers, alert rate, precision, recall and
// detection delay against what the labels later showed.
package backtest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/monitor"
	bt "github.com/driftwatch/driftwatch/monitor/backtest"
	"github.com/driftwatch/driftwatch/services/driftwatch/command"
)

// Commands returns the backtest command.
func Commands() []command.Command {
	return []command.Command{{
		Name:    "backtest",
		Summary: "replay a model's history with proposed drift policies and score their alerts against the labels",
		Usage: `driftwatch backtest -model M -from T1 -to T2 [-policy a.yaml [-policy b.yaml …]] [-format table|json]
replays model M's stored inferences in [T1, T2) window by window (the
monitor's window and step; give it the monitor's -config, and -step to
replay coarser) with each policy, through the monitor's own evaluation:
the same aggregates from ClickHouse, methods, thresholds, min_samples,
Benjamini–Hochberg, consecutive, min_importance, segments and trigger gate.
Nothing is published and no row is written.

A policy file holds the keys of the monitor's policy: section (those left
out keep the monitor's), and optionally a segments: section (keys,
max_segments); it is named after its file. Without -policy the monitor's
own policy is replayed, as "current". Two or more policies print side by
side.

Each policy is scored against what the labels showed: an incident is a run
of performance windows (performance.window) whose primary metric is worse
than the reference's by more than performance.drop on at least
performance.min_labelled labels (the monitor's performance drop policy); an
alert (a run of windows with sustained drift, raised at the end of its
first) is true when an incident overlaps its performance window or the
-within windows after it. precision = true alerts / alerts, recall =
detected incidents / incidents, delay = first alert − incident start.

Progress goes to stderr on long replays; the replay's speed (windows/s) is
in the report. Example:
  driftwatch backtest -config monitor.yaml -model churn -from 2026-11-01T00:00:00Z \
    -to 2026-12-01T00:00:00Z -step 1h -policy default.yaml -policy strict.yaml`,
		Config: func() config.Validator {
			return &Config{Config: *monitor.DefaultConfig(), Format: "table", Within: 2}
		},
		Run: func(ctx context.Context, c config.Validator, env command.Env) error {
			return Run(ctx, c.(*Config), env)
		},
	}}
}

// Config is the backtest command's configuration: the monitor's (its
// YAML keys and DRIFTWATCH_* variables) and the replay's own.
type Config struct {
	monitor.Config `yaml:",inline"`
	Model          string   `yaml:"model" flag:"model" help:"model to replay (required)"`
	From           string   `yaml:"from" flag:"from" help:"start of the replay, RFC 3339 (required)"`
	To             string   `yaml:"to" flag:"to" help:"end of the replay (exclusive), RFC 3339 (required)"`
	PolicyFiles    []string `yaml:"policy_files" flag:"policy" help:"policy file to replay (repeat the flag, or comma-separate, for several; none: the monitor's policy)"`
	Format         string   `yaml:"format" flag:"format" help:"table or json"`
	Within         int      `yaml:"within" flag:"within" help:"performance windows after an alert's own in which an incident still counts as the one it warned of"`

	from, to time.Time
}

// Validate reports every invalid setting.
func (c *Config) Validate() error {
	var errs []error
	if c.Model == "" {
		errs = append(errs, errors.New("model: required (-model M)"))
	}
	parse := func(key, v string) time.Time {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s: required (-%s 2026-11-01T00:00:00Z)", key, key))
			return time.Time{}
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not an RFC 3339 time such as 2026-11-01T00:00:00Z", key, v))
		}
		return t.UTC()
	}
	c.from, c.to = parse("from", c.From), parse("to", c.To)
	if !c.from.IsZero() && !c.to.IsZero() && !c.from.Before(c.to) {
		errs = append(errs, fmt.Errorf("from, to: from (%s) must be before to (%s)", c.From, c.To))
	}
	if c.Format != "table" && c.Format != "json" {
		errs = append(errs, fmt.Errorf("format: %q is neither table nor json", c.Format))
	}
	if c.Within < 0 {
		errs = append(errs, fmt.Errorf("within: must not be negative, got %d", c.Within))
	}
	return errors.Join(append(errs, c.Config.Validate())...)
}

// Resolved returns the configuration in effect (config.Resolver): the
// monitor's as the monitor resolves it, and the backtest's own keys, so
// that -check-config prints every key.
func (c *Config) Resolved() any {
	r := *c
	if m, ok := c.Config.Resolved().(*monitor.Config); ok {
		r.Config = *m
	}
	return &r
}

// Run loads the policies, replays and writes the report to stdout.
func Run(ctx context.Context, cfg *Config, env command.Env) error {
	var pols []bt.Policy
	for _, f := range cfg.PolicyFiles {
		p, err := bt.LoadPolicy(f, cfg.Policy)
		if err != nil {
			return err
		}
		pols = append(pols, p)
	}
	if len(pols) == 0 {
		pols = []bt.Policy{{Name: "current", Config: cfg.Policy}}
	}
	conn, err := chclient.Open(ctx, chclient.FromConfig(cfg.ClickHouse), false)
	if err != nil {
		return err
	}
	defer conn.Close()
	rep, err := bt.Run(ctx, bt.Options{Settings: cfg.Settings, Conn: conn, Model: cfg.Model, From: cfg.from, To: cfg.to,
		Policies: pols, Within: cfg.Within, Progress: env.Stderr})
	if err != nil {
		return err
	}
	if cfg.Format == "json" {
		return bt.WriteJSON(env.Stdout, rep)
	}
	return bt.WriteTable(env.Stdout, rep)
}

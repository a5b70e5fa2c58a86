package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"text/tabwriter"
	"time"

	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/monitor"
	"github.com/driftwatch/driftwatch/monitor/window"
	"github.com/driftwatch/driftwatch/services/driftwatch/command"
)

type referenceSetConfig struct {
	// The monitor's configuration (its YAML keys and DRIFTWATCH_*
	// variables), so the aggregates are computed as the monitor computes
	// them: give this command the monitor's -config.
	monitor.Config `yaml:",inline"`
	Model          string `yaml:"model" flag:"model" help:"model whose reference to set (required)"`
	From           string `yaml:"from" flag:"from" help:"start of the reference period, RFC 3339 (required)"`
	To             string `yaml:"to" flag:"to" help:"end of the reference period (exclusive), RFC 3339 (required)"`

	span window.Span
}

func (c *referenceSetConfig) Validate() error {
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
	c.span = window.Span{Start: parse("from", c.From), End: parse("to", c.To)}
	if !c.span.Start.IsZero() && !c.span.End.IsZero() && !c.span.Start.Before(c.span.End) {
		errs = append(errs, fmt.Errorf("from, to: from (%s) must be before to (%s)", c.From, c.To))
	}
	return errors.Join(append(errs, c.Config.Validate())...)
}

type referenceShowConfig struct {
	config.ClickHouse `yaml:",inline"`
	config.Logging    `yaml:",inline"`
	Model             string `yaml:"model" flag:"model" help:"show only this model's reference"`
	JSON              bool   `yaml:"json" flag:"json" help:"print JSON instead of a table"`
}

func (c *referenceShowConfig) Validate() error {
	return errors.Join(c.ClickHouse.Validate(), c.Logging.Validate())
}

func referenceSetCommand() command.Command {
	return command.Command{
		Name:    "reference set",
		Summary: "pin a model's drift reference to a period (computed now and kept)",
		Usage: `driftwatch reference set -model M -from T1 -to T2 computes model M's reference
aggregates (bin edges and counts, value samples, category counts per feature)
over the inferences in [T1, T2) and writes them to reference_profiles. From
its next evaluation on, the monitor measures M's drift against them, whatever
the TTL later removes; the drift results say reference_kind "set".
It applies to models in reference_mode first (the default) without a fixed
reference in the monitor's models section.
Give it the monitor's configuration (-config, or the same DRIFTWATCH_MONITOR_*
variables) so the aggregates use the same bins and caps; if they differ, the
monitor computes the period again while its rows are kept.`,
		Config: func() config.Validator {
			return &referenceSetConfig{Config: *monitor.DefaultConfig()}
		},
		Run: func(ctx context.Context, c config.Validator, env command.Env) error {
			cfg := c.(*referenceSetConfig)
			conn, err := chclient.Open(ctx, chclient.FromConfig(cfg.ClickHouse), false)
			if err != nil {
				return err
			}
			defer conn.Close()
			fmt.Fprintf(env.Stderr, "reference: computing %s's aggregates over %s …\n", cfg.Model, cfg.span)
			p, err := monitor.SetReference(ctx, conn, cfg.Settings, cfg.Model, cfg.span, operator(), time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "set the reference of %s to %s: %d inferences, %d numeric and %d categorical features\n",
				p.Model, p.Span(), p.Rows, p.NumericFeatures, p.CategoricalFeatures)
			return nil
		},
	}
}

func referenceShowCommand() command.Command {
	return command.Command{
		Name:    "reference show",
		Summary: "show each model's persisted drift reference",
		Usage: `driftwatch reference show lists reference_profiles: per model, the reference
period its drift is measured against, where it came from (first: pinned by the
monitor when the model's first period was complete; set: driftwatch reference
set), its rows and features, and who wrote it when.`,
		Config: func() config.Validator {
			return &referenceShowConfig{ClickHouse: config.DefaultClickHouse(), Logging: config.DefaultLogging()}
		},
		Run: func(ctx context.Context, c config.Validator, env command.Env) error {
			cfg := c.(*referenceShowConfig)
			conn, err := chclient.Open(ctx, chclient.FromConfig(cfg.ClickHouse), false)
			if err != nil {
				return err
			}
			defer conn.Close()
			ps, err := monitor.NewStore(conn).ReferenceProfiles(ctx)
			if err != nil {
				return err
			}
			if cfg.Model != "" {
				var keep []monitor.ReferenceProfile
				for _, p := range ps {
					if p.Model == cfg.Model {
						keep = append(keep, p)
					}
				}
				if len(keep) == 0 {
					return fmt.Errorf("model %s has no persisted reference yet (the monitor pins it once its first reference period is complete)", cfg.Model)
				}
				ps = keep
			}
			if cfg.JSON {
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				if ps == nil {
					ps = []monitor.ReferenceProfile{}
				}
				return enc.Encode(ps)
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "MODEL\tFROM\tTO\tSOURCE\tROWS\tNUMERIC\tCATEGORICAL\tBY\tAT")
			for _, p := range ps {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", p.Model, p.Start.Format(time.RFC3339), p.End.Format(time.RFC3339), p.Source,
					p.Rows, p.NumericFeatures, p.CategoricalFeatures, p.CreatedBy, p.CreatedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
}

// operator is "user@host" of who runs the command, for created_by.
func operator() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

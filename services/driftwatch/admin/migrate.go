package admin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/migration"
	"github.com/driftwatch/driftwatch/services/driftwatch/command"
)

type migrateConfig struct {
	config.ClickHouse `yaml:",inline"`
	config.Logging    `yaml:",inline"`
	migration.Config  `yaml:",inline"`
	DryRun            bool `yaml:"dry_run" flag:"dry-run" help:"print the statements instead of running them"`
}

func (c *migrateConfig) Validate() error {
	return errors.Join(c.ClickHouse.Validate(), c.Logging.Validate(), c.Config.Validate())
}

func migrateCommand() command.Command {
	return command.Command{
		Name:    "migrate",
		Summary: "create or update driftwatch's ClickHouse database and tables (idempotent)",
		Usage: `driftwatch migrate creates the database named in the ClickHouse URL and every
driftwatch table and view in it, and sets their retention (TTLs). It is safe
to run at any time. Ingest does the same at every start; the monitor and the
trainer create what is missing but leave the TTLs, warning when they differ
from their own retention settings: ingest and this command own them.`,
		Config: func() config.Validator {
			return &migrateConfig{ClickHouse: config.DefaultClickHouse(), Logging: config.DefaultLogging(), Config: migration.DefaultConfig()}
		},
		Run: func(ctx context.Context, c config.Validator, env command.Env) error {
			cfg := c.(*migrateConfig)
			if cfg.DryRun {
				stmts, err := migration.Statements(cfg.Config)
				if err != nil {
					return err
				}
				for _, s := range stmts {
					fmt.Fprintf(env.Stdout, "-- %s\n%s;\n\n", s.File, s.SQL)
				}
				return nil
			}
			start := time.Now()
			conn, err := chclient.Open(ctx, chclient.FromConfig(cfg.ClickHouse), true)
			if err != nil {
				return err
			}
			defer conn.Close()
			stmts, err := migration.Statements(cfg.Config)
			if err != nil {
				return err
			}
			if err := migration.Apply(ctx, conn, cfg.Config); err != nil {
				return err
			}
			overrides := ""
			for _, t := range migration.RetentionTables() {
				if d, ok := cfg.Retention[t]; ok {
					overrides += fmt.Sprintf(", %s %d days", t, d)
				}
			}
			fmt.Fprintf(env.Stdout, "migrated %s: %d statements in %s (retention %d days, rollups %d days%s)\n",
				chclient.Redact(cfg.ClickHouseURL), len(stmts), time.Since(start).Round(time.Millisecond), cfg.RetentionDays, cfg.RollupRetentionDays, overrides)
			return nil
		},
	}
}

// Commands returns the administrative commands: migrate, retrain, models,
// reference set, reference show and forget.
func Commands() []command.Command {
	return []command.Command{migrateCommand(), retrainCommand(), modelsCommand(), referenceSetCommand(), referenceShowCommand(), forgetCommand(), rollbackCommand(), exportCommand(), labelQueueCommand()}
}

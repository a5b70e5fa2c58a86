package admin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/retrain"
	"github.com/driftwatch/driftwatch/schemas"
	"github.com/driftwatch/driftwatch/services/driftwatch/command"
)

type rollbackConfig struct {
	config.Kafka      `yaml:",inline"`
	config.ClickHouse `yaml:",inline"`
	config.Logging    `yaml:",inline"`
	Model             string `yaml:"model" flag:"model" help:"model to roll back (required)"`
}

func (c *rollbackConfig) Validate() error {
	var errs []error
	if c.Model == "" {
		errs = append(errs, errors.New("model: required (-model M)"))
	}
	return errors.Join(append(errs, c.Kafka.Validate(), c.ClickHouse.Validate(), c.Logging.Validate())...)
}

func rollbackCommand() command.Command {
	return command.Command{
		Name:    "rollback",
		Summary: "re-promote a model's previous champion (the registry, then a promoted model event serve follows)",
		Usage: `driftwatch rollback -model M makes the champion before M's current one the
champion again: the current champion's parent_version when it is in the
registry, else the newest retired version. The models table gets the
previous version as champion (reason "rollback from V") and the current one
as retired ("rolled back to P"), then a promoted event goes to
<prefix>model-events, on which serve loads the previous version's artifact.`,
		Config: func() config.Validator {
			return &rollbackConfig{Kafka: config.DefaultKafka(), ClickHouse: config.DefaultClickHouse(), Logging: config.DefaultLogging()}
		},
		Run: func(ctx context.Context, c config.Validator, env command.Env) error {
			cfg := c.(*rollbackConfig)
			conn, err := chclient.Open(ctx, chclient.FromConfig(cfg.ClickHouse), false)
			if err != nil {
				return err
			}
			defer conn.Close()
			kopts, err := kafkaio.FromConfig(cfg.Kafka, "driftwatch-rollback", nil)
			if err != nil {
				return err
			}
			ev, err := kafkaio.NewWriter(kopts, schemas.TopicModelEvents)
			if err != nil {
				return err
			}
			defer ev.Close()
			from, to, err := retrain.Rollback(ctx, conn, ev, cfg.Model, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "%s: champion %s → %s (promoted event published to %s)\n", cfg.Model, from, to, kopts.Topic(schemas.TopicModelEvents))
			return nil
		},
	}
}

type exportConfig struct {
	config.ClickHouse `yaml:",inline"`
	config.Logging    `yaml:",inline"`
	Model             string `yaml:"model" flag:"model" help:"model to export (required)"`
	Version           string `yaml:"version" flag:"version" help:"version to export; empty exports the champion"`
	Output            string `yaml:"output" flag:"o" help:"file to write (required; - for standard output)"`
}

func (c *exportConfig) Validate() error {
	var errs []error
	if c.Model == "" {
		errs = append(errs, errors.New("model: required (-model M)"))
	}
	if c.Output == "" {
		errs = append(errs, errors.New("output: required (-o FILE, or -o - for standard output)"))
	}
	return errors.Join(append(errs, c.ClickHouse.Validate(), c.Logging.Validate())...)
}

func exportCommand() command.Command {
	return command.Command{
		Name:    "models export",
		Summary: "write a built-in model version's artifact (driftwatch.linear-model.v1, docs/serve.md) to a file",
		Usage: `driftwatch models export -model M [-version V] -o FILE writes the artifact of
version V of model M (the champion when -version is empty) as stored by the
trainer, after checking it against its sha256 checksum: a JSON document of
format driftwatch.linear-model.v1 with the preprocessing and the
coefficients, described in docs/serve.md so that another language can load
it. Only built-in models have one.`,
		Config: func() config.Validator {
			return &exportConfig{ClickHouse: config.DefaultClickHouse(), Logging: config.DefaultLogging()}
		},
		Run: func(ctx context.Context, c config.Validator, env command.Env) error {
			cfg := c.(*exportConfig)
			conn, err := chclient.Open(ctx, chclient.FromConfig(cfg.ClickHouse), false)
			if err != nil {
				return err
			}
			defer conn.Close()
			vs, err := retrain.ListVersions(ctx, conn, cfg.Model)
			if err != nil {
				return err
			}
			var v *retrain.Version
			for _, x := range vs {
				if v == nil && (x.Version == cfg.Version || cfg.Version == "" && x.Status == retrain.StatusChampion) {
					v = x
				}
			}
			if v == nil {
				what := "a champion"
				if cfg.Version != "" {
					what = "version " + cfg.Version
				}
				return fmt.Errorf("export %s: the registry has no %s of it", cfg.Model, what)
			}
			if v.Trainer != retrain.TrainerBuiltin {
				return fmt.Errorf("export %s %s: trained by %s, not a built-in model: its artifact is the external trainer's own (%s)", v.ModelID, v.Version, v.Trainer, v.ArtifactURI)
			}
			_, raw, err := retrain.ReadArtifact(v.ArtifactURI)
			if err != nil {
				return fmt.Errorf("export %s %s: %w", v.ModelID, v.Version, err)
			}
			if cfg.Output == "-" {
				_, err := env.Stdout.Write(raw)
				return err
			}
			tmp := cfg.Output + ".tmp"
			if err := os.WriteFile(tmp, raw, 0o644); err != nil {
				return fmt.Errorf("write %s: %w", cfg.Output, err)
			}
			if err := os.Rename(tmp, cfg.Output); err != nil {
				return fmt.Errorf("write %s: %w", cfg.Output, err)
			}
			fmt.Fprintf(env.Stderr, "wrote %s %s (%d bytes, %s) to %s\n", v.ModelID, v.Version, len(raw), "driftwatch.linear-model.v1", filepath.Clean(cfg.Output))
			return nil
		},
	}
}

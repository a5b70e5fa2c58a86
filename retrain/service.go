package retrain

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/migration"
	"github.com/driftwatch/driftwatch/internal/service"
	"github.com/driftwatch/driftwatch/schemas"
)

// DefaultConsumerGroup is the trainer's default Kafka consumer group.
const DefaultConsumerGroup = "trainer"

// Config is the trainer service's configuration.
type Config struct {
	config.Common    `yaml:",inline"`
	migration.Config `yaml:",inline"`

	ConsumerGroup string        `yaml:"consumer_group" env:"DRIFTWATCH_TRAINER_CONSUMER_GROUP" flag:"consumer-group" help:"Kafka consumer group of retrain-triggers is <topic prefix><name>; trainers in one group share the models"`
	ArtifactDir   string        `yaml:"artifact_dir" env:"DRIFTWATCH_TRAINER_ARTIFACT_DIR" flag:"artifact-dir" help:"directory of model artifacts (<dir>/<model>/<version>/)"`
	WorkDir       string        `yaml:"work_dir" env:"DRIFTWATCH_TRAINER_WORK_DIR" flag:"work-dir" help:"directory of each run's dataset and external trainer output"`
	Workers       int           `yaml:"workers" env:"DRIFTWATCH_TRAINER_WORKERS" flag:"workers" help:"runs (of different models) at once"`
	KeepWork      bool          `yaml:"keep_work" env:"DRIFTWATCH_TRAINER_KEEP_WORK" flag:"keep-work" help:"keep each run's dataset files after it ends"`
	Lease         time.Duration `yaml:"lease" env:"DRIFTWATCH_TRAINER_LEASE" flag:"lease" help:"how long a running run may miss its trainer's heartbeats (every third of it) before another trainer takes it over"`

	Defaults ModelConfig            `yaml:"defaults"`
	Models   map[string]ModelConfig `yaml:"models"`
}

// DefaultConfig returns the trainer defaults (HTTP on 127.0.0.1:9103).
func DefaultConfig() *Config {
	dir := filepath.Join(os.TempDir(), "driftwatch-trainer")
	return &Config{Common: config.DefaultCommon("127.0.0.1:9103"), Config: migration.DefaultConfig(),
		ConsumerGroup: DefaultConsumerGroup, ArtifactDir: filepath.Join(dir, "artifacts"), WorkDir: filepath.Join(dir, "work"), Workers: 1, Lease: DefaultLease,
		Defaults: DefaultModelConfig()}
}

// Validate reports every invalid setting.
func (c *Config) Validate() error {
	errs := []error{c.Common.Validate(), c.Config.Validate(), c.Defaults.Validate("defaults")}
	if c.ArtifactDir == "" || c.WorkDir == "" {
		errs = append(errs, errors.New("artifact_dir and work_dir: required"))
	}
	if c.ConsumerGroup == "" {
		errs = append(errs, errors.New("consumer_group: must not be empty"))
	}
	if c.Workers < 1 {
		errs = append(errs, fmt.Errorf("workers: must be at least 1, got %d", c.Workers))
	}
	if c.Lease < 3*time.Second {
		errs = append(errs, fmt.Errorf("lease: must be at least 3s (heartbeats go every third of it), got %s", c.Lease))
	}
	for id, mc := range c.Models {
		errs = append(errs, mc.Validate("models."+id))
	}
	return errors.Join(errs...)
}

// RunService runs the trainer until ctx ends.
func RunService(ctx context.Context, cfg *Config) error {
	log := cfg.Logger("trainer")
	srv, stopHTTP, err := service.Start(ctx, service.Options{Name: "trainer", Addr: cfg.HTTPAddr, Logger: log, ShutdownTimeout: cfg.ShutdownTimeout})
	if err != nil {
		return err
	}
	defer stopHTTP()

	conn, err := service.OpenClickHouse(ctx, log, cfg.ClickHouse, cfg.Config)
	if err != nil {
		return err
	}
	defer conn.Close()
	kopts := kafkaio.Options{Brokers: cfg.KafkaBrokers, TopicPrefix: cfg.TopicPrefix, ClientID: "driftwatch-trainer", Logger: log}
	if err := service.WaitFor(ctx, log, "create Kafka topics", func(ctx context.Context) error {
		return kafkaio.EnsureTopics(ctx, cfg.KafkaBrokers, kafkaio.Specs(kopts,
			schemas.TopicFor(schemas.TopicRetrainTriggers), schemas.TopicFor(schemas.TopicModelEvents), schemas.TopicFor(schemas.TopicDeadLetters)))
	}); err != nil {
		return err
	}
	rd, err := kafkaio.NewReader(kopts, schemas.TopicRetrainTriggers, kopts.Prefix()+cfg.ConsumerGroup)
	if err != nil {
		return err
	}
	defer rd.Close()
	ev, err := kafkaio.NewWriter(kopts, schemas.TopicModelEvents)
	if err != nil {
		return err
	}
	defer ev.Close()
	dl, err := kafkaio.NewWriter(kopts, schemas.TopicDeadLetters)
	if err != nil {
		return err
	}
	defer dl.Close()
	tr, err := New(Options{Conn: conn, Triggers: rd, Events: ev, DeadLetters: dl, ArtifactDir: cfg.ArtifactDir, WorkDir: cfg.WorkDir,
		Defaults: cfg.Defaults, Models: cfg.Models, Workers: cfg.Workers, Lease: cfg.Lease, KeepWork: cfg.KeepWork, Registerer: srv.Registry(), Logger: log})
	if err != nil {
		return err
	}
	srv.AddCheck("clickhouse", func(ctx context.Context) error { return conn.Ping(ctx) })
	srv.AddCheck("kafka", func(ctx context.Context) error { return kafkaio.Ping(ctx, cfg.KafkaBrokers) })
	srv.SetReady(true)
	log.Info("training on triggers", "topic", kopts.Topic(schemas.TopicRetrainTriggers), "artifacts", cfg.ArtifactDir)
	err = tr.Run(ctx)
	srv.SetReady(false)
	return err
}

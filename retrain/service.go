package retrain

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/migration"
	"github.com/driftwatch/driftwatch/internal/service"
	"github.com/driftwatch/driftwatch/internal/signing"
	"github.com/driftwatch/driftwatch/schemas"
)

// Config is the trainer service's configuration: the common keys, the
// migration's and the trainer's Settings.
type Config struct {
	config.Common    `yaml:",inline"`
	migration.Config `yaml:",inline"`
	Settings         `yaml:",inline"`
	// TriggerSigning: with a key file, only triggers signed with its key
	// are trained.
	config.TriggerSigning `yaml:",inline"`
}

// Settings are the trainer's own settings: the service's configuration
// keys (Config embeds them) and New's (Options embeds them), one type
// with its defaults in DefaultSettings; New reads a zero Workers, Lease,
// QueueSize or QueueBytes as its default.
type Settings struct {
	ConsumerGroup string        `yaml:"consumer_group" env:"DRIFTWATCH_TRAINER_CONSUMER_GROUP" flag:"consumer-group" help:"Kafka consumer group of retrain-triggers is <topic prefix><name>; trainers in one group share the models"`
	DataDir       string        `yaml:"data_dir" env:"DRIFTWATCH_TRAINER_DATA_DIR" flag:"data-dir" help:"the trainer's directory, created 0700: model artifacts in <dir>/artifacts/<model>/<version>/, each run's dataset and external trainer output in <dir>/work/<model>/<run>/"`
	Workers       int           `yaml:"workers" env:"DRIFTWATCH_TRAINER_WORKERS" flag:"workers" help:"runs (of different models) at once"`
	KeepWork      bool          `yaml:"keep_work" env:"DRIFTWATCH_TRAINER_KEEP_WORK" flag:"keep-work" help:"keep each run's dataset files after it ends"`
	Lease         time.Duration `yaml:"lease" env:"DRIFTWATCH_TRAINER_LEASE" flag:"lease" help:"how long a running run may miss its trainer's heartbeats (every third of it) before another trainer takes it over"`
	QueueSize     int           `yaml:"queue_size" env:"DRIFTWATCH_TRAINER_QUEUE_SIZE" flag:"queue-size" help:"most triggers waiting in memory; more wait in Kafka"`
	QueueBytes    int           `yaml:"queue_bytes" env:"DRIFTWATCH_TRAINER_QUEUE_BYTES" flag:"queue-bytes" help:"most bytes of triggers waiting in memory (twice their messages' size); more wait in Kafka"`

	// Defaults apply to models not in Models. A model in Models takes
	// nothing from Defaults: a key its entry leaves out is the built-in
	// default, and task, train_window and eval_window are required
	// (-check-config prints each entry as it will be used).
	Defaults ModelConfig            `yaml:"defaults"`
	Models   map[string]ModelConfig `yaml:"models"`
}

// Trainer defaults.
const (
	DefaultDataDir    = "data/trainer"
	DefaultQueueSize  = 1000
	DefaultQueueBytes = 64 << 20
)

// DefaultSettings: group "trainer", data under data/trainer (relative to
// the working directory, as Prometheus keeps data/), one worker, a
// one-minute lease, at most 1,000 triggers and 64 MiB queued,
// DefaultModelConfig.
func DefaultSettings() Settings {
	return Settings{ConsumerGroup: "trainer", DataDir: DefaultDataDir, Workers: 1, Lease: DefaultLease,
		QueueSize: DefaultQueueSize, QueueBytes: DefaultQueueBytes, Defaults: DefaultModelConfig()}
}

// DefaultConfig returns the trainer defaults (HTTP on 127.0.0.1:9103).
func DefaultConfig() *Config {
	return &Config{Common: config.DefaultCommon("127.0.0.1:9103"), Config: migration.DefaultConfig(), Settings: DefaultSettings()}
}

// Resolved returns the configuration in effect (config.Resolver): the
// defaults and every model's settings as runs use them (an empty metric
// is the task's, nil guardrails the task's default guardrail, zero
// resamples 1000, …), clickhouse_user as the clients will use it. A
// model under models takes nothing from defaults: zero values are the
// built-in defaults.
func (c *Config) Resolved() any {
	r := *c
	r.Common = c.ResolvedCommon()
	r.Defaults = c.Defaults.withDefaults()
	if c.Models != nil {
		r.Models = make(map[string]ModelConfig, len(c.Models))
		for id, mc := range c.Models {
			r.Models[id] = mc.withDefaults()
		}
	}
	return &r
}

// Validate reports every invalid setting.
func (c *Config) Validate() error {
	return errors.Join(c.Common.Validate(), c.Config.Validate(), c.Settings.Validate(), c.TriggerSigning.Validate())
}

// Validate reports every invalid setting by its configuration key.
func (c *Settings) Validate() error {
	errs := []error{c.Defaults.Validate("defaults")}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir: required"))
	}
	if c.QueueSize < 1 {
		errs = append(errs, fmt.Errorf("queue_size: must be at least 1, got %d", c.QueueSize))
	}
	if c.QueueBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("queue_bytes: must be at least 1 MiB (one trigger), got %d", c.QueueBytes))
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
	secrets := config.SecretValues(cfg)
	return service.Run(ctx, service.Spec{
		Name: "trainer", Common: cfg.Common, Migration: cfg.Config, Secrets: secrets,
		Topics: []schemas.Topic{schemas.TopicFor(schemas.TopicRetrainTriggers), schemas.TopicFor(schemas.TopicModelEvents), schemas.TopicFor(schemas.TopicDeadLetters)},
		Setup: func(ctx context.Context, rt *service.Runtime) (func(context.Context) error, error) {
			key, err := cfg.TriggerSigning.Key()
			if err != nil {
				return nil, fmt.Errorf("trigger_signing_key_file: %w", err)
			}
			if key == nil {
				rt.Log.Warn("trigger_signing_key_file is not set: any retrain trigger on the topic is trained, whoever wrote it")
			}
			rd, err := kafkaio.NewReader(rt.Kafka, schemas.TopicRetrainTriggers, rt.Kafka.Prefix()+cfg.ConsumerGroup)
			if err != nil {
				return nil, err
			}
			rt.OnClose(rd.Close)
			ev, err := kafkaio.NewWriter(rt.Kafka, schemas.TopicModelEvents)
			if err != nil {
				return nil, err
			}
			rt.OnClose(ev.Close)
			dl, err := kafkaio.NewWriter(rt.Kafka, schemas.TopicDeadLetters)
			if err != nil {
				return nil, err
			}
			rt.OnClose(dl.Close)
			tr, err := New(Options{Settings: cfg.Settings, Conn: rt.Conn, Triggers: rd, Events: ev, DeadLetters: dl, TriggerKey: signing.New(key), Registerer: rt.Server.Registry(), Logger: rt.Log, Secrets: secrets})
			if err != nil {
				return nil, err
			}
			rt.Log.Info("training on triggers", "topic", rt.Kafka.Topic(schemas.TopicRetrainTriggers), "data_dir", cfg.DataDir)
			return tr.Run, nil
		},
	})
}

package monitor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/migration"
	"github.com/driftwatch/driftwatch/internal/service"
	"github.com/driftwatch/driftwatch/monitor/policy"
	"github.com/driftwatch/driftwatch/monitor/window"
	"github.com/driftwatch/driftwatch/schemas"
)

// Config is the monitor service's configuration.
type Config struct {
	config.Common    `yaml:",inline"`
	migration.Config `yaml:",inline"`

	Window         time.Duration `yaml:"window" env:"DRIFTWATCH_MONITOR_WINDOW" flag:"window" help:"length of the current window (event time)"`
	Step           time.Duration `yaml:"step" env:"DRIFTWATCH_MONITOR_STEP" flag:"step" help:"how often windows are evaluated and how far they slide (step = window: tumbling)"`
	ReferenceMode  string        `yaml:"reference_mode" env:"DRIFTWATCH_MONITOR_REFERENCE_MODE" flag:"reference-mode" help:"first (the first -reference of a model's data) or previous (the window before the current one)"`
	Reference      time.Duration `yaml:"reference" env:"DRIFTWATCH_MONITOR_REFERENCE" flag:"reference" help:"length of the reference in reference_mode first"`
	Lookback       time.Duration `yaml:"lookback" env:"DRIFTWATCH_MONITOR_LOOKBACK" flag:"lookback" help:"models with inferences in this period are evaluated"`
	Bins           int           `yaml:"bins" env:"DRIFTWATCH_MONITOR_BINS" flag:"bins" help:"reference-quantile bins for PSI, Jensen-Shannon and Hellinger"`
	SampleCap      int           `yaml:"sample_cap" env:"DRIFTWATCH_MONITOR_SAMPLE_CAP" flag:"sample-cap" help:"most rows per feature and window the rank tests (KS, Anderson-Darling, CvM, Wasserstein) see"`
	MaxFeatures    int           `yaml:"max_features" env:"DRIFTWATCH_MONITOR_MAX_FEATURES" flag:"max-features" help:"most numeric and categorical features examined per model (most frequent first)"`
	ExportFeatures int           `yaml:"export_features" env:"DRIFTWATCH_MONITOR_EXPORT_FEATURES" flag:"export-features" help:"most features per model exported to Prometheus (most drifted first)"`
	MaxSeries      int           `yaml:"max_series" env:"DRIFTWATCH_MONITOR_MAX_SERIES" flag:"max-series" help:"most drift series this instance exports"`
	ReferenceCache int           `yaml:"reference_cache_mb" env:"DRIFTWATCH_MONITOR_REFERENCE_CACHE_MB" flag:"reference-cache-mb" help:"MiB of reference-window aggregates kept between evaluations (least recently used models dropped first; 0: none)"`

	Policy      policy.Config          `yaml:"policy"`
	Triggers    TriggerConfig          `yaml:"triggers"`
	Performance PerformanceConfig      `yaml:"performance"`
	Models      map[string]ModelConfig `yaml:"models"`
}

// DefaultConfig returns the monitor defaults (HTTP on 127.0.0.1:9102).
func DefaultConfig() *Config {
	return &Config{
		Common: config.DefaultCommon("127.0.0.1:9102"), Config: migration.DefaultConfig(),
		Window: time.Hour, Step: time.Minute, ReferenceMode: ReferenceFirst, Reference: 24 * time.Hour, Lookback: 7 * 24 * time.Hour,
		Bins: window.DefaultBins, SampleCap: window.DefaultSampleCap, MaxFeatures: window.DefaultMaxFeatures,
		ExportFeatures: DefaultExportFeatures, MaxSeries: DefaultMaxSeries, ReferenceCache: DefaultReferenceCacheMB,
		Policy: policy.Default(), Triggers: DefaultTriggerConfig(), Performance: DefaultPerformanceConfig(),
	}
}

// Validate reports every invalid setting.
func (c *Config) Validate() error {
	errs := []error{c.Common.Validate(), c.Config.Validate(), c.Policy.Validate("policy"), c.Triggers.Validate("triggers"), c.Performance.Validate("performance")}
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf(f, a...)) }
	if c.Window < time.Second || c.Step < time.Second {
		bad("window and step: must be at least 1s, got %s and %s", c.Window, c.Step)
	}
	if c.ReferenceMode != ReferenceFirst && c.ReferenceMode != ReferencePrevious {
		bad("reference_mode: %q is neither first nor previous (fixed references are set per model under models)", c.ReferenceMode)
	}
	if c.Reference < time.Second || c.Lookback < time.Second {
		bad("reference and lookback: must be at least 1s")
	}
	if c.Bins < 2 || c.Bins > 1000 {
		bad("bins: must be from 2 to 1000, got %d", c.Bins)
	}
	if c.SampleCap < 100 {
		bad("sample_cap: must be at least 100, got %d", c.SampleCap)
	}
	if c.ReferenceCache < 0 {
		bad("reference_cache_mb: must not be negative, got %d", c.ReferenceCache)
	}
	if c.MaxFeatures < 1 || c.ExportFeatures < 1 || c.MaxSeries < 1 {
		bad("max_features, export_features and max_series: must be at least 1")
	}
	for id, mc := range c.Models {
		if mc.ReferenceStart.IsZero() != mc.ReferenceEnd.IsZero() || (!mc.ReferenceStart.IsZero() && !mc.ReferenceEnd.After(mc.ReferenceStart)) {
			bad("models.%s: reference_start and reference_end must both be set, start before end", id)
		}
		if mc.Policy != nil {
			errs = append(errs, mc.Policy.Validate("models."+id+".policy"))
		}
	}
	return errors.Join(errs...)
}

// RunService runs the monitor until ctx ends.
func RunService(ctx context.Context, cfg *Config) error {
	return service.Run(ctx, service.Spec{
		Name: "monitor", Common: cfg.Common, Migration: cfg.Config,
		Topics: []schemas.Topic{schemas.TopicFor(schemas.TopicRetrainTriggers)},
		Setup: func(ctx context.Context, rt *service.Runtime) (func(context.Context) error, error) {
			tw, err := kafkaio.NewWriter(rt.Kafka, schemas.TopicRetrainTriggers)
			if err != nil {
				return nil, err
			}
			rt.OnClose(tw.Close)
			m, err := New(Options{
				Conn: rt.Conn, Triggers: tw, Window: cfg.Window, Step: cfg.Step, ReferenceMode: cfg.ReferenceMode, Reference: cfg.Reference,
				Lookback: cfg.Lookback, Policy: cfg.Policy, Models: cfg.Models, Trigger: cfg.Triggers, Performance: cfg.Performance,
				Aggregation:         window.Options{Bins: cfg.Bins, SampleCap: cfg.SampleCap, MaxFeatures: cfg.MaxFeatures},
				MaxFeaturesPerModel: cfg.ExportFeatures, MaxSeries: cfg.MaxSeries, Registerer: rt.Server.Registry(), Logger: rt.Log,
				ReferenceCacheBytes: referenceCacheBytes(cfg.ReferenceCache),
			})
			if err != nil {
				return nil, err
			}
			rt.Server.Handle("/api/", m.API())
			rt.Log.Info("monitoring", "window", cfg.Window, "step", cfg.Step, "reference", cfg.ReferenceMode+"/"+cfg.Reference.String())
			return m.Run, nil
		},
	})
}

// referenceCacheBytes turns reference_cache_mb into monitor.Options'
// ReferenceCacheBytes, where 0 would mean the default: 0 MiB keeps none.
func referenceCacheBytes(mib int) int64 {
	if mib <= 0 {
		return -1
	}
	return int64(mib) << 20
}

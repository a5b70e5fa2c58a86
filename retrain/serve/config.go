package serve

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/migration"
)

// LogPolicy is what a prediction does when the inference log's buffer is
// full.
type LogPolicy string

// The log policies.
const (
	// PolicyBlock waits for room up to log_wait, then drops the event.
	PolicyBlock LogPolicy = "block"
	// PolicyDrop drops the event at once.
	PolicyDrop LogPolicy = "drop"
)

// Config is the serve service's configuration: the common keys, the
// migration's and serve's Settings.
type Config struct {
	config.Common    `yaml:",inline"`
	migration.Config `yaml:",inline"`
	Settings         `yaml:",inline"`
}

// Settings are serve's own settings.
type Settings struct {
	// Models limits serving to these models; empty serves the champion of
	// every model the built-in trainers registered.
	Models []string `yaml:"models" env:"DRIFTWATCH_SERVE_MODELS" flag:"models" help:"comma-separated models to serve; empty serves every built-in champion in the registry"`
	// ShadowModels are the models whose newest challenger is scored
	// alongside the champion (shadow scoring, off by default).
	ShadowModels []string `yaml:"shadow_models" env:"DRIFTWATCH_SERVE_SHADOW_MODELS" flag:"shadow-models" help:"comma-separated models whose newest challenger (a built-in version registered after the champion and not promoted) is scored alongside the champion after each answer and logged with \"shadow\": true; empty: none"`
	// LogBuffer is the most events (inferences and outcomes) accepted and
	// not yet written to Kafka.
	LogBuffer int `yaml:"log_buffer" env:"DRIFTWATCH_SERVE_LOG_BUFFER" flag:"log-buffer" help:"most inference and outcome events waiting for Kafka; when full, log_policy applies"`
	// LogPolicy is block (wait up to log_wait for room) or drop.
	LogPolicy LogPolicy `yaml:"log_policy" env:"DRIFTWATCH_SERVE_LOG_POLICY" flag:"log-policy" help:"when the log buffer is full: block (wait up to log_wait, then drop) or drop at once; drops are counted in driftwatch_serve_log_events_total{outcome=\"dropped\"}"`
	// LogWait bounds how long a request waits for room in the log buffer.
	LogWait time.Duration `yaml:"log_wait" env:"DRIFTWATCH_SERVE_LOG_WAIT" flag:"log-wait" help:"the longest a prediction waits for room in a full log buffer under log_policy block; it never waits on Kafka itself"`
	// MaxRows is the most rows of one predict request.
	MaxRows int `yaml:"max_rows" env:"DRIFTWATCH_SERVE_MAX_ROWS" flag:"max-rows" help:"most rows in one predict request"`
	// MaxBodyBytes is the largest request body.
	MaxBodyBytes int64 `yaml:"max_body_bytes" env:"DRIFTWATCH_SERVE_MAX_BODY_BYTES" flag:"max-body-bytes" help:"largest request body in bytes"`
	// ReloadInterval is how often the registry is read again, besides on
	// every promoted model event (a missed event is caught up then).
	ReloadInterval time.Duration `yaml:"reload_interval" env:"DRIFTWATCH_SERVE_RELOAD_INTERVAL" flag:"reload-interval" help:"how often the registry's champions are read again besides on promoted model events"`
	// NegativeLabels is the label answered, per model, for a score below
	// 0.5; unset, it is 0 for a positive class 1, false for true, no for
	// yes, otherwise not_<positive class>.
	NegativeLabels map[string]string `yaml:"negative_labels"`
}

// Serve defaults.
const (
	DefaultLogBuffer      = 100000
	DefaultLogWait        = 2 * time.Millisecond
	DefaultMaxRows        = 1000
	DefaultMaxBodyBytes   = 4 << 20
	DefaultReloadInterval = time.Minute
)

// DefaultSettings: a 100,000-event buffer, policy block with a 2 ms
// wait, 1,000 rows and 4 MiB per request, the registry read every minute.
func DefaultSettings() Settings {
	return Settings{LogBuffer: DefaultLogBuffer, LogPolicy: PolicyBlock, LogWait: DefaultLogWait, MaxRows: DefaultMaxRows,
		MaxBodyBytes: DefaultMaxBodyBytes, ReloadInterval: DefaultReloadInterval}
}

// DefaultConfig returns serve's defaults (HTTP on 127.0.0.1:9104).
func DefaultConfig() *Config {
	return &Config{Common: config.DefaultCommon("127.0.0.1:9104"), Config: migration.DefaultConfig(), Settings: DefaultSettings()}
}

// Resolved returns the configuration in effect (config.Resolver).
func (c *Config) Resolved() any {
	r := *c
	r.Common = c.ResolvedCommon()
	return &r
}

// Validate reports every invalid setting.
func (c *Config) Validate() error {
	return errors.Join(c.Common.Validate(), c.Config.Validate(), c.Settings.Validate())
}

// Validate reports every invalid setting by its configuration key.
func (s *Settings) Validate() error {
	var errs []error
	if s.LogBuffer < 1 {
		errs = append(errs, fmt.Errorf("log_buffer: must be at least 1, got %d", s.LogBuffer))
	}
	if s.LogPolicy != PolicyBlock && s.LogPolicy != PolicyDrop {
		errs = append(errs, fmt.Errorf("log_policy: %q is neither block nor drop", s.LogPolicy))
	}
	if s.LogWait < 0 {
		errs = append(errs, fmt.Errorf("log_wait: must not be negative, got %s", s.LogWait))
	}
	if s.MaxRows < 1 {
		errs = append(errs, fmt.Errorf("max_rows: must be at least 1, got %d", s.MaxRows))
	}
	if s.MaxBodyBytes < 1024 {
		errs = append(errs, fmt.Errorf("max_body_bytes: must be at least 1024, got %d", s.MaxBodyBytes))
	}
	for _, m := range s.ShadowModels {
		if len(s.Models) > 0 && !slices.Contains(s.Models, m) {
			errs = append(errs, fmt.Errorf("shadow_models: %q is not among the models served (models %v)", m, s.Models))
		}
	}
	if s.ReloadInterval < time.Second {
		errs = append(errs, fmt.Errorf("reload_interval: must be at least 1s, got %s", s.ReloadInterval))
	}
	return errors.Join(errs...)
}

func (s *Settings) negativeLabel(modelID, positive string) string {
	if l, ok := s.NegativeLabels[modelID]; ok {
		return l
	}
	switch positive {
	case "1":
		return "0"
	case "true":
		return "false"
	case "yes":
		return "no"
	}
	return "not_" + positive
}

package migration

// Config is the retention part of a service's configuration, with the
// YAML keys, environment variables and flags every service shares; embed it
// with `yaml:",inline"` next to config.Common.
type Config struct {
	RetentionDays       int `yaml:"retention_days" env:"DRIFTWATCH_RETENTION_DAYS" flag:"retention-days" help:"days raw events are kept in ClickHouse (TTL by event time)"`
	RollupRetentionDays int `yaml:"rollup_retention_days" env:"DRIFTWATCH_ROLLUP_RETENTION_DAYS" flag:"rollup-retention-days" help:"days the per-minute rollups are kept"`
}

// DefaultConfig returns the default retention.
func DefaultConfig() Config {
	return Config(Defaults())
}

// Options converts the configuration into Apply's options.
func (c Config) Options() Options {
	return Options(c)
}

package monitor

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/driftwatch/driftwatch/monitor/labeling"
	"github.com/driftwatch/driftwatch/monitor/policy"
	"github.com/driftwatch/driftwatch/monitor/window"
)

// Settings are the monitor's settings: the service's configuration keys
// (Config embeds them) and what New takes (Options embeds them), one type
// with its defaults in DefaultSettings and nowhere else.
type Settings struct {
	Window           time.Duration `yaml:"window" env:"DRIFTWATCH_MONITOR_WINDOW" flag:"window" help:"length of the current window (event time)"`
	Step             time.Duration `yaml:"step" env:"DRIFTWATCH_MONITOR_STEP" flag:"step" help:"how often windows are evaluated and how far they slide (step = window: tumbling)"`
	ReferenceMode    string        `yaml:"reference_mode" env:"DRIFTWATCH_MONITOR_REFERENCE_MODE" flag:"reference-mode" help:"first (the first -reference of a model's data) or previous (the window before the current one)"`
	Reference        time.Duration `yaml:"reference" env:"DRIFTWATCH_MONITOR_REFERENCE" flag:"reference" help:"length of the reference in reference_mode first"`
	Lookback         time.Duration `yaml:"lookback" env:"DRIFTWATCH_MONITOR_LOOKBACK" flag:"lookback" help:"models with inferences in this period are evaluated"`
	Bins             int           `yaml:"bins" env:"DRIFTWATCH_MONITOR_BINS" flag:"bins" help:"reference-quantile bins for PSI, Jensen-Shannon and Hellinger"`
	SampleCap        int           `yaml:"sample_cap" env:"DRIFTWATCH_MONITOR_SAMPLE_CAP" flag:"sample-cap" help:"most rows per feature and window the rank tests (KS, Anderson-Darling, CvM, Wasserstein) see"`
	MaxFeatures      int           `yaml:"max_features" env:"DRIFTWATCH_MONITOR_MAX_FEATURES" flag:"max-features" help:"most numeric and categorical features examined per model (most frequent first)"`
	ExportFeatures   int           `yaml:"export_features" env:"DRIFTWATCH_MONITOR_EXPORT_FEATURES" flag:"export-features" help:"most features per model exported to Prometheus (most drifted first)"`
	MaxSeries        int           `yaml:"max_series" env:"DRIFTWATCH_MONITOR_MAX_SERIES" flag:"max-series" help:"most drift series this instance exports"`
	ReferenceCacheMB int           `yaml:"reference_cache_mb" env:"DRIFTWATCH_MONITOR_REFERENCE_CACHE_MB" flag:"reference-cache-mb" help:"MiB of reference-window aggregates kept between evaluations (over it, models no longer evaluated are dropped first, then the newest: part of a larger fleet stays cached; 0: none)"`
	APIMaxRows       int           `yaml:"api_max_rows" env:"DRIFTWATCH_MONITOR_API_MAX_ROWS" flag:"api-max-rows" help:"most rows an API answer holds; an answer cut there says \"truncated\": true"`
	APIQueryTimeout  time.Duration `yaml:"api_query_timeout" env:"DRIFTWATCH_MONITOR_API_QUERY_TIMEOUT" flag:"api-query-timeout" help:"longest an API request's queries may run (ClickHouse max_execution_time); shorter than http_write_timeout"`
	// Incremental keeps the current window's aggregates per bucket (the
	// gcd of Window and Step) once a model's reference is pinned, and
	// merges each window from them (docs "Incremental windows").
	Incremental bool `yaml:"incremental" env:"DRIFTWATCH_MONITOR_INCREMENTAL" flag:"incremental" help:"with a pinned reference, keep the current window's aggregates per step in ClickHouse and merge windows from them (same results, each row aggregated once)"`
	// WindowCacheMB bounds the incremental windows' partials kept in
	// memory between steps (window.BucketCache).
	WindowCacheMB int `yaml:"window_cache_mb" env:"DRIFTWATCH_MONITOR_WINDOW_CACHE_MB" flag:"window-cache-mb" help:"with incremental, MiB of the current windows' per-bucket partials kept in memory between steps, so a step reads only its new bucket (over it, models no longer evaluated are dropped first, then the newest, whose windows are then merged in ClickHouse; 0: none)"`
	// WindowCacheWriteBuckets is how many buckets' partials a model's
	// cache holds unwritten before writing them to ClickHouse
	// (window.BucketCache.WriteEvery).
	WindowCacheWriteBuckets int `yaml:"window_cache_write_buckets" env:"DRIFTWATCH_MONITOR_WINDOW_CACHE_WRITE_BUCKETS" flag:"window-cache-write-buckets" help:"with the window cache, write a model's new partials to ClickHouse once this many buckets of them are unwritten (at most half a window's; 1: at every step); a monitor that dies loses at most these, which are aggregated again from the rows"`
	MaxCategories           int `yaml:"max_categories" env:"DRIFTWATCH_MONITOR_MAX_CATEGORIES" flag:"max-categories" help:"most categories per categorical feature compared (most frequent first, the rest one __other bucket); a feature with more is reported high_cardinality"`
	// EvaluationTimeout bounds one model's round of evaluations (its
	// windows due, then its performance); 0 is half of Step.
	EvaluationTimeout     time.Duration `yaml:"evaluation_timeout" env:"DRIFTWATCH_MONITOR_EVALUATION_TIMEOUT" flag:"evaluation-timeout" help:"deadline of one model's evaluation round; a model past it is cut off with an error and retried next round (0: half of step)"`
	EvaluationConcurrency int           `yaml:"evaluation_concurrency" env:"DRIFTWATCH_MONITOR_EVALUATION_CONCURRENCY" flag:"evaluation-concurrency" help:"models evaluated at the same time"`
	// InstanceID names this monitor among those sharing the models (docs
	// "Many monitors"); "" is the host name and the pid.
	InstanceID string `yaml:"instance_id" env:"DRIFTWATCH_MONITOR_INSTANCE_ID" flag:"instance-id" help:"name of this monitor instance among those sharing the models; each must have its own (empty: host name and pid)"`
	// Lease is how long a monitor may go without a heartbeat before the
	// others take its models over.
	Lease time.Duration `yaml:"lease" env:"DRIFTWATCH_MONITOR_LEASE" flag:"lease" help:"how long an instance may go without a heartbeat (sent every quarter of it) before the other instances take its models over"`

	Policy      policy.Config     `yaml:"policy"`
	Segments    SegmentsConfig    `yaml:"segments"`
	Triggers    TriggerConfig     `yaml:"triggers"`
	Performance PerformanceConfig `yaml:"performance"`
	// Labeling is the labeling queue's strategy (docs/labeling.md).
	Labeling labeling.Config `yaml:"labeling"`
	// Models holds per-model overrides by model id: a fixed reference, a
	// policy, an evaluation timeout; a key an entry leaves out is the
	// instance's, but a policy given replaces the instance's whole, so it
	// needs all of its keys (-check-config shows each model's policy in
	// effect).
	Models map[string]ModelConfig `yaml:"models"`
}

// DefaultSettings are the monitor's defaults: one-hour windows every
// minute against a model's first 24 hours, models seen in the last 7 days.
func DefaultSettings() Settings {
	return Settings{
		Window: time.Hour, Step: time.Minute, ReferenceMode: ReferenceFirst, Reference: 24 * time.Hour, Lookback: 7 * 24 * time.Hour,
		Bins: window.DefaultBins, SampleCap: window.DefaultSampleCap, MaxFeatures: window.DefaultMaxFeatures,
		ExportFeatures: 50, MaxSeries: 10_000, ReferenceCacheMB: 512, Incremental: true, WindowCacheMB: 1024, WindowCacheWriteBuckets: window.DefaultWriteBuckets, APIMaxRows: 10_000, APIQueryTimeout: 30 * time.Second,
		MaxCategories: window.DefaultMaxCategories, EvaluationConcurrency: 4, Lease: DefaultLease,
		Policy: policy.Default(), Triggers: DefaultTriggerConfig(), Performance: DefaultPerformanceConfig(),
		Segments: SegmentsConfig{MaxSegments: 10}, Labeling: labeling.DefaultConfig(),
	}
}

// SegmentsConfig says which slices of every model's traffic are
// evaluated beside the population (see docs/monitor.md, "Segments").
type SegmentsConfig struct {
	// Keys are keys of the inferences' segment map (region, device, …);
	// empty (the default) evaluates no slices of segment keys.
	Keys []string `yaml:"keys"`
	// MaxSegments is the most values per key (or segment_by feature)
	// evaluated as slices of their own, the largest by rows; the rest fold
	// into one slice KEY=other.
	MaxSegments int `yaml:"max_segments"`
}

// Validate reports every invalid setting by its configuration key.
func (s *Settings) Validate() error {
	errs := []error{s.Policy.Validate("policy"), s.Triggers.Validate("triggers"), s.Performance.Validate("performance"), s.Labeling.Validate("labeling")}
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf(f, a...)) }
	if s.Window < time.Second || s.Step < time.Second {
		bad("window and step: must be at least 1s, got %s and %s", s.Window, s.Step)
	}
	if s.ReferenceMode != ReferenceFirst && s.ReferenceMode != ReferencePrevious {
		bad("reference_mode: %q is neither first nor previous (fixed references are set per model under models)", s.ReferenceMode)
	}
	if s.Reference < time.Second || s.Lookback < time.Second {
		bad("reference and lookback: must be at least 1s")
	}
	if s.Bins < 2 || s.Bins > 1000 {
		bad("bins: must be from 2 to 1000, got %d", s.Bins)
	}
	if s.SampleCap < 100 {
		bad("sample_cap: must be at least 100, got %d", s.SampleCap)
	}
	if s.ReferenceCacheMB < 0 {
		bad("reference_cache_mb: must not be negative, got %d", s.ReferenceCacheMB)
	}
	if s.WindowCacheMB < 0 {
		bad("window_cache_mb: must not be negative, got %d", s.WindowCacheMB)
	}
	if s.WindowCacheWriteBuckets < 1 {
		bad("window_cache_write_buckets: must be at least 1, got %d", s.WindowCacheWriteBuckets)
	}
	if s.APIMaxRows < 1 || s.APIMaxRows > 1_000_000 {
		bad("api_max_rows: must be from 1 to 1000000, got %d", s.APIMaxRows)
	}
	if s.APIQueryTimeout < time.Second {
		bad("api_query_timeout: must be at least 1s, got %s", s.APIQueryTimeout)
	}
	if s.MaxFeatures < 1 || s.ExportFeatures < 1 || s.MaxSeries < 1 {
		bad("max_features, export_features and max_series: must be at least 1")
	}
	if s.MaxCategories < 2 || s.MaxCategories > 100_000 {
		bad("max_categories: must be from 2 to 100000, got %d", s.MaxCategories)
	}
	if s.EvaluationTimeout < 0 {
		bad("evaluation_timeout: must not be negative (0 is half of step), got %s", s.EvaluationTimeout)
	}
	if s.EvaluationConcurrency < 1 {
		bad("evaluation_concurrency: must be at least 1, got %d", s.EvaluationConcurrency)
	}
	if s.Lease < 3*time.Second {
		bad("lease: must be at least 3s, got %s", s.Lease)
	}
	if len(s.InstanceID) > 200 || strings.ContainsFunc(s.InstanceID, unicode.IsControl) {
		bad("instance_id: must be at most 200 characters without control characters")
	}
	if s.Segments.MaxSegments < 1 || s.Segments.MaxSegments > 1000 {
		bad("segments.max_segments: must be from 1 to 1000, got %d", s.Segments.MaxSegments)
	}
	for i, k := range s.Segments.Keys {
		if k == "" {
			bad("segments.keys[%d]: empty key", i)
		}
	}
	for id, mc := range s.Models {
		for i, f := range mc.SegmentBy {
			if f == "" {
				bad("models.%s.segment_by[%d]: empty feature", id, i)
			}
		}
		if mc.EvaluationTimeout < 0 {
			bad("models.%s.evaluation_timeout: must not be negative, got %s", id, mc.EvaluationTimeout)
		}
		if mc.ReferenceStart.IsZero() != mc.ReferenceEnd.IsZero() || (!mc.ReferenceStart.IsZero() && !mc.ReferenceEnd.After(mc.ReferenceStart)) {
			bad("models.%s: reference_start and reference_end must both be set, start before end", id)
		}
		if mc.Policy != nil {
			errs = append(errs, mc.Policy.Validate("models."+id+".policy"))
		}
	}
	return errors.Join(errs...)
}

// aggregation is the window package's view of the settings.
// bucket is the width of the incremental windows' buckets: the largest
// that divides both Window and Step, so that every window is whole buckets.
func (s *Settings) bucket() time.Duration {
	a, b := s.Window, s.Step
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func (s *Settings) aggregation() window.Options {
	return window.Options{Bins: s.Bins, SampleCap: s.SampleCap, MaxFeatures: s.MaxFeatures, MaxCategories: s.MaxCategories, Samples: true}
}

// policyFor is model's drift policy: its own, or the instance's.
func (s *Settings) policyFor(model string) policy.Config {
	if mc, ok := s.Models[model]; ok && mc.Policy != nil {
		return *mc.Policy
	}
	return s.Policy
}

// aggregationFor is model's window aggregation: aggregation with the
// joint sample its policy's multivariate methods need (so a reference set
// or pinned for it carries one).
func (s *Settings) aggregationFor(model string) window.Options {
	o := s.aggregation()
	if p := s.policyFor(model); p.Multivariate.Enabled {
		o.JointRows = p.Multivariate.Rows
		o.JointCategories = p.Multivariate.Categorical
	}
	return o
}

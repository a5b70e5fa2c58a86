package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sort"
	"strconv"
	"time"

	"github.com/driftwatch/driftwatch/ingest/personal"
	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/migration"
	"github.com/driftwatch/driftwatch/internal/service"
	"github.com/driftwatch/driftwatch/schemas"
)

// Config is the ingest service's configuration: the common keys, the
// migration's and ingest's Settings.
type Config struct {
	config.Common    `yaml:",inline"`
	migration.Config `yaml:",inline"`
	Settings         `yaml:",inline"`
	// MemoryLimit is the Go runtime's soft memory limit for the process
	// (runtime/debug.SetMemoryLimit): near it the garbage collector runs
	// more often instead of letting the heap grow to twice what is live.
	// 0 leaves the runtime's default; GOMEMLIMIT in the environment wins.
	MemoryLimit int64 `yaml:"memory_limit" env:"DRIFTWATCH_INGEST_MEMORY_LIMIT" flag:"memory-limit" help:"soft memory limit of the process in bytes (Go's GOMEMLIMIT, which wins when set); 0 is none"`
}

// DefaultMemoryLimit is memory_limit's default, 448 MiB: with the default
// batch_bytes and queue_bytes ingest's live memory stays well below it, and
// the limit keeps garbage from taking the process past 512 MiB.
const DefaultMemoryLimit = 448 << 20

// Settings are ingest's own settings: the service's configuration keys
// (Config embeds them) and New's (Options embeds them), one type. Its
// defaults are DefaultSettings, and New reads a zero field as its default.
type Settings struct {
	ConsumerGroup string `yaml:"consumer_group" env:"DRIFTWATCH_INGEST_CONSUMER_GROUP" flag:"consumer-group" help:"consumer group name; each topic is read by group <topic prefix><name>.<topic>"`
	BatchRows     int    `yaml:"batch_rows" env:"DRIFTWATCH_INGEST_BATCH_ROWS" flag:"batch-rows" help:"rows per ClickHouse insert (a batch also closes at batch_age)"`
	// BatchBytes bounds a batch in bytes as BatchRows does in rows: a
	// batch closes when the Kafka messages it holds reach it. Two batches
	// are in memory at most (one filling, one being inserted), each about
	// twice its messages' size (the messages and their Arrow rows).
	BatchBytes int `yaml:"batch_bytes" env:"DRIFTWATCH_INGEST_BATCH_BYTES" flag:"batch-bytes" help:"bytes of Kafka messages per ClickHouse insert (a batch closes at batch_rows, batch_bytes or batch_age)"`
	// QueueBytes bounds the messages fetched from Kafka and not yet
	// decoded, per topic.
	QueueBytes      int           `yaml:"queue_bytes" env:"DRIFTWATCH_INGEST_QUEUE_BYTES" flag:"queue-bytes" help:"bytes of fetched messages waiting to be decoded, per topic"`
	BatchAge        time.Duration `yaml:"batch_age" env:"DRIFTWATCH_INGEST_BATCH_AGE" flag:"batch-age" help:"longest a batch waits before it is inserted"`
	RetryMax        time.Duration `yaml:"retry_max" env:"DRIFTWATCH_INGEST_RETRY_MAX" flag:"retry-max" help:"longest backoff between retries while ClickHouse or Kafka is down"`
	MaxFeatures     int           `yaml:"max_features" env:"DRIFTWATCH_INGEST_MAX_FEATURES" flag:"max-features" help:"most features one inference may carry"`
	MaxEventBytes   int           `yaml:"max_event_bytes" env:"DRIFTWATCH_INGEST_MAX_EVENT_BYTES" flag:"max-event-bytes" help:"largest event accepted, in bytes"`
	MaxFutureSkew   time.Duration `yaml:"max_future_skew" env:"DRIFTWATCH_INGEST_MAX_FUTURE_SKEW" flag:"max-future-skew" help:"how far in the future an event timestamp may be"`
	TopicPartitions int           `yaml:"topic_partitions" env:"DRIFTWATCH_INGEST_TOPIC_PARTITIONS" flag:"topic-partitions" help:"partitions of topics ingest creates when they do not exist"`
	// MaxPartitionsPerInsert is the most day partitions one insert
	// touches: a batch spanning more days (a backfill) is inserted in
	// several blocks. Keep it at or below the server's
	// max_partitions_per_insert_block (100 by default).
	MaxPartitionsPerInsert int `yaml:"max_partitions_per_insert" env:"DRIFTWATCH_INGEST_MAX_PARTITIONS_PER_INSERT" flag:"max-partitions-per-insert" help:"most day partitions one insert touches (at most the server's max_partitions_per_insert_block)"`
	// Models holds per-model settings by model id ("*" for every model):
	// today the personal-data rules. A map, so YAML only.
	Models map[string]ModelSettings `yaml:"models"`
	// PersonalHashKeyFile is the file holding the HMAC-SHA256 key that
	// hash rules use (at least 16 bytes; trailing newlines are ignored).
	// Required when a rule hashes.
	PersonalHashKeyFile string `yaml:"personal_hash_key_file" env:"DRIFTWATCH_INGEST_PERSONAL_HASH_KEY_FILE" flag:"personal-hash-key-file" help:"file holding the HMAC-SHA256 key of personal hash rules (required when a rule hashes)"`
	// DeadLetterKeepPersonal keeps rejected events' original bytes in the
	// dead-letter topic and the dead_letters table; by default their
	// personal fields are dropped or hashed too, and a payload that does
	// not parse is withheld.
	DeadLetterKeepPersonal bool `yaml:"dead_letter_keep_personal" env:"DRIFTWATCH_INGEST_DEAD_LETTER_KEEP_PERSONAL" flag:"dead-letter-keep-personal" help:"keep rejected events' personal fields in the dead-letter topic and table (default: dropped or hashed, unparsable payloads withheld)"`
}

// ModelSettings are one model's entry in models.
type ModelSettings struct {
	// Personal maps a feature or segment key to drop or hash: the field
	// is removed, or replaced by "hmac:" + 32 hex digits, before anything
	// is stored.
	Personal map[string]string `yaml:"personal"`
}

// personalRules returns the models' personal rules, and an error per
// invalid one, naming its key.
// The string is the key of the first hash rule ("" when none hashes).
func (s *Settings) personalRules() (map[string]personal.Rules, string, error) {
	var errs []error
	out := map[string]personal.Rules{}
	hashes := ""
	for _, model := range sortedKeys(s.Models) {
		if model == "" {
			errs = append(errs, errors.New("models: a model id must not be empty (\"*\" is every model)"))
			continue
		}
		rules := personal.Rules{}
		for _, field := range sortedKeys(s.Models[model].Personal) {
			a, err := personal.ParseAction(s.Models[model].Personal[field])
			switch {
			case field == "":
				errs = append(errs, fmt.Errorf("models.%s.personal: a field name must not be empty", model))
			case err != nil:
				errs = append(errs, fmt.Errorf("models.%s.personal.%s: %w", model, field, err))
			default:
				rules[field] = a
				if a == personal.Hash && hashes == "" {
					hashes = "models." + model + ".personal." + field
				}
			}
		}
		out[model] = rules
	}
	return out, hashes, errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// personalRuleCount is how many personal rules are configured, for the
// start-up log line.
func (s *Settings) personalRuleCount() int {
	n := 0
	for _, m := range s.Models {
		n += len(m.Personal)
	}
	return n
}

// policy compiles the personal rules, reading the hash key file; nil when
// there are no rules.
func (s *Settings) policy() (*personal.Policy, error) {
	rules, hashes, err := s.personalRules()
	if err != nil {
		return nil, err
	}
	var key []byte
	if hashes != "" && s.PersonalHashKeyFile != "" {
		b, err := os.ReadFile(s.PersonalHashKeyFile)
		if err != nil {
			return nil, fmt.Errorf("personal_hash_key_file: read the hash key: %w", err)
		}
		key = bytes.TrimRight(b, "\r\n")
	}
	p, err := personal.New(rules, key)
	if err != nil {
		return nil, fmt.Errorf("personal_hash_key_file: %w", err)
	}
	return p, nil
}

// DefaultSettings: group "ingest", batches of 50,000 rows, 16 MiB or 500 ms, an 8 MiB fetch queue,
// retries backing off to 30 s, the decoder's and the topology's defaults.
func DefaultSettings() Settings {
	return Settings{
		ConsumerGroup: "ingest", BatchRows: 50000, BatchBytes: 16 << 20, QueueBytes: 8 << 20, BatchAge: 500 * time.Millisecond, RetryMax: 30 * time.Second,
		MaxFeatures: schemas.DefaultMaxFeatures, MaxEventBytes: schemas.DefaultMaxBytes, MaxFutureSkew: schemas.DefaultMaxFutureSkew,
		TopicPartitions: schemas.TopicFor(schemas.TopicInferences).Partitions, MaxPartitionsPerInsert: 100,
	}
}

// withDefaults returns s with every zero field set to its default.
func (s Settings) withDefaults() Settings {
	d := DefaultSettings()
	setDefault(&s.ConsumerGroup, d.ConsumerGroup)
	setDefault(&s.BatchRows, d.BatchRows)
	setDefault(&s.BatchBytes, d.BatchBytes)
	setDefault(&s.QueueBytes, d.QueueBytes)
	setDefault(&s.BatchAge, d.BatchAge)
	setDefault(&s.RetryMax, d.RetryMax)
	setDefault(&s.MaxFeatures, d.MaxFeatures)
	setDefault(&s.MaxEventBytes, d.MaxEventBytes)
	setDefault(&s.MaxFutureSkew, d.MaxFutureSkew)
	setDefault(&s.TopicPartitions, d.TopicPartitions)
	setDefault(&s.MaxPartitionsPerInsert, d.MaxPartitionsPerInsert)
	return s
}

func setDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// limits are the decoder's view of the settings.
func (s *Settings) limits() schemas.Limits {
	return schemas.Limits{MaxFeatures: s.MaxFeatures, MaxBytes: s.MaxEventBytes, MaxFutureSkew: s.MaxFutureSkew}
}

// Resolved returns the configuration in effect (config.Resolver): every
// zero setting that stands for a default replaced by it, clickhouse_user
// as the clients will use it.
func (c *Config) Resolved() any {
	r := *c
	r.Common = c.ResolvedCommon()
	r.Settings = c.Settings.withDefaults()
	return &r
}

// DefaultConfig returns the ingest defaults (HTTP on 127.0.0.1:9101).
func DefaultConfig() *Config {
	return &Config{Common: config.DefaultCommon("127.0.0.1:9101"), Config: migration.DefaultConfig(), Settings: DefaultSettings(), MemoryLimit: DefaultMemoryLimit}
}

// Validate reports every invalid setting.
func (c *Config) Validate() error {
	var errs []error
	if c.MemoryLimit != 0 && c.MemoryLimit < 64<<20 {
		errs = append(errs, fmt.Errorf("memory_limit: must be 0 (none) or at least 67108864 (64 MiB), got %d", c.MemoryLimit))
	}
	return errors.Join(c.Common.Validate(), c.Config.Validate(), c.Settings.Validate(), errors.Join(errs...))
}

// Validate reports every invalid setting by its configuration key.
func (s *Settings) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if s.ConsumerGroup == "" {
		bad("consumer_group: must not be empty")
	}
	if s.BatchRows < 1 || s.BatchRows > 10_000_000 {
		bad("batch_rows: must be from 1 to 10000000, got %d", s.BatchRows)
	}
	if s.BatchBytes < 64<<10 || s.BatchBytes > 1<<30 {
		bad("batch_bytes: must be from 65536 (64 KiB) to 1073741824 (1 GiB), got %d", s.BatchBytes)
	}
	if s.QueueBytes < 64<<10 || s.QueueBytes > 1<<30 {
		bad("queue_bytes: must be from 65536 (64 KiB) to 1073741824 (1 GiB), got %d", s.QueueBytes)
	}
	if s.BatchAge < 10*time.Millisecond {
		bad("batch_age: must be at least 10ms, got %s", s.BatchAge)
	}
	if s.RetryMax < 100*time.Millisecond {
		bad("retry_max: must be at least 100ms, got %s", s.RetryMax)
	}
	if s.MaxFeatures < 1 {
		bad("max_features: must be at least 1, got %d", s.MaxFeatures)
	}
	if s.MaxEventBytes < 256 {
		bad("max_event_bytes: must be at least 256, got %d", s.MaxEventBytes)
	}
	if s.MaxFutureSkew < 0 {
		bad("max_future_skew: must not be negative, got %s", s.MaxFutureSkew)
	}
	if s.TopicPartitions < 1 {
		bad("topic_partitions: must be at least 1, got %d", s.TopicPartitions)
	}
	if s.MaxPartitionsPerInsert < 1 || s.MaxPartitionsPerInsert > 10000 {
		bad("max_partitions_per_insert: must be from 1 to 10000, got %d", s.MaxPartitionsPerInsert)
	}
	_, hashes, err := s.personalRules()
	if err != nil {
		errs = append(errs, err)
	}
	switch {
	case hashes != "" && s.PersonalHashKeyFile == "":
		bad("personal_hash_key_file: required when a personal rule hashes (%s: hash)", hashes)
	case hashes != "" && err == nil:
		// The key is read here too, so -check-config catches a missing or
		// short key before the service starts.
		if _, err := s.policy(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// RunService runs the ingest service until ctx ends: HTTP endpoints,
// ClickHouse schema, Kafka topics, then the pipelines. It waits for
// ClickHouse and Kafka at start, retrying, rather than failing when one of
// them is still starting.
func RunService(ctx context.Context, cfg *Config) error {
	return service.Run(ctx, service.Spec{
		Name: "ingest", Common: cfg.Common, Migration: cfg.Config, Secrets: config.SecretValues(cfg),
		// Ingest applies the tables' TTLs (with driftwatch migrate); the
		// monitor and the trainer only check theirs against them.
		OwnsRetention: true,
		Topics:        append(eventTopics(cfg.TopicPartitions), schemas.TopicFor(schemas.TopicDeadLetters)),
		Setup: func(ctx context.Context, rt *service.Runtime) (func(context.Context) error, error) {
			ing, err := New(Options{Settings: cfg.Settings, Kafka: rt.Kafka, Conn: rt.Conn, ShutdownTimeout: cfg.ShutdownTimeout, RetentionDays: cfg.RetentionDays,
				TableRetentionDays: cfg.Retention,
				Registerer:         rt.Server.Registry(), Logger: rt.Log})
			if err != nil {
				return nil, err
			}
			rt.OnClose(ing.Close)
			limit := "none"
			switch {
			case os.Getenv("GOMEMLIMIT") != "":
				limit = "GOMEMLIMIT=" + os.Getenv("GOMEMLIMIT")
			case cfg.MemoryLimit > 0:
				debug.SetMemoryLimit(cfg.MemoryLimit)
				limit = strconv.FormatInt(cfg.MemoryLimit, 10)
			}
			rt.Log.Info("ingesting", "topics", ing.Topics(), "personal_rules", cfg.personalRuleCount(), "dead_letter_keep_personal", cfg.DeadLetterKeepPersonal, "batch_rows", cfg.BatchRows, "batch_bytes", cfg.BatchBytes, "queue_bytes", cfg.QueueBytes, "batch_age", cfg.BatchAge, "memory_limit", limit)
			return ing.Run, nil
		},
	})
}

// eventTopics returns the topology's event topics with partitions
// partitions (ingest's topic_partitions).
func eventTopics(partitions int) []schemas.Topic {
	ts := schemas.EventTopics()
	for i := range ts {
		ts[i].Partitions = partitions
	}
	return ts
}

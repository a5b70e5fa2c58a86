// Package kafkaio is driftwatch's thin layer over github.com/segmentio/kafka-go.
//
// It holds the decisions every service would otherwise repeat: how a broker
// list from DRIFTWATCH_KAFKA_BROKERS is parsed and validated, how topic names
// get the DRIFTWATCH_TOPIC_PREFIX, how writers batch and acknowledge (all
// in-sync replicas, partition by message key), how consumer-group readers
// commit (only explicitly, so an offset is committed after ClickHouse
// acknowledged the rows it covers), how topics are created idempotently, and
// how readiness is probed. It returns kafka-go's own types, so callers use the
// full kafka-go API and nothing here hides it.
//
// The package registers no metrics and keeps no global state.
package kafkaio

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/segmentio/kafka-go/sasl"

	"github.com/driftwatch/driftwatch/internal/config"
)

// DefaultTopicPrefix is put in front of every topic name when
// Options.TopicPrefix is empty.
const DefaultTopicPrefix = "driftwatch."

// maxTopicNameLen is Kafka's limit on a topic name.
const maxTopicNameLen = 249

// ErrInvalidBroker is wrapped by every error about a malformed broker
// address, so a caller can tell a configuration mistake from an unreachable
// cluster with errors.Is.
var ErrInvalidBroker = errors.New("invalid Kafka broker address")

// ErrInvalidTopic is wrapped by every error about an illegal topic name or
// prefix.
var ErrInvalidTopic = errors.New("invalid Kafka topic name")

// Options says how to reach the Kafka cluster. The zero value is not usable:
// Brokers must name at least one broker.
type Options struct {
	// Brokers are bootstrap addresses, host:port each; ParseBrokers reads
	// them from a comma list such as DRIFTWATCH_KAFKA_BROKERS.
	Brokers []string
	// TopicPrefix is put in front of every topic name; empty means
	// DefaultTopicPrefix.
	TopicPrefix string
	// ClientID names this process in broker logs and quotas; empty means
	// "driftwatch".
	ClientID string
	// Logger receives kafka-go's own log lines (debug level) and its errors
	// (warn level). Nil discards them.
	Logger *slog.Logger
	// SASL authenticates every connection; nil for none. FromConfig builds
	// it from kafka_sasl_mechanism, kafka_sasl_username and the password.
	SASL sasl.Mechanism
	// TLS encrypts every connection; nil for plain TCP. A config without
	// ServerName checks each broker's certificate against that broker's
	// host.
	TLS *tls.Config
	// ReplicationFactor and MinInsyncReplicas are what Specs gives the
	// topics it describes (topic_replication_factor and
	// topic_min_insync_replicas); 0 leaves each to the brokers' default.
	ReplicationFactor, MinInsyncReplicas int
}

// Prefix returns the topic prefix in effect.
func (o Options) Prefix() string {
	if o.TopicPrefix == "" {
		return DefaultTopicPrefix
	}
	return o.TopicPrefix
}

// Topic returns the full name of the topic called name under the prefix in
// effect, for example "driftwatch.inferences".
func (o Options) Topic(name string) string {
	return Topic(o.Prefix(), name)
}

func (o Options) clientID() string {
	if o.ClientID == "" {
		return "driftwatch"
	}
	return o.ClientID
}

// Validate reports every problem with the options at once.
func (o Options) Validate() error {
	var errs []error
	if len(o.Brokers) == 0 {
		errs = append(errs, fmt.Errorf("brokers: %w: no broker given", ErrInvalidBroker))
	}
	for i, b := range o.Brokers {
		if err := validateBroker(b); err != nil {
			errs = append(errs, fmt.Errorf("brokers[%d]: %w", i, err))
		}
	}
	if err := validateTopicChars(o.Prefix()); err != nil {
		errs = append(errs, fmt.Errorf("topic prefix: %w", err))
	}
	if o.ReplicationFactor < 0 || o.MinInsyncReplicas < 0 {
		errs = append(errs, fmt.Errorf("topic replication factor %d and min.insync.replicas %d must not be negative", o.ReplicationFactor, o.MinInsyncReplicas))
	}
	return errors.Join(errs...)
}

// Topic joins a prefix and a topic name: Topic("driftwatch.", "outcomes") is
// "driftwatch.outcomes". The prefix is used as given, so it carries its own
// separator.
func Topic(prefix, name string) string {
	return prefix + name
}

// ValidateTopicName reports whether Kafka accepts name as a topic name: 1 to
// 249 characters from [a-zA-Z0-9._-], and neither "." nor "..".
func ValidateTopicName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidTopic)
	case name == "." || name == "..":
		return fmt.Errorf("%w: %q is reserved", ErrInvalidTopic, name)
	case len(name) > maxTopicNameLen:
		return fmt.Errorf("%w: %q is %d characters, more than %d", ErrInvalidTopic, name, len(name), maxTopicNameLen)
	}
	return validateTopicChars(name)
}

func validateTopicChars(s string) error {
	for i, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%w: %q has %q at byte %d; only a-z, A-Z, 0-9, '.', '_' and '-' are allowed", ErrInvalidTopic, s, r, i)
		}
	}
	return nil
}

// ParseBrokers parses a comma-separated list of host:port broker addresses,
// as in DRIFTWATCH_KAFKA_BROKERS. Spaces around entries are ignored. Every bad
// entry is reported, each by its position and text, and every error wraps
// ErrInvalidBroker.
func ParseBrokers(list string) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		return nil, fmt.Errorf("%w: the broker list is empty", ErrInvalidBroker)
	}
	var (
		brokers []string
		errs    []error
		seen    = map[string]int{}
	)
	for i, raw := range strings.Split(list, ",") {
		b := strings.TrimSpace(raw)
		if err := validateBroker(b); err != nil {
			errs = append(errs, fmt.Errorf("broker %d %q: %w", i+1, raw, err))
			continue
		}
		if first, dup := seen[b]; dup {
			errs = append(errs, fmt.Errorf("broker %d %q: %w: repeats broker %d", i+1, raw, ErrInvalidBroker, first))
			continue
		}
		seen[b] = i + 1
		brokers = append(brokers, b)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return brokers, nil
}

// validateBroker checks one host:port address. IPv6 hosts need brackets.
func validateBroker(b string) error {
	if err := config.CheckBroker(b); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidBroker, err)
	}
	return nil
}

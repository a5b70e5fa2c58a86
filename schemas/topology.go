package schemas

import (
	"fmt"
	"time"
)

// The short names of driftwatch's Kafka topics (the full name is
// DRIFTWATCH_TOPIC_PREFIX + name). Every service and the driftwatch tool
// name topics through these and create them through Topology, so a topic
// has one definition whichever component creates it first.
const (
	TopicInferences      = "inferences"
	TopicOutcomes        = "outcomes"
	TopicBusinessMetrics = "business-metrics"
	TopicDeadLetters     = "dead-letters"
	TopicRetrainTriggers = "retrain-triggers"
	TopicModelEvents     = "model-events"
)

// KafkaDefaultMaxMessageBytes is Kafka's default max.message.bytes
// (1 MiB + 12 bytes of record overhead); the event topics keep it, and
// Limits.MaxBytes (1 MiB by default) keeps every accepted event below it.
const KafkaDefaultMaxMessageBytes = 1048588

// DeadLetterMaxBytes is the dead-letter topic's max.message.bytes and the
// batch limit of every dead-letter writer, so that an event its source
// topic accepted (at Kafka's default of about 1 MiB) fits as a dead letter
// with its headers.
const DeadLetterMaxBytes = 16 << 20

// Topic is one topic as driftwatch creates it when it does not exist. A
// topic that exists is left as it is.
type Topic struct {
	// Name is the short name, without the prefix.
	Name string
	// Kind is the contract of its messages; KindUnknown for dead-letters,
	// which carry any kind.
	Kind Kind
	// Partitions bounds the parallelism of its consumers.
	Partitions int
	// Retention is its retention.ms.
	Retention time.Duration
	// MaxMessageBytes is its max.message.bytes.
	MaxMessageBytes int
}

const week = 7 * 24 * time.Hour

// topology is every topic. Retention is Kafka's default (7 days): ingest
// and the trainer read within seconds, and the topics are a buffer, not
// the record (ClickHouse is).
var topology = [...]Topic{
	{Name: TopicInferences, Kind: KindInference, Partitions: 3, Retention: week, MaxMessageBytes: KafkaDefaultMaxMessageBytes},
	{Name: TopicOutcomes, Kind: KindOutcome, Partitions: 3, Retention: week, MaxMessageBytes: KafkaDefaultMaxMessageBytes},
	{Name: TopicBusinessMetrics, Kind: KindBusinessMetric, Partitions: 3, Retention: week, MaxMessageBytes: KafkaDefaultMaxMessageBytes},
	{Name: TopicDeadLetters, Kind: KindUnknown, Partitions: 3, Retention: week, MaxMessageBytes: DeadLetterMaxBytes},
	{Name: TopicRetrainTriggers, Kind: KindRetrainTrigger, Partitions: 3, Retention: week, MaxMessageBytes: KafkaDefaultMaxMessageBytes},
	{Name: TopicModelEvents, Kind: KindModelEvent, Partitions: 3, Retention: week, MaxMessageBytes: KafkaDefaultMaxMessageBytes},
}

// Topology returns every driftwatch topic.
func Topology() []Topic { return append([]Topic(nil), topology[:]...) }

// TopicFor returns the definition of the topic with short name name. It
// panics on a name that is not in the topology: callers pass the Topic*
// constants, so an unknown name is a bug.
func TopicFor(name string) Topic {
	for _, t := range topology {
		if t.Name == name {
			return t
		}
	}
	panic(fmt.Sprintf("BUG: %q is not a driftwatch topic", name))
}

// EventTopics returns the topics ingest reads: one per ingested kind.
func EventTopics() []Topic {
	return []Topic{TopicFor(TopicInferences), TopicFor(TopicOutcomes), TopicFor(TopicBusinessMetrics)}
}

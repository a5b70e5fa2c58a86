package schemas

import (
	"fmt"
	"strings"
)

// Kind is one event contract, independent of its version.
type Kind uint8

// The event kinds of docs/architecture.md, "Contracts".
const (
	KindUnknown Kind = iota
	KindInference
	KindOutcome
	KindBusinessMetric
	KindRetrainTrigger
	KindModelEvent
)

// SchemaHeader is the Kafka message header that names an event's contract.
const SchemaHeader = "schema"

// Version is the contract version this package reads and writes.
const Version = 1

type kindInfo struct {
	name  string // contract name inside the schema header value
	topic string // topic name, without the prefix
}

var kinds = [...]kindInfo{
	KindInference:      {"inference", TopicInferences},
	KindOutcome:        {"outcome", TopicOutcomes},
	KindBusinessMetric: {"business-metric", TopicBusinessMetrics},
	KindRetrainTrigger: {"retrain-trigger", TopicRetrainTriggers},
	KindModelEvent:     {"model-event", TopicModelEvents},
}

// Kinds lists every known kind.
func Kinds() []Kind {
	return []Kind{KindInference, KindOutcome, KindBusinessMetric, KindRetrainTrigger, KindModelEvent}
}

// String returns the contract name ("inference", "business-metric").
func (k Kind) String() string {
	if k == KindUnknown || int(k) >= len(kinds) {
		return "unknown"
	}
	return kinds[k].name
}

// SchemaName returns the schema header value producers set for this kind at
// the current version, for example "driftwatch.inference.v1".
func (k Kind) SchemaName() string {
	return fmt.Sprintf("driftwatch.%s.v%d", k, Version)
}

// Topic returns the topic name of this kind without the prefix
// ("inferences"); the full name is DRIFTWATCH_TOPIC_PREFIX + Topic().
func (k Kind) Topic() string {
	if k == KindUnknown || int(k) >= len(kinds) {
		return ""
	}
	return kinds[k].topic
}

// KindForMessage decides which contract a Kafka message follows from its
// schema header value and the topic it was read from (topicPrefix is
// DRIFTWATCH_TOPIC_PREFIX, for example "driftwatch.").
//
// A header "driftwatch.<name>.v1" names the kind. An empty header means the
// current version of the topic's kind, so producers that cannot set headers
// still work. Anything else is a *DecodeError with ReasonUnsupportedSchema:
// another version ("driftwatch.inference.v2"), an unknown name, a header for
// a kind that does not belong on the topic, or no header on an unknown topic.
func KindForMessage(header, topic, topicPrefix string) (Kind, error) {
	topicKind := KindUnknown
	if name, ok := strings.CutPrefix(topic, topicPrefix); ok {
		for _, k := range Kinds() {
			if kinds[k].topic == name {
				topicKind = k
			}
		}
	}
	if header == "" {
		if topicKind == KindUnknown {
			return KindUnknown, newErr(ReasonUnsupportedSchema, "", -1,
				fmt.Sprintf("no %q header and topic %q is not a driftwatch event topic", SchemaHeader, topic))
		}
		return topicKind, nil
	}
	rest, ok := strings.CutPrefix(header, "driftwatch.")
	dot := strings.LastIndexByte(rest, '.')
	if !ok || dot < 0 {
		return KindUnknown, newErr(ReasonUnsupportedSchema, "", -1,
			fmt.Sprintf("schema %s: not of the form driftwatch.<event>.v<version>", quoteValue([]byte(header))))
	}
	name, ver := rest[:dot], rest[dot+1:]
	k := KindUnknown
	for _, c := range Kinds() {
		if kinds[c].name == name {
			k = c
		}
	}
	if k == KindUnknown {
		return KindUnknown, newErr(ReasonUnsupportedSchema, "", -1,
			fmt.Sprintf("schema %s: unknown event kind %s", quoteValue([]byte(header)), quoteValue([]byte(name))))
	}
	if ver != fmt.Sprintf("v%d", Version) {
		return KindUnknown, newErr(ReasonUnsupportedSchema, "", -1,
			fmt.Sprintf("schema %s: unsupported version, this build reads %s", quoteValue([]byte(header)), k.SchemaName()))
	}
	if topicKind != KindUnknown && topicKind != k {
		return KindUnknown, newErr(ReasonUnsupportedSchema, "", -1,
			fmt.Sprintf("schema %s does not belong on topic %q, which carries %s", quoteValue([]byte(header)), topic, topicKind.SchemaName()))
	}
	return k, nil
}

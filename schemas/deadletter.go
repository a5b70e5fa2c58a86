package schemas

// The dead-letter contract: an event ingest (or the trainer) cannot accept
// is written to the dead-letter topic (TopicDeadLetters) with its original
// key and value and these headers, so a producer can find why and replay
// it. The topic's size limit is DeadLetterMaxBytes.
const (
	// HeaderReason is the Reason code, such as "invalid_json".
	HeaderReason = "driftwatch-reason"
	// HeaderError is the decoder's message, naming the field at fault.
	HeaderError = "driftwatch-error"
	// HeaderSourceTopic, HeaderSourcePartition and HeaderSourceOffset say
	// where the original message was read.
	HeaderSourceTopic     = "driftwatch-source-topic"
	HeaderSourcePartition = "driftwatch-source-partition"
	HeaderSourceOffset    = "driftwatch-source-offset"
	// HeaderDeadLetteredAt is when it was dead-lettered (RFC 3339, UTC).
	HeaderDeadLetteredAt = "driftwatch-dead-lettered-at"
	// HeaderValueTruncated is set on a dead letter whose value was cut
	// (the topic refused it whole), to the original length in bytes.
	HeaderValueTruncated = "driftwatch-value-truncated"
)

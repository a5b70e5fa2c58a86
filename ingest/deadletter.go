package ingest

import (
	"errors"
	"strconv"

	"github.com/segmentio/kafka-go"
)

// DeadLetterMaxBytes is the max.message.bytes ingest gives the dead-letter
// topic when it creates it, and the batch limit of its writer, so an event
// the source topic accepted (at Kafka's default of about 1 MiB) fits as a
// dead letter with its headers.
const DeadLetterMaxBytes = 16 << 20

// deadLetterTruncateBytes is what a dead letter's value is cut to when the
// dead-letter topic still refuses it (a topic created with smaller limits).
// The headers keep the source topic, partition and offset of the original.
const deadLetterTruncateBytes = 64 << 10

// HeaderValueTruncated is set on a dead letter whose value was cut, to the
// original length in bytes.
const HeaderValueTruncated = "driftwatch-value-truncated"

// tooLarge reports whether err says a message was too large for the
// writer or the broker.
func tooLarge(err error) bool {
	var mtl kafka.MessageTooLargeError
	if errors.As(err, &mtl) || errors.Is(err, kafka.MessageSizeTooLarge) {
		return true
	}
	var we kafka.WriteErrors
	if errors.As(err, &we) {
		for _, e := range we {
			if e != nil && tooLarge(e) {
				return true
			}
		}
	}
	return false
}

// shrinkDeadLetters cuts every pending value longer than
// deadLetterTruncateBytes, so that one oversized event cannot block the
// pipeline forever; it reports whether it changed anything.
func shrinkDeadLetters(msgs []kafka.Message) bool {
	changed := false
	for i := range msgs {
		if n := len(msgs[i].Value); n > deadLetterTruncateBytes {
			msgs[i].Value = msgs[i].Value[:deadLetterTruncateBytes]
			msgs[i].Headers = append(msgs[i].Headers, kafka.Header{Key: HeaderValueTruncated, Value: []byte(strconv.Itoa(n))})
			changed = true
		}
	}
	return changed
}

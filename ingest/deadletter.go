package ingest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/schemas"
)

// deadLetterTruncateBytes is what a dead letter's value is cut to when the
// dead-letter topic still refuses it (a topic created with smaller limits).
// The headers keep the source topic, partition and offset of the original.
const deadLetterTruncateBytes = 64 << 10

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
			msgs[i].Headers = append(msgs[i].Headers, kafka.Header{Key: schemas.HeaderValueTruncated, Value: []byte(strconv.Itoa(n))})
			changed = true
		}
	}
	return changed
}

// deadLetterPayloadBytes is how much of a rejected value the dead_letters
// table keeps; the topic keeps it whole.
const deadLetterPayloadBytes = 4096

// deadLetterRow is one row of the dead_letters table.
type deadLetterRow struct {
	timestamp, receivedAt time.Time
	modelID, kind, reason string
	error, payload        string
	payloadBytes          uint32
	topic                 string
	partition             int32
	offset                int64
}

func newDeadLetterRow(kind schemas.Kind, msg kafka.Message, reason string, err error, now time.Time) deadLetterRow {
	// Inferences and outcomes are keyed by model_id; business metrics are
	// not model-scoped, so their key says nothing about a model.
	key := msg.Key
	if kind == schemas.KindBusinessMetric {
		key = nil
	}
	model, ts := schemas.Peek(msg.Value, key)
	if ts.IsZero() {
		ts = now
	}
	r := deadLetterRow{timestamp: ts.UTC(), receivedAt: now.UTC(), modelID: model, kind: kind.Topic(), reason: reason,
		error: err.Error(), payloadBytes: uint32(min(len(msg.Value), 1<<32-1)),
		topic: msg.Topic, partition: int32(msg.Partition), offset: msg.Offset}
	r.setPayload(msg.Value)
	return r
}

// setPayload stores the first deadLetterPayloadBytes of value as the row's
// payload (payload_bytes stays the size of the original value).
func (r *deadLetterRow) setPayload(value []byte) {
	if len(value) > deadLetterPayloadBytes {
		value = value[:deadLetterPayloadBytes]
	}
	r.payload = string(value)
}

// HeaderPersonal marks a dead letter whose value the personal-data rules
// changed: "governed" (personal fields dropped or hashed) or "withheld"
// (the value did not parse and was replaced by a note).
const HeaderPersonal = "driftwatch-personal"

const (
	personalGoverned = "governed"
	personalWithheld = "withheld"
)

// insertDeadLetters writes rows to the dead_letters table under token, the
// batch's insert_deduplication_token, so a retried batch is stored once.
func insertDeadLetters(ctx context.Context, conn driver.Conn, rows []deadLetterRow, token string) error {
	if len(rows) == 0 {
		return nil
	}
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_deduplication_token": token}))
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO dead_letters (timestamp, received_at, model_id, kind, reason, error, payload, payload_bytes, kafka_topic, kafka_partition, kafka_offset)")
	if err != nil {
		return fmt.Errorf("prepare insert into dead_letters: %w", err)
	}
	defer batch.Abort() //nolint:errcheck // a no-op after Send
	for _, r := range rows {
		if err := batch.Append(r.timestamp, r.receivedAt, r.modelID, r.kind, r.reason, r.error, r.payload, r.payloadBytes, r.topic, r.partition, r.offset); err != nil {
			return fmt.Errorf("append dead letter: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d rows into dead_letters: %w", len(rows), err)
	}
	return nil
}

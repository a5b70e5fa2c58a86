package ingest

import (
	"context"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/internal/arrowch"
	"github.com/driftwatch/driftwatch/schemas"
	"github.com/driftwatch/driftwatch/schemas/arrowschema"
)

// recordBuilder is what the arrowschema builders have in common.
type recordBuilder interface {
	Len() int
	NewRecord() arrow.Record
}

// eventTable batches events of one kind (E is schemas.Inference, Outcome or
// BusinessMetric) as an Arrow record and inserts it into its table.
type eventTable[E any] struct {
	name    string
	conn    driver.Conn
	now     func() time.Time
	decode  func(data []byte, ev *E) (schemas.Info, error)
	id      func(*E) string
	ts      func(*E) time.Time
	appendE func(ev *E, src arrowschema.Source)
	b       recordBuilder

	ev       E
	seen     map[string]struct{}
	newestTS time.Time
	rec      arrow.Record // built at the first insert attempt, kept for retries
}

func (t *eventTable[E]) add(msg *kafka.Message) (schemas.Info, bool, error) {
	info, err := t.decode(msg.Value, &t.ev)
	if err != nil {
		return info, false, err
	}
	id := t.id(&t.ev)
	if _, dup := t.seen[id]; dup {
		return info, true, nil
	}
	t.seen[id] = struct{}{}
	if ts := t.ts(&t.ev); ts.After(t.newestTS) {
		t.newestTS = ts
	}
	t.appendE(&t.ev, arrowschema.Source{Topic: msg.Topic, Partition: int32(msg.Partition), Offset: msg.Offset, IngestedAt: t.now()})
	return info, false, nil
}

func (t *eventTable[E]) rows() int         { return len(t.seen) }
func (t *eventTable[E]) newest() time.Time { return t.newestTS }

func (t *eventTable[E]) insert(ctx context.Context, token string) error {
	if t.rec == nil {
		t.rec = t.b.NewRecord()
	}
	return arrowch.Insert(ctx, t.conn, t.name, t.rec, token)
}

func (t *eventTable[E]) reset() {
	if t.rec != nil {
		t.rec.Release()
		t.rec = nil
	}
	if t.b.Len() > 0 { // rows appended but never inserted: drop them
		t.b.NewRecord().Release()
	}
	clear(t.seen)
	t.newestTS = time.Time{}
}

// newTable returns the batch for one event kind.
func newTable(kind schemas.Kind, conn driver.Conn, dec *schemas.Decoder, now func() time.Time) table {
	mem := memory.NewGoAllocator()
	switch kind {
	case schemas.KindInference:
		b := arrowschema.NewInferenceBuilder(mem)
		return &eventTable[schemas.Inference]{
			name: "inferences", conn: conn, now: now, decode: dec.DecodeInference, b: b,
			id:      func(e *schemas.Inference) string { return e.EventID },
			ts:      func(e *schemas.Inference) time.Time { return e.Timestamp },
			appendE: b.Append, seen: map[string]struct{}{},
		}
	case schemas.KindOutcome:
		b := arrowschema.NewOutcomeBuilder(mem)
		return &eventTable[schemas.Outcome]{
			name: "outcomes", conn: conn, now: now, decode: dec.DecodeOutcome, b: b,
			id:      func(e *schemas.Outcome) string { return e.EventID },
			ts:      func(e *schemas.Outcome) time.Time { return e.Timestamp },
			appendE: b.Append, seen: map[string]struct{}{},
		}
	case schemas.KindBusinessMetric:
		b := arrowschema.NewBusinessMetricBuilder(mem)
		return &eventTable[schemas.BusinessMetric]{
			name: "business_metrics", conn: conn, now: now, decode: dec.DecodeBusinessMetric, b: b,
			id:      func(e *schemas.BusinessMetric) string { return e.EventID },
			ts:      func(e *schemas.BusinessMetric) time.Time { return e.Timestamp },
			appendE: b.Append, seen: map[string]struct{}{},
		}
	}
	panic("BUG: newTable for kind " + kind.String())
}

package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/ingest/personal"
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
	id      func(*E) string
	ts      func(*E) time.Time
	appendE func(ev *E, src arrowschema.Source)
	b       recordBuilder
	// retention is the tables' retention_days: older events are refused
	// (ReasonOlderThanRetention) rather than stored and deleted by the
	// TTL at the next merge. 0 keeps everything.
	retention time.Duration

	seen     map[string]struct{}
	ids      hash.Hash // SHA-256 of the event ids of the rows, in row order
	days     []int32   // each row's partition, in row order
	newestTS time.Time
	rec      arrow.Record // built at the first insert attempt, kept for retries
}

// eventDecoder is a decoder of one event kind with room for a chunk of
// decoded events. Each has its own schemas.Decoder, so several decode
// chunks in parallel; it belongs to no batch.
type eventDecoder[E any] struct {
	prefix string
	decode func(data []byte, ev *E) (schemas.Info, error)
	// govern applies the personal-data rules to a decoded event; nil when
	// there are none (the hot path then does nothing more).
	govern func(ev *E)
	evs    []E
	infos  []schemas.Info
	errs   []error
}

func (d *eventDecoder[E]) decodeChunk(msgs []kafka.Message) {
	if len(d.evs) < len(msgs) {
		d.evs = append(d.evs, make([]E, len(msgs)-len(d.evs))...)
		d.infos = make([]schemas.Info, len(d.evs))
		d.errs = make([]error, len(d.evs))
	}
	for i := range msgs {
		msg := &msgs[i]
		d.infos[i] = schemas.Info{}
		if _, err := schemas.KindForMessage(header(*msg, schemas.SchemaHeader), msg.Topic, d.prefix); err != nil {
			d.errs[i] = err
			continue
		}
		d.infos[i], d.errs[i] = d.decode(msg.Value, &d.evs[i])
		if d.govern != nil && d.errs[i] == nil {
			d.govern(&d.evs[i])
		}
	}
}

func (t *eventTable[E]) add(dec chunkDecoder, i int, msg *kafka.Message) (schemas.Info, bool, error) {
	d, ok := dec.(*eventDecoder[E])
	if !ok {
		panic("BUG: a decoder of another event kind handed to table " + t.name)
	}
	info, err := d.infos[i], d.errs[i]
	if err != nil {
		return info, false, err
	}
	ev := &d.evs[i]
	ts := t.ts(ev)
	if t.retention > 0 {
		if oldest := t.now().Add(-t.retention); ts.Before(oldest) {
			return info, false, &schemas.DecodeError{Reason: schemas.ReasonOlderThanRetention, Path: "timestamp", Offset: -1,
				Msg: fmt.Sprintf("%s is older than the tables' retention of %d days (events from %s on are kept)",
					ts.UTC().Format(time.RFC3339Nano), int(t.retention/(24*time.Hour)), oldest.UTC().Format(time.RFC3339))}
		}
	}
	id := t.id(ev)
	if _, dup := t.seen[id]; dup {
		return info, true, nil
	}
	t.seen[id] = struct{}{}
	t.ids.Write([]byte(id))
	t.ids.Write([]byte{0})
	if ts.After(t.newestTS) {
		t.newestTS = ts
	}
	t.days = append(t.days, dayOf(ts))
	t.appendE(ev, arrowschema.Source{Topic: msg.Topic, Partition: int32(msg.Partition), Offset: msg.Offset, IngestedAt: t.now()})
	return info, false, nil
}

func (t *eventTable[E]) rows() int             { return len(t.seen) }
func (t *eventTable[E]) newest() time.Time     { return t.newestTS }
func (t *eventTable[E]) partition(i int) int32 { return t.days[i] }

// idDigest is the first 128 bits of the SHA-256 of the rows' event ids, in
// hex; an empty batch digests to that of no ids.
func (t *eventTable[E]) idDigest() string { return hex.EncodeToString(t.ids.Sum(nil)[:16]) }

func newIDHash() hash.Hash { return sha256.New() }

// dayOf is toDate(ts): days since 1970-01-01 in UTC.
func dayOf(ts time.Time) int32 { return int32(ts.Unix() / 86400) }

func (t *eventTable[E]) insert(ctx context.Context, lo, hi int, token string) error {
	if t.rec == nil {
		t.rec = t.b.NewRecord()
	}
	rec := t.rec
	if lo != 0 || hi != int(rec.NumRows()) {
		rec = rec.NewSlice(int64(lo), int64(hi))
		defer rec.Release()
	}
	return arrowch.Insert(ctx, t.conn, t.name, rec, token)
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
	t.ids.Reset()
	t.days = t.days[:0]
	t.newestTS = time.Time{}
}

// newDecoder returns a chunk decoder for one event kind, applying policy
// (nil: no personal-data rules) to every event it decodes. Outcomes carry
// no features or segment, so no rule applies to them.
func newDecoder(kind schemas.Kind, opts schemas.Options, prefix string, policy *personal.Policy) (chunkDecoder, error) {
	dec, err := schemas.NewDecoder(opts)
	if err != nil {
		return nil, err
	}
	switch kind {
	case schemas.KindInference:
		d := &eventDecoder[schemas.Inference]{prefix: prefix, decode: dec.DecodeInference}
		if policy != nil {
			d.govern = policy.NewHasher().Inference
		}
		return d, nil
	case schemas.KindOutcome:
		return &eventDecoder[schemas.Outcome]{prefix: prefix, decode: dec.DecodeOutcome}, nil
	case schemas.KindBusinessMetric:
		d := &eventDecoder[schemas.BusinessMetric]{prefix: prefix, decode: dec.DecodeBusinessMetric}
		if policy != nil {
			d.govern = policy.NewHasher().BusinessMetric
		}
		return d, nil
	}
	panic("BUG: newDecoder for kind " + kind.String())
}

// tableName is the ClickHouse table events of kind are stored in.
func tableName(kind schemas.Kind) string {
	switch kind {
	case schemas.KindInference:
		return "inferences"
	case schemas.KindOutcome:
		return "outcomes"
	case schemas.KindBusinessMetric:
		return "business_metrics"
	}
	panic("BUG: tableName for kind " + kind.String())
}

// newTable returns the batch for one event kind.
func newTable(kind schemas.Kind, conn driver.Conn, now func() time.Time, retention time.Duration) table {
	mem := memory.NewGoAllocator()
	switch kind {
	case schemas.KindInference:
		b := arrowschema.NewInferenceBuilder(mem)
		return &eventTable[schemas.Inference]{
			name: tableName(kind), conn: conn, now: now, b: b,
			id:      func(e *schemas.Inference) string { return e.EventID },
			ts:      func(e *schemas.Inference) time.Time { return e.Timestamp },
			appendE: b.Append, seen: map[string]struct{}{}, ids: newIDHash(), retention: retention,
		}
	case schemas.KindOutcome:
		b := arrowschema.NewOutcomeBuilder(mem)
		return &eventTable[schemas.Outcome]{
			name: tableName(kind), conn: conn, now: now, b: b,
			id:      func(e *schemas.Outcome) string { return e.EventID },
			ts:      func(e *schemas.Outcome) time.Time { return e.Timestamp },
			appendE: b.Append, seen: map[string]struct{}{}, ids: newIDHash(), retention: retention,
		}
	case schemas.KindBusinessMetric:
		b := arrowschema.NewBusinessMetricBuilder(mem)
		return &eventTable[schemas.BusinessMetric]{
			name: tableName(kind), conn: conn, now: now, b: b,
			id:      func(e *schemas.BusinessMetric) string { return e.EventID },
			ts:      func(e *schemas.BusinessMetric) time.Time { return e.Timestamp },
			appendE: b.Append, seen: map[string]struct{}{}, ids: newIDHash(), retention: retention,
		}
	}
	panic("BUG: newTable for kind " + kind.String())
}

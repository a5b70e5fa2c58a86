// Package arrowschema holds the Arrow schemas of the ClickHouse tables that
// take Kafka events (inferences, outcomes, business_metrics) and builders
// that append decoded events to Arrow records for batch inserts.
//
// It is a sub-package so that code that only decodes events (schemas) does
// not link Arrow.
//
// Column order and names are the contract with the DDL in deploy/: every
// table has the event columns first and the ingest metadata last
// (kafka_topic, kafka_partition, kafka_offset, ingested_at). Timestamps are
// timestamp[ms, UTC] (ClickHouse DateTime64(3, 'UTC')); model_id is a plain
// utf8 column (LowCardinality(String) is a storage choice of the DDL).
// Map entries are appended in key order, so one event always produces the
// same bytes: ClickHouse insert deduplication hashes the block, and a
// redelivered batch must hash the same.
package arrowschema

import (
	"slices"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/driftwatch/driftwatch/schemas"
)

// Source says where an event came from and when ingest read it.
type Source struct {
	Topic      string
	Partition  int32
	Offset     int64
	IngestedAt time.Time
}

var (
	tsMs     = &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}
	str      = arrow.BinaryTypes.String
	f64      = arrow.PrimitiveTypes.Float64
	strToF64 = arrow.MapOf(str, f64)
	strToStr = arrow.MapOf(str, str)
)

func field(name string, t arrow.DataType, nullable bool) arrow.Field {
	return arrow.Field{Name: name, Type: t, Nullable: nullable}
}

var metaFields = []arrow.Field{
	field("kafka_topic", str, false),
	field("kafka_partition", arrow.PrimitiveTypes.Int32, false),
	field("kafka_offset", arrow.PrimitiveTypes.Int64, false),
	field("ingested_at", tsMs, false),
}

// Inferences is the schema of the inferences table.
var Inferences = arrow.NewSchema(append([]arrow.Field{
	field("event_id", str, false),
	field("model_id", str, false),
	field("model_version", str, false),
	field("prediction_id", str, false),
	field("timestamp", tsMs, false),
	field("features_numeric", strToF64, false),
	field("features_categorical", strToStr, false),
	field("missing_features", arrow.ListOf(str), false),
	field("prediction_label", str, true),
	field("prediction_score", f64, true),
	field("prediction_value", f64, true),
	field("prediction_probabilities", strToF64, false),
	field("segment", strToStr, false),
	field("latency_ms", f64, true),
	field("shadow", arrow.FixedWidthTypes.Boolean, false),
}, metaFields...), nil)

// Outcomes is the schema of the outcomes table.
var Outcomes = arrow.NewSchema(append([]arrow.Field{
	field("event_id", str, false),
	field("model_id", str, false),
	field("prediction_id", str, false),
	field("timestamp", tsMs, false),
	field("actual_label", str, true),
	field("actual_value", f64, true),
}, metaFields...), nil)

// BusinessMetrics is the schema of the business_metrics table. model_id is
// empty for KPIs not attributed to a model.
var BusinessMetrics = arrow.NewSchema(append([]arrow.Field{
	field("event_id", str, false),
	field("metric", str, false),
	field("value", f64, false),
	field("timestamp", tsMs, false),
	field("model_id", str, false),
	field("segment", strToStr, false),
}, metaFields...), nil)

// builder is the part every table builder shares.
type builder struct {
	rb   *array.RecordBuilder
	keys []string
}

func (b *builder) str(i int) *array.StringBuilder  { return b.rb.Field(i).(*array.StringBuilder) }
func (b *builder) f64(i int) *array.Float64Builder { return b.rb.Field(i).(*array.Float64Builder) }
func (b *builder) ts(i int, t time.Time) {
	b.rb.Field(i).(*array.TimestampBuilder).Append(arrow.Timestamp(t.UnixMilli()))
}
func (b *builder) optStr(i int, v string, ok bool)  { appendOpt(b.str(i), v, ok) }
func (b *builder) optF64(i int, v float64, ok bool) { appendOpt(b.f64(i), v, ok) }

type appender[T any] interface {
	Append(T)
	AppendNull()
}

func appendOpt[T any](a appender[T], v T, ok bool) {
	if ok {
		a.Append(v)
	} else {
		a.AppendNull()
	}
}

func (b *builder) numMap(i int, m map[string]float64) {
	mb := b.rb.Field(i).(*array.MapBuilder)
	mb.Append(true)
	kb, vb := mb.KeyBuilder().(*array.StringBuilder), mb.ItemBuilder().(*array.Float64Builder)
	b.keys = schemas.SortedKeys(m, b.keys)
	for _, k := range b.keys {
		kb.Append(k)
		vb.Append(m[k])
	}
}

func (b *builder) strMap(i int, m map[string]string) {
	mb := b.rb.Field(i).(*array.MapBuilder)
	mb.Append(true)
	kb, vb := mb.KeyBuilder().(*array.StringBuilder), mb.ItemBuilder().(*array.StringBuilder)
	b.keys = schemas.SortedKeys(m, b.keys)
	for _, k := range b.keys {
		kb.Append(k)
		vb.Append(m[k])
	}
}

func (b *builder) meta(first int, src Source) {
	b.str(first).Append(src.Topic)
	b.rb.Field(first + 1).(*array.Int32Builder).Append(src.Partition)
	b.rb.Field(first + 2).(*array.Int64Builder).Append(src.Offset)
	b.ts(first+3, src.IngestedAt)
}

// Len returns the number of rows appended since the last NewRecord.
func (b *builder) Len() int { return b.rb.Field(0).Len() }

// NewRecord returns the rows appended so far as a record (the caller must
// Release it) and resets the builder for the next batch.
func (b *builder) NewRecord() arrow.Record { return b.rb.NewRecord() }

// Release frees the builder's buffers.
func (b *builder) Release() { b.rb.Release() }

// InferenceBuilder appends inferences to records of the Inferences schema.
// Not safe for concurrent use.
type InferenceBuilder struct{ builder }

// NewInferenceBuilder returns an empty InferenceBuilder.
func NewInferenceBuilder(mem memory.Allocator) *InferenceBuilder {
	return &InferenceBuilder{builder{rb: array.NewRecordBuilder(mem, Inferences)}}
}

// Append adds one row. Missing feature names are appended in sorted order.
func (b *InferenceBuilder) Append(ev *schemas.Inference, src Source) {
	b.str(0).Append(ev.EventID)
	b.str(1).Append(ev.ModelID)
	b.str(2).Append(ev.ModelVersion)
	b.str(3).Append(ev.PredictionID)
	b.ts(4, ev.Timestamp)
	b.numMap(5, ev.Numeric)
	b.strMap(6, ev.Categorical)
	lb := b.rb.Field(7).(*array.ListBuilder)
	lb.Append(true)
	vb := lb.ValueBuilder().(*array.StringBuilder)
	b.keys = append(b.keys[:0], ev.MissingFeatures...)
	slices.Sort(b.keys)
	for _, k := range b.keys {
		vb.Append(k)
	}
	p := &ev.Prediction
	b.optStr(8, p.Label, p.HasLabel)
	b.optF64(9, p.Score, p.HasScore)
	b.optF64(10, p.Value, p.HasValue)
	b.numMap(11, p.Probabilities)
	b.strMap(12, ev.Segment)
	b.optF64(13, ev.LatencyMs, ev.HasLatency)
	b.rb.Field(14).(*array.BooleanBuilder).Append(ev.Shadow)
	b.meta(15, src)
}

// OutcomeBuilder appends outcomes to records of the Outcomes schema.
type OutcomeBuilder struct{ builder }

// NewOutcomeBuilder returns an empty OutcomeBuilder.
func NewOutcomeBuilder(mem memory.Allocator) *OutcomeBuilder {
	return &OutcomeBuilder{builder{rb: array.NewRecordBuilder(mem, Outcomes)}}
}

// Append adds one row.
func (b *OutcomeBuilder) Append(ev *schemas.Outcome, src Source) {
	b.str(0).Append(ev.EventID)
	b.str(1).Append(ev.ModelID)
	b.str(2).Append(ev.PredictionID)
	b.ts(3, ev.Timestamp)
	b.optStr(4, ev.Actual.Label, ev.Actual.HasLabel)
	b.optF64(5, ev.Actual.Value, ev.Actual.HasValue)
	b.meta(6, src)
}

// BusinessMetricBuilder appends business metrics to records of the
// BusinessMetrics schema.
type BusinessMetricBuilder struct{ builder }

// NewBusinessMetricBuilder returns an empty BusinessMetricBuilder.
func NewBusinessMetricBuilder(mem memory.Allocator) *BusinessMetricBuilder {
	return &BusinessMetricBuilder{builder{rb: array.NewRecordBuilder(mem, BusinessMetrics)}}
}

// Append adds one row.
func (b *BusinessMetricBuilder) Append(ev *schemas.BusinessMetric, src Source) {
	b.str(0).Append(ev.EventID)
	b.str(1).Append(ev.Metric)
	b.f64(2).Append(ev.Value)
	b.ts(3, ev.Timestamp)
	b.str(4).Append(ev.ModelID)
	b.strMap(5, ev.Segment)
	b.meta(6, src)
}

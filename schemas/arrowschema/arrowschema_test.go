package arrowschema

import (
	"os"
	"slices"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/driftwatch/driftwatch/schemas"
)

func decoder(t *testing.T) *schemas.Decoder {
	d, err := schemas.NewDecoder(schemas.Options{Now: func() time.Time { return time.Date(2025, 11, 21, 0, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestInferenceBuilder(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	d := decoder(t)
	b := NewInferenceBuilder(mem)
	defer b.Release()

	data, err := os.ReadFile("../testdata/valid/inference-classifier.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev schemas.Inference
	if _, err := d.DecodeInference(data, &ev); err != nil {
		t.Fatal(err)
	}
	ingested := time.Date(2025, 11, 20, 14, 0, 1, 0, time.UTC)
	b.Append(&ev, Source{Topic: "driftwatch.inferences", Partition: 3, Offset: 42, IngestedAt: ingested})
	data, _ = os.ReadFile("../testdata/valid/inference-regressor.json")
	if _, err := d.DecodeInference(data, &ev); err != nil {
		t.Fatal(err)
	}
	b.Append(&ev, Source{Topic: "driftwatch.inferences", Partition: 3, Offset: 43, IngestedAt: ingested})
	if b.Len() != 2 {
		t.Fatalf("Len = %d", b.Len())
	}
	rec := b.NewRecord()
	defer rec.Release()
	if !rec.Schema().Equal(Inferences) || rec.NumRows() != 2 {
		t.Fatalf("schema %v rows %d", rec.Schema(), rec.NumRows())
	}
	col := func(name string) arrow.Array {
		idx := rec.Schema().FieldIndices(name)
		if len(idx) != 1 {
			t.Fatalf("no column %s", name)
		}
		return rec.Column(idx[0])
	}
	if got := col("event_id").(*array.String).Value(0); got != "evt-000001" {
		t.Errorf("event_id %q", got)
	}
	// 1763647200123 ms, from the fixture.
	if got := col("timestamp").(*array.Timestamp).Value(0); got != 1763647200123 {
		t.Errorf("timestamp %d", got)
	}
	// Regressor fixture: 2025-11-20T13:59:59.123456789+01:00 = 12:59:59.123 UTC.
	if got := col("timestamp").(*array.Timestamp).Value(1); got != arrow.Timestamp(time.Date(2025, 11, 20, 12, 59, 59, 123e6, time.UTC).UnixMilli()) {
		t.Errorf("timestamp[1] %d", got)
	}
	num := col("features_numeric").(*array.Map)
	keys := num.Keys().(*array.String)
	items := num.Items().(*array.Float64)
	start, end := num.ValueOffsets(0)
	var got []string
	var vals []float64
	for i := start; i < end; i++ {
		got = append(got, keys.Value(int(i)))
		vals = append(vals, items.Value(int(i)))
	}
	// amount 129.99, hour 23, is_foreign true→1; sorted by key.
	if want := []string{"amount", "hour", "is_foreign"}; !slices.Equal(got, want) || vals[0] != 129.99 || vals[1] != 23 || vals[2] != 1 {
		t.Errorf("numeric features %v %v", got, vals)
	}
	if m := col("missing_features").(*array.List); m.ListValues().(*array.String).Value(0) != "card_age_days" {
		t.Errorf("missing_features %v", m)
	}
	if l := col("prediction_label").(*array.String); l.Value(0) != "legit" || !l.IsNull(1) {
		t.Errorf("prediction_label %v", l)
	}
	if v := col("prediction_value").(*array.Float64); !v.IsNull(0) || v.Value(1) != 742.5 {
		t.Errorf("prediction_value %v", v)
	}
	if lat := col("latency_ms").(*array.Float64); lat.Value(0) != 3.2 || !lat.IsNull(1) {
		t.Errorf("latency_ms %v", lat)
	}
	if off := col("kafka_offset").(*array.Int64); off.Value(1) != 43 {
		t.Errorf("kafka_offset %v", off)
	}
	if b.Len() != 0 {
		t.Errorf("builder not reset after NewRecord")
	}
}

func TestOutcomeAndBusinessMetricBuilders(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	d := decoder(t)
	ob := NewOutcomeBuilder(mem)
	defer ob.Release()
	data, _ := os.ReadFile("../testdata/valid/outcome-label.json")
	var out schemas.Outcome
	if _, err := d.DecodeOutcome(data, &out); err != nil {
		t.Fatal(err)
	}
	ob.Append(&out, Source{Topic: "driftwatch.outcomes"})
	rec := ob.NewRecord()
	if !rec.Schema().Equal(Outcomes) || rec.Column(4).(*array.String).Value(0) != "fraud" || !rec.Column(5).IsNull(0) {
		t.Errorf("outcome record %v", rec)
	}
	rec.Release()

	bb := NewBusinessMetricBuilder(mem)
	defer bb.Release()
	var bm schemas.BusinessMetric
	for _, f := range []string{"business-metric-revenue.json", "business-metric-global.json"} {
		data, _ := os.ReadFile("../testdata/valid/" + f)
		if _, err := d.DecodeBusinessMetric(data, &bm); err != nil {
			t.Fatal(err)
		}
		bb.Append(&bm, Source{Topic: "driftwatch.business-metrics"})
	}
	rec = bb.NewRecord()
	defer rec.Release()
	if !rec.Schema().Equal(BusinessMetrics) || rec.NumRows() != 2 || rec.Column(4).(*array.String).Value(1) != "" ||
		rec.Column(2).(*array.Float64).Value(0) != 10234.5 {
		t.Errorf("business metric record %v", rec)
	}
}

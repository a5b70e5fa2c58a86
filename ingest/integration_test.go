package ingest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/migration"
	"github.com/driftwatch/driftwatch/internal/testenv"
	"github.com/driftwatch/driftwatch/schemas"
)

// stack is a fresh topic prefix and ClickHouse database on the real
// services, so tests never see each other's data.
type stack struct {
	brokers []string
	kopts   kafkaio.Options
	conn    driver.Conn
	db      string
	chURL   string
}

func newStack(t *testing.T) *stack {
	t.Helper()
	brokers := testenv.KafkaBrokers(t)
	base := testenv.ClickHouseURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id := strconv.FormatInt(time.Now().UnixNano(), 36)
	s := &stack{brokers: brokers, db: "ingest_test_" + id}
	s.kopts = kafkaio.Options{Brokers: brokers, TopicPrefix: "ingest-test-" + id + "."}
	s.chURL = base[:strings.LastIndex(base, "/")] + "/" + s.db
	conn, err := chclient.Open(ctx, chclient.Config{URL: s.chURL}, true)
	if err != nil {
		t.Fatal(err)
	}
	s.conn = conn
	t.Cleanup(func() {
		_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+s.db)
		conn.Close()
	})
	if err := migration.Apply(ctx, conn, migration.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	var specs []kafkaio.TopicSpec
	for _, n := range []string{"inferences", "outcomes", "business-metrics"} {
		specs = append(specs, kafkaio.TopicSpec{Name: s.kopts.Topic(n), Partitions: 3})
	}
	specs = append(specs, kafkaio.Specs(s.kopts, schemas.TopicFor(schemas.TopicDeadLetters))[0])
	if err := kafkaio.EnsureTopics(ctx, kafkaio.Options{Brokers: brokers}, specs); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *stack) produce(t *testing.T, topic string, msgs ...kafka.Message) {
	t.Helper()
	w, err := kafkaio.NewWriter(s.kopts, topic)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
}

// produceBig is produce with room for oversized events (the malformed
// too_large ones exceed the writer's default 1 MiB batch limit).
func (s *stack) produceBig(t *testing.T, topic string, msgs ...kafka.Message) {
	t.Helper()
	w, err := kafkaio.NewWriter(s.kopts, topic)
	if err != nil {
		t.Fatal(err)
	}
	w.BatchBytes = 4 << 20
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
}

func (s *stack) count(t *testing.T, query string) uint64 {
	t.Helper()
	var n uint64
	if err := s.conn.QueryRow(context.Background(), query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func inferenceJSON(i int, ts time.Time) string {
	return fmt.Sprintf(`{"event_id":"ev-%d","model_id":"m%d","model_version":"v1","prediction_id":"p-%d","timestamp":%d,`+
		`"features":{"age":%d,"income":%.2f,"country":"c%d","member":true,"note":null},`+
		`"prediction":{"score":0.%02d,"label":"yes"},"segment":{"region":"eu"},"latency_ms":3.5}`,
		i, i%3, i, ts.UnixMilli(), 20+i%50, 1000.5+float64(i), i%4, i%100)
}

func TestIngestEndToEnd(t *testing.T) {
	s := newStack(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	const valid = 3000
	var msgs []kafka.Message
	for i := 0; i < valid; i++ {
		msgs = append(msgs, kafka.Message{Key: []byte(fmt.Sprintf("m%d", i%3)), Value: []byte(inferenceJSON(i, now.Add(-time.Duration(i)*time.Second)))})
	}
	// Producer duplicates: the same events again, unchanged.
	msgs = append(msgs, msgs[:100]...)
	bad := []struct {
		value, reason string
		headers       []kafka.Header
	}{
		{`{"event_id":"x1"`, "invalid_json", nil},
		{`{"event_id":"x2","model_id":"m","model_version":"v","prediction_id":"p","timestamp":"2026-01-01T00:00:00Z","features":{"a":NaN},"prediction":{"score":1}}`, "non_finite_number", nil},
		{`{"event_id":"x3","model_id":"bad model","model_version":"v","prediction_id":"p","timestamp":"2026-01-01T00:00:00Z","features":{},"prediction":{"score":1}}`, "invalid_model_id", nil},
		{`{"event_id":"x4","model_id":"m","model_version":"v","prediction_id":"p","timestamp":"yesterday","features":{},"prediction":{"score":1}}`, "invalid_timestamp", nil},
		{inferenceJSON(999999, now), "unsupported_schema", []kafka.Header{{Key: "schema", Value: []byte("driftwatch.inference.v9")}}},
		{"{\"event_id\":\"x5\xff\"}", "invalid_utf8", nil},
	}
	for _, b := range bad {
		msgs = append(msgs, kafka.Message{Key: []byte("bad"), Value: []byte(b.value), Headers: append([]kafka.Header{{Key: "trace", Value: []byte("t-1")}}, b.headers...)})
	}
	s.produce(t, "inferences", msgs...)
	s.produce(t, "outcomes", kafka.Message{Key: []byte("m0"), Value: []byte(fmt.Sprintf(`{"event_id":"o-0","model_id":"m0","prediction_id":"p-0","timestamp":%d,"actual":{"label":"yes"}}`, now.UnixMilli()))})
	s.produce(t, "business-metrics", kafka.Message{Value: []byte(fmt.Sprintf(`{"event_id":"b-0","metric":"revenue","value":12.5,"timestamp":%d}`, now.UnixMilli()))})

	reg := prometheus.NewRegistry()
	ing, err := New(Options{Kafka: s.kopts, Settings: Settings{ConsumerGroup: "g", BatchRows: 1000, BatchAge: 200 * time.Millisecond}, Conn: s.conn, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ing.Run(ctx) }()
	deadline := time.Now().Add(90 * time.Second)
	for s.count(t, "SELECT count() FROM inferences FINAL") < valid || s.count(t, "SELECT count() FROM outcomes") < 1 || s.count(t, "SELECT count() FROM business_metrics") < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %d inferences", s.count(t, "SELECT count() FROM inferences FINAL"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Wait for the dead letters of the last batch before stopping.
	for testutil.ToFloat64(ing.m.consumed.WithLabelValues(s.kopts.Topic("inferences"))) < float64(len(msgs)) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	ing.Close()

	if n := s.count(t, "SELECT uniqExact(event_id) FROM inferences"); n != valid {
		t.Errorf("distinct event ids = %d, want %d", n, valid)
	}
	var (
		num    map[string]float64
		cat    map[string]string
		miss   []string
		score  *float64
		label  *string
		region map[string]string
	)
	if err := s.conn.QueryRow(context.Background(), "SELECT features_numeric, features_categorical, missing_features, prediction_score, prediction_label, segment FROM inferences WHERE event_id = 'ev-7'").
		Scan(&num, &cat, &miss, &score, &label, &region); err != nil {
		t.Fatal(err)
	}
	if num["age"] != 27 || num["income"] != 1007.5 || num["member"] != 1 || cat["country"] != "c3" || fmt.Sprint(miss) != "[note]" || *score != 0.07 || *label != "yes" || region["region"] != "eu" {
		t.Errorf("row ev-7 = %v %v %v %v %v %v", num, cat, miss, *score, *label, region)
	}

	// Dead letters: original key, value and headers, plus the reason.
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: s.brokers, Topic: s.kopts.Topic("dead-letters"), GroupID: "check", StartOffset: kafka.FirstOffset, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	got := map[string]kafka.Message{}
	rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer rcancel()
	for len(got) < len(bad) {
		m, err := r.ReadMessage(rctx)
		if err != nil {
			t.Fatalf("read dead letters (%d of %d): %v", len(got), len(bad), err)
		}
		got[string(m.Value)] = m
	}
	for _, b := range bad {
		m, ok := got[b.value]
		if !ok {
			t.Errorf("no dead letter for %q", b.value)
			continue
		}
		h := map[string]string{}
		for _, kv := range m.Headers {
			h[kv.Key] = string(kv.Value)
		}
		if h[schemas.HeaderReason] != b.reason || h["trace"] != "t-1" || string(m.Key) != "bad" || h[schemas.HeaderSourceTopic] != s.kopts.Topic("inferences") || h[schemas.HeaderSourceOffset] == "" || h[schemas.HeaderError] == "" {
			t.Errorf("dead letter for %.30q: key %q headers %v, want reason %s", b.value, m.Key, h, b.reason)
		}
	}
	// Duplicates in one batch are dropped before the insert; those in
	// different batches are written and collapse under FINAL.
	written := testutil.ToFloat64(ing.m.written.WithLabelValues(s.kopts.Topic("inferences")))
	dropped := testutil.ToFloat64(ing.m.duplicates.WithLabelValues(s.kopts.Topic("inferences")))
	if written+dropped != valid+100 || written < valid {
		t.Errorf("written %v + dropped duplicates %v, want %d", written, dropped, valid+100)
	}
	if n := s.count(t, "SELECT count() FROM inferences FINAL"); n != valid {
		t.Errorf("count() FINAL = %d, want %d", n, valid)
	}
	if v := testutil.ToFloat64(ing.m.deadLettered.WithLabelValues(s.kopts.Topic("inferences"), "non_finite_number")); v != 1 {
		t.Errorf("dead-lettered{non_finite_number} = %v", v)
	}
}

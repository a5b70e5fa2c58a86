package ingest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/internal/loadgen"
	"github.com/driftwatch/driftwatch/internal/testenv"
	"github.com/driftwatch/driftwatch/schemas"
)

// TestMalformedEventsGoToDeadLetters sends 1 % malformed events among
// valid ones, taking in turn each of the 36 defects loadgen knows (broken
// JSON, wrong types, NaN, missing fields, oversized, bad timestamps,
// invalid UTF-8, …), so every defect is sent whatever the seed: each must
// arrive in the dead-letter topic with its reason, and every valid event
// in ClickHouse. The seed (logged) comes from DRIFTWATCH_TEST_SEED when set.
func TestMalformedEventsGoToDeadLetters(t *testing.T) {
	s := newStack(t)
	cfg := loadgen.DefaultConfig()
	cfg.Seed = uint64(testenv.Seed(t))
	cfg.Models = 2
	cfg.MalformedShare = 0.01
	cfg.MalformedInTurn = true
	cfg.DuplicateShare = 0.01
	cfg.Start = time.Now().UTC().Add(-time.Hour)
	cfg.Step = time.Millisecond
	cfg.Outcomes.Share = 0.1
	cfg.RecordIDs = true
	gen, err := loadgen.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const ticks = 30_000
	byTopic := map[string][]kafka.Message{}
	// Two malformed events can be the same bytes (truncations inside the
	// same prefix), so the events are kept by value, several to a value.
	sentAs := map[string][]loadgen.Event{} // value → the malformed events with it
	sentDefects := map[string]int{}
	malformed := 0
	for gen.Ticks() < ticks {
		ev := gen.Next()
		m := kafka.Message{Key: ev.Key, Value: ev.Value}
		for _, h := range ev.Headers {
			m.Headers = append(m.Headers, kafka.Header{Key: h.Key, Value: h.Value})
		}
		byTopic[ev.Topic] = append(byTopic[ev.Topic], m)
		if ev.Malformed != "" {
			sentAs[string(ev.Value)] = append(sentAs[string(ev.Value)], ev)
			sentDefects[ev.Defect]++
			malformed++
		}
	}
	st := gen.Stats()
	if malformed < 200 {
		t.Fatalf("only %d malformed events generated", malformed)
	}
	defects := loadgen.Defects()
	if len(defects) != 36 {
		t.Errorf("loadgen knows %d defects, this test's doc says 36", len(defects))
	}
	for _, d := range defects {
		if sentDefects[d.Name] == 0 {
			t.Fatalf("defect %s not sent among %d malformed events", d.Name, malformed)
		}
	}
	for topic, msgs := range byTopic {
		s.produceBig(t, topic, msgs...)
	}

	reg := prometheus.NewRegistry()
	ing, err := New(Options{Kafka: s.kopts, Settings: Settings{ConsumerGroup: "g", BatchRows: 5000, BatchAge: 200 * time.Millisecond}, Conn: s.conn, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ing.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		ing.Close()
	}()

	// Every dead letter, matched to the event it came from.
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: s.brokers, Topic: s.kopts.Topic("dead-letters"), GroupID: "check", StartOffset: kafka.FirstOffset, MaxWait: 200 * time.Millisecond, MaxBytes: 8 << 20})
	defer r.Close()
	rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer rcancel()
	seen := map[schemas.Reason]int{}
	seenDefects := map[string]int{}
	for got := 0; got < malformed; got++ {
		m, err := r.ReadMessage(rctx)
		if err != nil {
			t.Fatalf("read dead letter %d of %d: %v", got+1, malformed, err)
		}
		evs := sentAs[string(m.Value)]
		if len(evs) == 0 {
			t.Fatalf("dead letter for a valid event, or one dead-lettered twice: %.200s (reason %s)", m.Value, header(m, schemas.HeaderReason))
		}
		// Events with the same bytes have the same reason: take the one
		// with the reason given, if any.
		i := slices.IndexFunc(evs, func(ev loadgen.Event) bool { return string(ev.Malformed) == header(m, schemas.HeaderReason) })
		if i < 0 {
			i = 0
			t.Errorf("dead letter %.80q (defect %s): reason %s (%s), want %s", m.Value, evs[0].Defect, header(m, schemas.HeaderReason), header(m, schemas.HeaderError), evs[0].Malformed)
		}
		ev := evs[i]
		sentAs[string(m.Value)] = slices.Delete(evs, i, i+1)
		seen[ev.Malformed]++
		seenDefects[ev.Defect]++
	}
	for _, d := range defects {
		if seenDefects[d.Name] != sentDefects[d.Name] {
			t.Errorf("defect %s: %d dead letters, %d sent", d.Name, seenDefects[d.Name], sentDefects[d.Name])
		}
	}
	for _, r := range schemas.Reasons() {
		if seen[r] == 0 {
			t.Errorf("no dead letter with reason %s among %d", r, malformed)
		}
	}
	// The dead_letters table holds the same events once each, by reason,
	// attributed to their model (read from the payload or the key).
	deadline := time.Now().Add(time.Minute)
	for s.count(t, "SELECT count() FROM dead_letters FINAL") < uint64(malformed) && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if n := s.count(t, "SELECT count() FROM dead_letters FINAL"); n != uint64(malformed) {
		t.Errorf("dead_letters FINAL = %d rows, want %d", n, malformed)
	}
	for r, n := range seen {
		if got := s.count(t, fmt.Sprintf("SELECT count() FROM dead_letters FINAL WHERE reason = '%s'", r)); got != uint64(n) {
			t.Errorf("dead_letters with reason %s: %d, want %d", r, got, n)
		}
	}
	// An invalid model id (in the payload and the key) names no model.
	if n := s.count(t, "SELECT count() FROM dead_letters FINAL WHERE (model_id NOT IN ('model-0', 'model-1') AND reason != 'invalid_model_id') "+
		"OR (model_id != '' AND reason = 'invalid_model_id') OR kind != 'inferences' OR error = '' OR payload_bytes < length(payload) OR length(payload) > 4096"); n != 0 {
		t.Errorf("%d dead_letters rows without their model, kind, error or payload", n)
	}
	if n := s.count(t, fmt.Sprintf("SELECT count() FROM dead_letters FINAL WHERE timestamp < toDateTime64('%s', 3, 'UTC') AND reason NOT IN ('invalid_timestamp', 'timestamp_out_of_range')",
		cfg.Start.Add(-time.Minute).Format("2006-01-02 15:04:05"))); n != 0 {
		t.Errorf("%d dead_letters rows with an event time before the generated events", n)
	}
	want := uint64(st.Inferences)
	deadline = time.Now().Add(time.Minute)
	for s.count(t, "SELECT count() FROM inferences FINAL") < want && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if n := s.count(t, "SELECT count() FROM inferences FINAL"); n != want {
		t.Errorf("inferences FINAL = %d, want the %d valid ones", n, want)
	}
	if n := s.count(t, "SELECT uniqExact(event_id) FROM inferences"); n != uint64(len(gen.InferenceIDs())) {
		t.Errorf("distinct inference ids = %d, want %d", n, len(gen.InferenceIDs()))
	}
	t.Logf("%d valid inferences, %d malformed by reason %v, by defect %v", want, malformed, seen, seenDefects)
}

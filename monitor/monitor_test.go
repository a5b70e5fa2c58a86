package monitor

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/ingest"
	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/loadgen"
	"github.com/driftwatch/driftwatch/internal/migration"
	"github.com/driftwatch/driftwatch/internal/testenv"
	"github.com/driftwatch/driftwatch/monitor/policy"
	"github.com/driftwatch/driftwatch/schemas"
)

// world is a fresh database and topic prefix on the shared stack, filled
// by driftwatch's generator through Kafka and ingest.
type world struct {
	brokers []string
	kopts   kafkaio.Options
	conn    driver.Conn
	start   time.Time
	base    map[string]int // valid events already sent per topic
}

func newWorld(t *testing.T) *world {
	t.Helper()
	brokers := testenv.KafkaBrokers(t)
	base := testenv.ClickHouseURL(t)
	ctx := context.Background()
	id := strconv.FormatInt(time.Now().UnixNano(), 36)
	w := &world{brokers: brokers, kopts: kafkaio.Options{Brokers: brokers, TopicPrefix: "monitor-test-" + id + "."}}
	conn, err := chclient.Open(ctx, chclient.Config{URL: base[:strings.LastIndex(base, "/")] + "/monitor_test_" + id}, true)
	if err != nil {
		t.Fatal(err)
	}
	w.conn = conn
	t.Cleanup(func() { conn.Exec(context.Background(), "DROP DATABASE IF EXISTS monitor_test_"+id); conn.Close() })
	if err := migration.Apply(ctx, conn, migration.Defaults()); err != nil {
		t.Fatal(err)
	}
	var specs []kafkaio.TopicSpec
	for _, n := range []string{"inferences", "outcomes", "business-metrics", "retrain-triggers"} {
		specs = append(specs, kafkaio.TopicSpec{Name: w.kopts.Topic(n), Partitions: 3})
	}
	specs = append(specs, ingest.DeadLetterTopicSpec(w.kopts, 1))
	if err := kafkaio.EnsureTopics(ctx, brokers, specs); err != nil {
		t.Fatal(err)
	}
	return w
}

// fill generates hours of inferences (perHour each hour) with the given
// changes, sends them to Kafka and ingests them.
func (w *world) fill(t *testing.T, hours, perHour int, changes ...string) {
	t.Helper()
	cfg := loadgen.DefaultConfig()
	cfg.Seed = 42
	cfg.Start = w.start
	cfg.Step = time.Hour / time.Duration(perHour)
	cfg.Outcomes.Share = 0
	cfg.BusinessMetrics.Enabled = false
	for _, c := range changes {
		ch, err := loadgen.ParseChange(c, cfg.Start)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Changes = append(cfg.Changes, ch)
	}
	gen, err := loadgen.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	wr, err := kafkaio.NewWriter(w.kopts, "inferences")
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close()
	var msgs []kafka.Message
	for gen.Ticks() < int64(hours*perHour) {
		ev := gen.Next()
		if ev.Topic != "inferences" {
			continue
		}
		msgs = append(msgs, kafka.Message{Key: ev.Key, Value: ev.Value})
	}
	if err := wr.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	ing, err := ingest.New(ingest.Options{Kafka: w.kopts, Conn: w.conn, Registerer: prometheus.NewRegistry(), BatchAge: 200 * time.Millisecond,
		Limits: ingestLimits()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ing.Run(ctx) }()
	deadline := time.Now().Add(2 * time.Minute)
	for w.count(t, "SELECT count() FROM inferences FINAL") < uint64(gen.Stats().Inferences) {
		if time.Now().After(deadline) {
			t.Fatalf("ingest: %d of %d", w.count(t, "SELECT count() FROM inferences FINAL"), gen.Stats().Inferences)
		}
		time.Sleep(200 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ing.Close()
}

func (w *world) count(t *testing.T, q string) uint64 {
	t.Helper()
	var n uint64
	if err := w.conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func (w *world) monitor(t *testing.T, triggers *kafka.Writer) *Monitor {
	t.Helper()
	pol := policy.Default()
	m, err := New(Options{Conn: w.conn, Triggers: triggers, Window: time.Hour, Step: time.Hour, ReferenceMode: ReferenceFirst, Reference: time.Hour,
		Lookback: 48 * time.Hour, Policy: pol, Trigger: DefaultTriggerConfig(), Registerer: prometheus.NewRegistry(),
		Now: func() time.Time { return w.start.Add(40 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (w *world) triggersSent(t *testing.T) int {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(w.brokers...)}
	res, err := client.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
		w.kopts.Topic("retrain-triggers"): {kafka.LastOffsetOf(0), kafka.LastOffsetOf(1), kafka.LastOffsetOf(2)}}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range res.Topics[w.kopts.Topic("retrain-triggers")] {
		n += int(p.LastOffset)
	}
	return n
}

// TestDriftEndToEnd: 24 unchanged windows → no drift, no trigger; a mean
// shift of two features → those two flagged, one trigger; a window with
// too few rows → insufficient; a restarted monitor → no repeated trigger.
func TestDriftEndToEnd(t *testing.T) {
	w := newWorld(t)
	w.start = time.Now().UTC().Truncate(time.Hour).Add(-40 * time.Hour)
	// 25 unchanged hours (the first is the reference), then f3 and f7
	// shifted by 2 standard deviations for 4 more hours.
	w.fill(t, 29, 2000, "mean_shift:f3:2.0@+25h", "mean_shift:f7:2.0@+25h")
	tw, err := kafkaio.NewWriter(w.kopts, "retrain-triggers")
	if err != nil {
		t.Fatal(err)
	}
	defer tw.Close()
	m := w.monitor(t, tw)
	ctx := context.Background()
	models, err := m.Models(ctx, w.start.Add(40*time.Hour))
	if err != nil || !slices.Equal(models, []string{"model-0"}) {
		t.Fatalf("models %v, %v", models, err)
	}

	for h := 2; h <= 25; h++ {
		res, err := m.Evaluate(ctx, "model-0", w.start.Add(time.Duration(h)*time.Hour))
		if err != nil {
			t.Fatalf("window %d: %v", h, err)
		}
		if res.Skipped != "" || len(res.Verdict.Drifted) != 0 || len(res.Decisions) != 0 {
			t.Errorf("unchanged window ending +%dh: skipped %q drifted %v decisions %v", h, res.Skipped, res.Verdict.Drifted, res.Decisions)
		}
	}
	if n := w.triggersSent(t); n != 0 {
		t.Fatalf("%d triggers after 24 unchanged windows", n)
	}

	var published int
	for h := 26; h <= 29; h++ {
		res, err := m.Evaluate(ctx, "model-0", w.start.Add(time.Duration(h)*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		var inputs []string
		for _, f := range res.Verdict.Drifted {
			if !strings.HasPrefix(f, "__") {
				inputs = append(inputs, f)
			}
		}
		if !slices.Equal(inputs, []string{"f3", "f7"}) {
			t.Errorf("window ending +%dh: drifted inputs %v, want [f3 f7]", h, inputs)
		}
		for _, d := range res.Decisions {
			t.Logf("window +%dh: %s trigger %s", h, d.Trigger.Reason, d.Outcome)
			if d.Outcome == "published" {
				published++
				if d.Trigger.Reason != "feature_drift" || len(d.Trigger.Evidence) == 0 {
					t.Errorf("trigger %+v", d.Trigger)
				}
			}
		}
		if h == 26 && len(res.Decisions) != 0 {
			t.Errorf("a trigger after one drifted window (consecutive 2): %v", res.Decisions)
		}
	}
	if published != 1 || w.triggersSent(t) != 1 || w.count(t, "SELECT count() FROM retrain_triggers") != 1 {
		t.Errorf("published %d, Kafka holds %d, table holds %d; want 1 each", published, w.triggersSent(t), w.count(t, "SELECT count() FROM retrain_triggers"))
	}

	// A window with 33 rows (one minute of data) is insufficient.
	res, err := m.Evaluate(ctx, "model-0", w.start.Add(29*time.Hour+59*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Verdict.Drifted) != 0 || len(res.Verdict.Insufficient) == 0 || len(res.Decisions) != 0 {
		t.Errorf("sparse window: drifted %v insufficient %v decisions %v", res.Verdict.Drifted, res.Verdict.Insufficient, res.Decisions)
	}

	// A restarted monitor re-evaluates the same windows: nothing repeats.
	m2 := w.monitor(t, tw)
	for h := 27; h <= 29; h++ {
		res, err := m2.Evaluate(ctx, "model-0", w.start.Add(time.Duration(h)*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range res.Decisions {
			if d.Outcome == "published" {
				t.Errorf("restarted monitor published again: %+v", d)
			}
		}
	}
	if n := w.triggersSent(t); n != 1 {
		t.Errorf("Kafka holds %d triggers after the restart, want 1", n)
	}
	// drift_results holds every window's rows, with the verdicts.
	if n := w.count(t, "SELECT count() FROM drift_results FINAL WHERE method = 'verdict' AND feature = 'f3' AND sustained"); n < 3 {
		t.Errorf("sustained f3 verdicts %d, want >= 3", n)
	}
	testAPI(t, m2, w)
}

func call(t *testing.T, h http.Handler, method, path, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("%s %s: %d %q: %v", method, path, rec.Code, rec.Body.String(), err)
	}
	return rec.Code, out
}

func testAPI(t *testing.T, m *Monitor, w *world) {
	h := m.API()
	code, out := call(t, h, "GET", "/api/v1/models", "")
	models, _ := out["models"].([]any)
	if code != 200 || len(models) != 1 || models[0].(map[string]any)["model_id"] != "model-0" {
		t.Errorf("models: %d %v", code, out)
	}
	code, out = call(t, h, "GET", "/api/v1/models/model-0/results", "")
	if rows, _ := out["results"].([]any); code != 200 || len(rows) < 50 {
		t.Errorf("results: %d, %d rows", code, len(rows))
	}
	code, out = call(t, h, "GET", "/api/v1/models/model-0/features/f3/history?method=psi&limit=5", "")
	hist, _ := out["history"].([]any)
	if code != 200 || len(hist) != 5 || hist[0].(map[string]any)["method"] != "psi" {
		t.Errorf("history: %d %v", code, out)
	}
	if code, out = call(t, h, "GET", "/api/v1/models/model-0/features/f3/history?limit=zero", ""); code != 400 {
		t.Errorf("bad limit: %d %v", code, out)
	}
	code, out = call(t, h, "GET", "/api/v1/triggers?model=model-0", "")
	if trig, _ := out["triggers"].([]any); code != 200 || len(trig) != 1 || trig[0].(map[string]any)["reason"] != "feature_drift" {
		t.Errorf("triggers: %d %v", code, out)
	}
	code, out = call(t, h, "POST", "/api/v1/models/model-0/triggers", `{"note":"new data","idempotency_key":"ticket-42"}`)
	if code != 201 || out["outcome"] != "published" {
		t.Errorf("manual: %d %v", code, out)
	}
	code, out = call(t, h, "POST", "/api/v1/models/model-0/triggers", `{"note":"new data","idempotency_key":"ticket-42"}`)
	if code != 200 || out["outcome"] != "duplicate" {
		t.Errorf("manual again: %d %v", code, out)
	}
	if code, out = call(t, h, "POST", "/api/v1/models/bad%20model/triggers", ``); code != 400 {
		t.Errorf("bad model: %d %v", code, out)
	}
	if code, out = call(t, h, "POST", "/api/v1/models/model-0/triggers", `{"nope":1}`); code != 400 {
		t.Errorf("unknown field: %d %v", code, out)
	}
	if n := w.triggersSent(t); n != 2 {
		t.Errorf("Kafka holds %d triggers, want 2 (drift + manual)", n)
	}
}

func ingestLimits() schemas.Limits { return schemas.Limits{} }

// TestRunCatchesUp starts Run after the drift began: its first round
// evaluates the window before the current one too, so the drift is
// sustained — and triggers — at once instead of one step later.
func TestRunCatchesUp(t *testing.T) {
	w := newWorld(t)
	w.start = time.Now().UTC().Truncate(time.Hour).Add(-40 * time.Hour)
	w.fill(t, 6, 1000, "mean_shift:f1:2.5@+4h")
	tw, err := kafkaio.NewWriter(w.kopts, "retrain-triggers")
	if err != nil {
		t.Fatal(err)
	}
	defer tw.Close()
	m, err := New(Options{Conn: w.conn, Triggers: tw, Window: time.Hour, Step: time.Hour, ReferenceMode: ReferenceFirst, Reference: time.Hour,
		Lookback: 48 * time.Hour, Policy: policy.Default(), Trigger: DefaultTriggerConfig(), Registerer: prometheus.NewRegistry(),
		Now: func() time.Time { return w.start.Add(6*time.Hour + time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	deadline := time.Now().Add(time.Minute)
	for w.count(t, "SELECT count() FROM retrain_triggers") == 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	cancel()
	<-done
	if n := w.count(t, "SELECT count() FROM retrain_triggers"); n != 1 {
		t.Errorf("triggers %d, want 1", n)
	}
	if n := w.count(t, "SELECT uniqExact(window_end) FROM drift_results WHERE method = 'verdict'"); n != 2 {
		t.Errorf("evaluated %d windows, want 2 (the current one and the one before)", n)
	}
}

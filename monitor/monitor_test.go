package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/ingest"
	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/loadgen"
	"github.com/driftwatch/driftwatch/internal/testcheck"
	"github.com/driftwatch/driftwatch/internal/testdb"
	"github.com/driftwatch/driftwatch/internal/testenv"
	"github.com/driftwatch/driftwatch/monitor/policy"
	"github.com/driftwatch/driftwatch/monitor/window"
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
	// corrupt, if set, may spoil an inference on its way to Kafka; it
	// reports whether it did (the event is then dead-lettered by ingest).
	corrupt func(ev loadgen.Event, m *kafka.Message) bool
	// numeric, when not 0, is the number of numeric features per model,
	// and models the number of models.
	numeric, models int
	// db is the database's name (testdb.URL gives its URL).
	db string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	brokers := testenv.KafkaBrokers(t)
	ctx := context.Background()
	id := strconv.FormatInt(time.Now().UnixNano(), 36)
	w := &world{brokers: brokers, kopts: kafkaio.Options{Brokers: brokers, TopicPrefix: "monitor-test-" + id + "."}}
	w.conn, w.db = testdb.Open(t, "monitor_test")
	var specs []kafkaio.TopicSpec
	for _, n := range []string{"inferences", "outcomes", "business-metrics", "retrain-triggers"} {
		specs = append(specs, kafkaio.TopicSpec{Name: w.kopts.Topic(n), Partitions: 3})
	}
	specs = append(specs, kafkaio.Specs(w.kopts, schemas.TopicFor(schemas.TopicDeadLetters))[0])
	if err := kafkaio.EnsureTopics(ctx, kafkaio.Options{Brokers: brokers}, specs); err != nil {
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
	if w.numeric != 0 {
		cfg.NumericFeatures = w.numeric
	}
	if w.models != 0 {
		cfg.Models = w.models
	}
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
	var spoiled int64
	for gen.Ticks() < int64(hours*perHour) {
		ev := gen.Next()
		if ev.Topic != "inferences" {
			continue
		}
		m := kafka.Message{Key: ev.Key, Value: ev.Value}
		if w.corrupt != nil && w.corrupt(ev, &m) {
			spoiled++
		}
		msgs = append(msgs, m)
	}
	if err := wr.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	ing, err := ingest.New(ingest.Options{Kafka: w.kopts, Conn: w.conn, Registerer: prometheus.NewRegistry(), Settings: ingestSettings()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ing.Run(ctx) }()
	deadline := time.Now().Add(2 * time.Minute)
	for w.count(t, "SELECT count() FROM inferences FINAL") < uint64(gen.Stats().Inferences-spoiled) ||
		w.count(t, "SELECT count() FROM dead_letters FINAL") < uint64(spoiled) {
		if time.Now().After(deadline) {
			t.Fatalf("ingest: %d of %d, dead letters %d of %d", w.count(t, "SELECT count() FROM inferences FINAL"), gen.Stats().Inferences-spoiled,
				w.count(t, "SELECT count() FROM dead_letters FINAL"), spoiled)
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
	m, err := New(Options{Settings: testSettings(48*time.Hour, pol, nil), Conn: w.conn, TriggerWriter: triggers,
		Registerer: prometheus.NewRegistry(),
		Now:        func() time.Time { return w.start.Add(40 * time.Hour) }})
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
	// The reference (the first hour) was read once; the other 23 windows
	// took its aggregates from the cache.
	if hit, miss := testutil.ToFloat64(m.refs.lookups.WithLabelValues("hit")), testutil.ToFloat64(m.refs.lookups.WithLabelValues("miss")); hit != 23 || miss != 1 {
		t.Errorf("reference cache: %v hits, %v misses; want 23 and 1", hit, miss)
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
	testConsoleViews(t, m2, w)
}

// testConsoleViews reads the shifted f3 and the unchanged f1 of the
// generator's data back through the console's views: in the window ending
// +29h the reference holds about a tenth of its rows in each of its decile
// bins; f1's current window too, while f3, shifted by 2 standard
// deviations, has P(Z + 2 > z₀.₉ = 1.28) = P(Z > −0.72) ≈ 0.76 of its rows
// in the top bin. The drift matrix of the newest 4 windows (+27h, +28h,
// +29h and the sparse one) marks f3 drifted and sustained, 3 windows in a
// row by +29h.
func testConsoleViews(t *testing.T, m *Monitor, w *world) {
	h := m.API()
	end := w.start.Add(29 * time.Hour).Format(time.RFC3339)
	shares := func(feature string) (ref, cur []float64) {
		code, out := call(t, h, "GET", "/api/v1/models/model-0/features/"+feature+"/distribution?window_end="+end, "")
		if code != 200 || out["window_end"] != end || out["kind"] != "numeric" {
			t.Fatalf("distribution of %s: %d %v", feature, code, out)
		}
		bins, _ := out["bins"].([]any)
		var rn, cn float64
		for _, b := range bins {
			b := b.(map[string]any)
			ref, cur = append(ref, b["reference"].(float64)), append(cur, b["current"].(float64))
			rn, cn = rn+b["reference"].(float64), cn+b["current"].(float64)
		}
		for i := range ref {
			ref[i], cur[i] = ref[i]/rn, cur[i]/cn
		}
		return ref, cur
	}
	ref, cur := shares("f1")
	if len(ref) != 10 {
		t.Fatalf("f1: %d bins, want 10", len(ref))
	}
	for i := range ref {
		if !testcheck.Within(ref[i], 0.1, 0.05) || !testcheck.Within(cur[i], 0.1, 0.05) {
			t.Errorf("f1 (unchanged) bin %d: shares %.3f and %.3f, want about 0.1 each", i, ref[i], cur[i])
		}
	}
	ref, cur = shares("f3")
	if n := len(ref); n != 10 || !testcheck.Within(ref[n-1], 0.1, 0.05) || !testcheck.Within(cur[n-1], 0.76, 0.06) {
		t.Errorf("f3 (shifted): top bin shares %v and %v, want about 0.1 and 0.76", ref, cur)
	}
	code, out := call(t, h, "GET", "/api/v1/models/model-0/drift-matrix?windows=4", "")
	if ws, _ := out["windows"].([]any); code != 200 || len(ws) != 4 {
		t.Fatalf("drift matrix: %d %v", code, out)
	}
	found := false
	for _, c := range out["cells"].([]any) {
		c := c.(map[string]any)
		if c["feature"] == "f3" && c["window_end"] == end {
			found = true
			v, _ := c["value"].(float64)
			th, _ := c["threshold"].(float64)
			if c["drifted"] != true || c["sustained"] != true || c["consecutive"] != 3.0 || !(v > th) {
				t.Errorf("f3 at +29h: %v; want drifted, sustained, 3 in a row, psi over its threshold", c)
			}
		}
		if c["feature"] == "f1" && c["drifted"] != false {
			t.Errorf("f1 drifted: %v", c)
		}
	}
	if !found {
		t.Errorf("no f3 cell at %s: %v", end, out["cells"])
	}
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

func ingestSettings() ingest.Settings { return ingest.Settings{BatchAge: 200 * time.Millisecond} }

// TestDeadLettersAsDataQuality: in the last of 3 hours every 20th
// inference loses its event_id on the way to Kafka. Ingest dead-letters
// them (reason missing_field) into the topic and the dead_letters table;
// the monitor's window for that hour reports the share of the model's
// events rejected for that reason, flags it as a data-quality issue and
// exports it, and the hours before have no dead-letter rows.
func TestDeadLettersAsDataQuality(t *testing.T) {
	w := newWorld(t)
	w.start = time.Now().UTC().Truncate(time.Hour).Add(-40 * time.Hour)
	eventID := regexp.MustCompile(`"event_id"\s*:\s*"[^"]*"\s*,`)
	var i, spoiled int64
	w.corrupt = func(ev loadgen.Event, m *kafka.Message) bool {
		if ev.Time.Before(w.start.Add(2 * time.Hour)) {
			return false
		}
		if i++; i%20 != 0 {
			return false
		}
		if !eventID.Match(m.Value) {
			t.Fatalf("no event_id in %s", m.Value)
		}
		m.Value = eventID.ReplaceAll(m.Value, nil)
		spoiled++
		return true
	}
	w.fill(t, 3, 2000)
	tw, err := kafkaio.NewWriter(w.kopts, "retrain-triggers")
	if err != nil {
		t.Fatal(err)
	}
	defer tw.Close()
	reg := prometheus.NewRegistry()
	m, err := New(Options{Settings: testSettings(48*time.Hour, policy.Default(), nil), Conn: w.conn, TriggerWriter: tw,
		Registerer: reg,
		Now:        func() time.Time { return w.start.Add(40 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	quiet, err := m.Evaluate(ctx, "model-0", w.start.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range quiet.Verdict.Rows {
		if r.Method == policy.CheckDeadLetterShare {
			t.Errorf("hour 2 has no dead letters, got row %+v", r)
		}
	}
	res, err := m.Evaluate(ctx, "model-0", w.start.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	stored := res.Snapshot.CurRows
	want := float64(spoiled) / float64(stored+spoiled)
	var found bool
	for _, r := range res.Verdict.Rows {
		if r.Method != policy.CheckDeadLetterShare {
			continue
		}
		found = true
		if r.Feature != string(schemas.ReasonMissingField) || !testcheck.Within(r.Value, want, 1e-12) || !r.Drifted || r.Kind != policy.KindDataQuality {
			t.Errorf("dead-letter row %+v; want missing_field, share %d/(%d+%d) = %g, drifted", r, spoiled, stored, spoiled, want)
		}
	}
	if !found || !slices.Contains(res.Verdict.QualityIssues, "missing_field/"+policy.CheckDeadLetterShare) {
		t.Errorf("no dead-letter issue in %v", res.Verdict.QualityIssues)
	}
	// Stored in drift_results and exported.
	if n := w.count(t, "SELECT count() FROM drift_results WHERE kind = 'data_quality' AND method = 'dead_letter_share' AND feature = 'missing_field' AND drifted"); n != 1 {
		t.Errorf("%d dead-letter rows in drift_results, want 1", n)
	}
	got := testutil.ToFloat64(gaugeOf(t, reg, "driftwatch_data_quality", map[string]string{"model": "model-0", "feature": "missing_field", "check": "dead_letter_share"}))
	if !testcheck.Within(got, want, 1e-12) {
		t.Errorf("driftwatch_data_quality{check=dead_letter_share} = %g, want %g", got, want)
	}
	t.Logf("hour 3: %d stored, %d dead-lettered (share %.4f)", stored, spoiled, want)
}

// gaugeOf finds one series of a gauge family in reg.
func gaugeOf(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue series
				}
			}
			g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})
			g.Set(m.GetGauge().GetValue())
			return g
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return nil
}

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
	m, err := New(Options{Settings: testSettings(48*time.Hour, policy.Default(), nil), Conn: w.conn, TriggerWriter: tw,
		Registerer: prometheus.NewRegistry(),
		Now:        func() time.Time { return w.start.Add(6*time.Hour + time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	// The trigger is published before its window's results are written
	// (the results mark the window done), so wait for both.
	windows := func() uint64 {
		return w.count(t, "SELECT uniqExact(window_end) FROM drift_results WHERE method = 'verdict'")
	}
	deadline := time.Now().Add(time.Minute)
	for (w.count(t, "SELECT count() FROM retrain_triggers") == 0 || windows() < 2) && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	cancel()
	<-done
	if n := w.count(t, "SELECT count() FROM retrain_triggers"); n != 1 {
		t.Errorf("triggers %d, want 1", n)
	}
	if n := windows(); n != 2 {
		t.Errorf("evaluated %d windows, want 2 (the current one and the one before)", n)
	}
}

// testSettings are the defaults with hourly tumbling windows, a one-hour
// reference, lookback and pol, and performance off unless pc is given.
func testSettings(lookback time.Duration, pol policy.Config, pc *PerformanceConfig) Settings {
	s := DefaultSettings()
	s.Window, s.Step, s.Reference, s.Lookback, s.Policy = time.Hour, time.Hour, time.Hour, lookback, pol
	s.Performance.Enabled = false
	if pc != nil {
		s.Performance = *pc
	}
	return s
}

// errInjected is the error failingConn's queries fail with.
var errInjected = errors.New("injected query failure")

// failingConn passes every call to the real connection except queries
// whose text contains fail, which fail with errInjected.
type failingConn struct {
	driver.Conn
	fail string
}

func (c failingConn) Query(ctx context.Context, q string, args ...any) (driver.Rows, error) {
	if strings.Contains(q, c.fail) {
		return nil, errInjected
	}
	return c.Conn.Query(ctx, q, args...)
}

func (c failingConn) QueryRow(ctx context.Context, q string, args ...any) driver.Row {
	if strings.Contains(q, c.fail) {
		return failedRow{}
	}
	return c.Conn.QueryRow(ctx, q, args...)
}

// failedRow is the row of a query that failed.
type failedRow struct{}

func (failedRow) Err() error           { return errInjected }
func (failedRow) Scan(...any) error    { return errInjected }
func (failedRow) ScanStruct(any) error { return errInjected }

// recordingWriter stands in for the retrain-triggers writer and keeps what
// is published.
type recordingWriter struct {
	mu   sync.Mutex // Run's goroutines write, the test reads
	msgs []kafka.Message
}

func (w *recordingWriter) WriteMessages(_ context.Context, msgs ...kafka.Message) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msgs...)
	return nil
}

// sent returns the messages written so far.
func (w *recordingWriter) sent() []kafka.Message {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.msgs)
}

// TestEvaluateFailsWithoutModelVersion: when the query of the window's
// model version fails, the evaluation fails and publishes no trigger (it
// used to publish one with an empty model_version). The window asks for a
// scheduled trigger whatever its drift, and with the query answering the
// same window publishes it, with the version the window served.
func TestEvaluateFailsWithoutModelVersion(t *testing.T) {
	w := newWorld(t)
	w.start = time.Now().UTC().Truncate(time.Hour).Add(-40 * time.Hour)
	w.fill(t, 3, 500)
	trig := DefaultTriggerConfig()
	trig.Schedule = time.Hour
	newMonitor := func(conn driver.Conn, tw *recordingWriter) *Monitor {
		t.Helper()
		set := testSettings(48*time.Hour, policy.Default(), nil)
		set.Triggers = trig
		m, err := New(Options{Settings: set, Conn: conn, TriggerWriter: tw, Registerer: prometheus.NewRegistry(),
			Now: func() time.Time { return w.start.Add(40 * time.Hour) }})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	ctx := context.Background()
	end := w.start.Add(2 * time.Hour)

	tw := &recordingWriter{}
	m := newMonitor(failingConn{Conn: w.conn, fail: "SELECT model_version FROM inferences"}, tw)
	res, err := m.Evaluate(ctx, "model-0", end)
	if !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "model version") {
		t.Fatalf("evaluate with the version query failing: error %v, want the injected failure of the model version read", err)
	}
	if len(res.Decisions) != 0 || len(tw.sent()) != 0 {
		t.Errorf("version query failed: %d decisions, %d triggers published; want none", len(res.Decisions), len(tw.sent()))
	}
	if n := w.count(t, "SELECT count() FROM retrain_triggers"); n != 0 {
		t.Errorf("version query failed: retrain_triggers holds %d rows, want 0", n)
	}
	if n := testutil.ToFloat64(m.evals.WithLabelValues("error")); n != 1 {
		t.Errorf("evaluations with outcome error: %v, want 1", n)
	}

	m = newMonitor(w.conn, tw)
	res, err = m.Evaluate(ctx, "model-0", end)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Decisions) != 1 || res.Decisions[0].Outcome != OutcomePublished || res.Decisions[0].Trigger.Reason != schemas.TriggerSchedule ||
		res.Decisions[0].Trigger.ModelVersion != "1" || len(tw.sent()) != 1 {
		t.Fatalf("version query answering: decisions %+v, %d published; want one scheduled trigger of version 1", res.Decisions, len(tw.sent()))
	}
}

// TestNewModelGrowingReference: a model two hours old, with the default
// settings (a 24 h reference, 1 h windows every minute), its second hour
// shifted by 1.5 standard deviations in f1 of its three numeric features.
// The monitor evaluates it as it would live (Run's first round evaluates
// the last Consecutive windows): the reference grows (all of the model's
// data before the window), f1 and only f1 is flagged in both windows, and
// the results and the API say the reference was growing. Before the model
// has an hour of data there is nothing before the window: waiting.
func TestNewModelGrowingReference(t *testing.T) {
	w := newWorld(t)
	w.numeric = 3
	now := time.Now().UTC().Truncate(time.Minute)
	w.start = now.Add(-2 * time.Hour)
	w.fill(t, 2, 3000, "mean_shift:f1:1.5@+1h")
	tw := &recordingWriter{}
	set := DefaultSettings()
	m, err := New(Options{Settings: set, Conn: w.conn, TriggerWriter: tw, Registerer: prometheus.NewRegistry(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	early, err := m.Evaluate(ctx, "model-0", w.start.Add(30*time.Minute))
	if err != nil || early.Skipped == "" || early.Reference != ReferenceGrowing {
		t.Fatalf("window ending 30 minutes after the first inference: skipped %q, reference %q, %v; want waiting on a growing reference", early.Skipped, early.Reference, err)
	}
	// The two windows Run's first round evaluates (Consecutive = 2).
	for _, end := range []time.Time{now.Add(-set.Step), now} {
		res, err := m.Evaluate(ctx, "model-0", end)
		if err != nil {
			t.Fatal(err)
		}
		if res.Skipped != "" || res.Reference != ReferenceGrowing {
			t.Fatalf("window ending %s: skipped %q, reference %q; want evaluated on a growing reference", end, res.Skipped, res.Reference)
		}
		wantRef := window.Span{Start: w.start, End: end.Add(-time.Hour)}
		if !res.Snapshot.Reference.Start.Equal(wantRef.Start) || !res.Snapshot.Reference.End.Equal(wantRef.End) {
			t.Errorf("window ending %s: reference %s, want %s", end, res.Snapshot.Reference, wantRef)
		}
		if !slices.Equal(res.Verdict.Drifted, []string{"f1"}) {
			t.Errorf("window ending %s: drifted %v, want [f1]", end, res.Verdict.Drifted)
		}
	}
	if got := w.count(t, "SELECT count() FROM drift_results FINAL WHERE model_id = 'model-0' AND reference_kind = 'growing' AND method = 'verdict' AND feature = 'f1' AND drifted"); got != 2 {
		t.Errorf("%d drifted f1 verdict rows with reference_kind growing, want 2", got)
	}
	srv := httptest.NewServer(m.API())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/v1/models/model-0/results")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Results []ResultRow `json:"results"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if len(body.Results) == 0 {
		t.Fatal("no results in the API")
	}
	for _, r := range body.Results {
		if r.Reference != ReferenceGrowing || !r.ReferenceStart.Equal(w.start) || !r.ReferenceEnd.Equal(now.Add(-time.Hour)) {
			t.Fatalf("API row %s/%s: reference %q %s–%s, want growing %s–%s", r.Feature, r.Method, r.Reference, r.ReferenceStart, r.ReferenceEnd, w.start, now.Add(-time.Hour))
		}
	}
}

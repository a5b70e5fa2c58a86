package monitor

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/ingest"
	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/loadgen"
	"github.com/driftwatch/driftwatch/internal/testcheck"
	"github.com/driftwatch/driftwatch/monitor/perf"
	"github.com/driftwatch/driftwatch/monitor/policy"
	"github.com/driftwatch/driftwatch/schemas"
)

// stream generates ticks inferences with cfg and returns every event,
// outcomes still waiting for their label time included (Drain).
func stream(t *testing.T, cfg loadgen.Config, ticks int64) []loadgen.Event {
	t.Helper()
	gen, err := loadgen.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out []loadgen.Event
	for gen.Ticks() < ticks {
		out = append(out, gen.Next())
	}
	return append(out, gen.Drain()...)
}

// send produces events to their topics and ingests until ClickHouse holds
// every valid one.
func (w *world) send(t *testing.T, events []loadgen.Event) {
	t.Helper()
	byTopic := map[string][]kafka.Message{}
	want := map[string]int{}
	for _, ev := range events {
		byTopic[ev.Topic] = append(byTopic[ev.Topic], kafka.Message{Key: ev.Key, Value: ev.Value})
		if ev.Malformed == "" && !ev.Duplicate {
			want[ev.Topic]++
		}
	}
	for topic, msgs := range byTopic {
		wr, err := kafkaio.NewWriter(w.kopts, topic)
		if err != nil {
			t.Fatal(err)
		}
		if err := wr.WriteMessages(context.Background(), msgs...); err != nil {
			t.Fatal(err)
		}
		wr.Close()
	}
	ing, err := ingest.New(ingest.Options{Kafka: w.kopts, Conn: w.conn, Registerer: prometheus.NewRegistry(),
		Settings: ingest.Settings{ConsumerGroup: "perf", BatchAge: 200 * time.Millisecond, MaxFutureSkew: 48 * time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ing.Run(ctx) }()
	tables := map[string]string{"inferences": "inferences", "outcomes": "outcomes", "business-metrics": "business_metrics"}
	deadline := time.Now().Add(2 * time.Minute)
	for topic, n := range want {
		for w.count(t, "SELECT count() FROM "+tables[topic]+" FINAL") < uint64(w.base[topic]+n) {
			if time.Now().After(deadline) {
				t.Fatalf("ingest of %s: %d of %d", topic, w.count(t, "SELECT count() FROM "+tables[topic]+" FINAL"), w.base[topic]+n)
			}
			time.Sleep(200 * time.Millisecond)
		}
		w.base[topic] += n
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ing.Close()
}

func perfMonitor(t *testing.T, w *world, pc PerformanceConfig, now time.Time) (*Monitor, *kafka.Writer) {
	t.Helper()
	return perfMonitorClock(t, w, pc, func() time.Time { return now })
}

func perfMonitorClock(t *testing.T, w *world, pc PerformanceConfig, now func() time.Time) (*Monitor, *kafka.Writer) {
	t.Helper()
	tw, err := kafkaio.NewWriter(w.kopts, "retrain-triggers")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tw.Close() })
	m, err := New(Options{Settings: testSettings(72*time.Hour, policy.Default(), &pc), Conn: w.conn, TriggerWriter: tw,
		Registerer: prometheus.NewRegistry(),
		Now:        now})
	if err != nil {
		t.Fatal(err)
	}
	return m, tw
}

func baseConfig(start time.Time, perHour int) loadgen.Config {
	cfg := loadgen.DefaultConfig()
	cfg.Seed = 7
	cfg.Start = start
	cfg.Step = time.Hour / time.Duration(perHour)
	cfg.Outcomes = loadgen.Outcomes{Share: 1, Delay: time.Minute, Dist: loadgen.Fixed}
	cfg.BusinessMetrics.Enabled = false
	return cfg
}

// TestConceptDrift: the label relationship changes while feature
// distributions do not — no feature drift, a performance drop once the
// labels are in, one trigger.
func TestConceptDrift(t *testing.T) {
	w := newWorld(t)
	w.base = map[string]int{}
	w.start = time.Now().UTC().Truncate(time.Hour).Add(-30 * time.Hour)
	cfg := baseConfig(w.start, 1000)
	ch, err := loadgen.ParseChange("concept_drift@+5h", w.start)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Changes = []loadgen.Change{ch}
	w.send(t, stream(t, cfg, 8*1000))

	pc := DefaultPerformanceConfig()
	pc.Recompute, pc.Buckets, pc.MaxLag = 8, 8, 2
	m, _ := perfMonitor(t, w, pc, w.start.Add(8*time.Hour+time.Minute))
	ctx := context.Background()
	for h := 2; h <= 8; h++ {
		res, err := m.Evaluate(ctx, "model-0", w.start.Add(time.Duration(h)*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Verdict.Drifted) != 0 {
			t.Errorf("window +%dh: drifted %v under concept drift alone", h, res.Verdict.Drifted)
		}
	}
	var published int
	for i := 0; i < 2; i++ { // evaluated twice: the second is a duplicate
		res, err := m.EvaluatePerformance(ctx, "model-0", w.start.Add(8*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		ref, _ := res.Reference.Metric(perf.MetricROCAUC)
		last := res.Windows[len(res.Windows)-1]
		cur, _ := last.Metric(perf.MetricROCAUC)
		t.Logf("roc_auc reference %.3f, last window %.3f (coverage %.2f)", ref.Value, cur.Value, last.LabelCoverage)
		if !testcheck.AtLeast(ref.Value-cur.Value, 0.2) {
			t.Errorf("roc_auc fell from %.3f to %.3f only", ref.Value, cur.Value)
		}
		for _, d := range res.Decisions {
			if d.Outcome == "published" {
				published++
				if d.Trigger.Reason != schemas.TriggerPerformance {
					t.Errorf("reason %s", d.Trigger.Reason)
				}
			}
		}
	}
	if published != 1 || w.triggersSent(t) != 1 {
		t.Errorf("published %d, Kafka holds %d; want one trigger", published, w.triggersSent(t))
	}
}

// TestLateLabels: labels arrive two hours after their inferences; the
// window is first scored on the labels present, then corrected, and its
// coverage rises to 1. Both computations stay queryable.
func TestLateLabels(t *testing.T) {
	w := newWorld(t)
	w.base = map[string]int{}
	w.start = time.Now().UTC().Truncate(time.Hour).Add(-30 * time.Hour)
	cfg := baseConfig(w.start, 2000)
	cfg.Outcomes = loadgen.Outcomes{Share: 1, Delay: 2 * time.Hour, Dist: loadgen.Fixed}
	events := stream(t, cfg, 2*2000)
	cut := w.start.Add(2*time.Hour + 30*time.Minute) // labels of the first half hour are in
	var early, late []loadgen.Event
	for _, ev := range events {
		if ev.Topic == "outcomes" && !ev.Time.Before(cut) {
			late = append(late, ev)
		} else {
			early = append(early, ev)
		}
	}
	w.send(t, early)
	pc := DefaultPerformanceConfig()
	pc.Recompute, pc.Buckets, pc.MaxLag = 2, 4, 1
	// The second evaluation is a minute later: performance_latest picks
	// the newest computed_at, and two rows with the same one would tie.
	var clock atomic.Int64
	clock.Store(cut.UnixNano())
	m, _ := perfMonitorClock(t, w, pc, func() time.Time { return time.Unix(0, clock.Load()).UTC() })
	ctx := context.Background()
	first, err := m.EvaluatePerformance(ctx, "model-0", w.start.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	w.send(t, late)
	clock.Add(int64(time.Minute))
	second, err := m.EvaluatePerformance(ctx, "model-0", w.start.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	a, b := first.Windows[0], second.Windows[0]
	t.Logf("window %s: coverage %.3f → %.3f, labelled %d → %d", a.Window, a.LabelCoverage, b.LabelCoverage, a.Labelled, b.Labelled)
	if !(a.LabelCoverage > 0.4 && a.LabelCoverage < 0.6) || b.LabelCoverage != 1 {
		t.Errorf("coverage %.3f then %.3f, want about 0.5 then 1", a.LabelCoverage, b.LabelCoverage)
	}
	accA, _ := a.Metric(perf.MetricAccuracy)
	accB, _ := b.Metric(perf.MetricAccuracy)
	if accA.Samples != a.Labelled || accB.Samples != b.Labelled || accA.Value == accB.Value {
		t.Errorf("accuracy %v then %v: not recomputed on the new labels", accA, accB)
	}
	if n := w.count(t, "SELECT count() FROM performance_results WHERE metric = 'label_coverage' AND window_start = toDateTime64('"+w.start.Format("2006-01-02 15:04:05")+"', 3, 'UTC')"); n != 2 {
		t.Errorf("%d coverage computations kept, want 2", n)
	}
	var latest float64
	if err := w.conn.QueryRow(ctx, "SELECT value FROM performance_latest WHERE metric = 'label_coverage' AND window_start = toDateTime64('"+w.start.Format("2006-01-02 15:04:05")+"', 3, 'UTC')").Scan(&latest); err != nil || latest != 1 {
		t.Errorf("performance_latest coverage %v (%v), want 1", latest, err)
	}
}

// TestBusinessMetricLag: a KPI generated to follow model accuracy two
// buckets later correlates best at lag 2.
func TestBusinessMetricLag(t *testing.T) {
	w := newWorld(t)
	w.base = map[string]int{}
	w.start = time.Now().UTC().Truncate(time.Hour).Add(-30 * time.Hour)
	const perHour = 3000
	cfg := baseConfig(w.start, perHour)
	cfg.BusinessMetrics = loadgen.BusinessMetrics{Enabled: true, Metric: "conversion_rate", Bucket: 10 * time.Minute, Lag: 2, Base: 0.02, Slope: 0.05, Noise: 0.0001}
	w.send(t, stream(t, cfg, 6*perHour))
	pc := DefaultPerformanceConfig()
	pc.Metric, pc.Bucket, pc.Buckets, pc.MaxLag, pc.Recompute = perf.MetricAccuracy, 10*time.Minute, 34, 6, 1
	end := w.start.Add(6 * time.Hour)
	m, _ := perfMonitor(t, w, pc, end)
	res, err := m.EvaluatePerformance(context.Background(), "model-0", end)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, cr := range res.Correlations {
		if cr.ModelMetric != perf.MetricAccuracy || cr.BusinessMetric != "conversion_rate" || cr.Method != "pearson" {
			continue
		}
		found = true
		var lags []string
		for _, l := range cr.Lags {
			lags = append(lags, fmt.Sprintf("%d:%.3f", l.Lag, l.Value))
		}
		t.Logf("pearson by lag: %v", lags)
		if cr.BestErr != nil || cr.Best.Lag != 2 || !testcheck.AtLeast(cr.Best.Value, 0.8) {
			t.Errorf("best lag %d (r %.3f, %v), want lag 2", cr.Best.Lag, cr.Best.Value, cr.BestErr)
		}
	}
	if !found {
		t.Fatalf("no accuracy/conversion_rate correlation among %d", len(res.Correlations))
	}
	if n := w.count(t, "SELECT count() FROM business_correlations FINAL WHERE lag = 2 AND method = 'pearson' AND model_metric = 'accuracy'"); n != 1 {
		t.Errorf("business_correlations rows at lag 2: %d", n)
	}
	code, out := call(t, m.API(), "GET", "/api/v1/models/model-0/correlations", "")
	if rows, _ := out["correlations"].([]any); code != 200 || len(rows) < 7 {
		t.Errorf("correlations API: %d, %v", code, out)
	}
	code, out = call(t, m.API(), "GET", "/api/v1/models/model-0/performance?metric=accuracy", "")
	if rows, _ := out["performance"].([]any); code != 200 || len(rows) != 1 {
		t.Errorf("performance API: %d, %v", code, out)
	}
}

package backtest

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/ingest"
	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/loadgen"
	"github.com/driftwatch/driftwatch/internal/testcheck"
	"github.com/driftwatch/driftwatch/internal/testdb"
	"github.com/driftwatch/driftwatch/internal/testenv"
	"github.com/driftwatch/driftwatch/monitor"
	"github.com/driftwatch/driftwatch/monitor/policy"
	"github.com/driftwatch/driftwatch/schemas"
)

// history generates a labelled stream with changes (ParseChange syntax,
// offsets from start), sends it through Kafka and ingest into a fresh
// database, and returns its connection.
func history(t *testing.T, start time.Time, hours, perHour int, changes ...string) driver.Conn {
	t.Helper()
	brokers := testenv.KafkaBrokers(t)
	conn, _ := testdb.Open(t, "backtest_test")
	ctx := context.Background()
	kopts := kafkaio.Options{Brokers: brokers, TopicPrefix: "backtest-test-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "."}
	specs := []kafkaio.TopicSpec{kafkaio.Specs(kopts, schemas.TopicFor(schemas.TopicDeadLetters))[0]}
	for _, n := range []string{"inferences", "outcomes", "business-metrics"} {
		specs = append(specs, kafkaio.TopicSpec{Name: kopts.Topic(n), Partitions: 3})
	}
	if err := kafkaio.EnsureTopics(ctx, kafkaio.Options{Brokers: brokers}, specs); err != nil {
		t.Fatal(err)
	}
	cfg := loadgen.DefaultConfig()
	cfg.Seed, cfg.Start, cfg.Step = 11, start, time.Hour/time.Duration(perHour)
	cfg.NumericFeatures, cfg.CategoricalFeatures = 4, 2
	cfg.Outcomes = loadgen.Outcomes{Share: 1, Delay: time.Minute, Dist: loadgen.Fixed}
	cfg.BusinessMetrics.Enabled = false
	for _, c := range changes {
		ch, err := loadgen.ParseChange(c, start)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Changes = append(cfg.Changes, ch)
	}
	gen, err := loadgen.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var events []loadgen.Event
	for gen.Ticks() < int64(hours*perHour) {
		events = append(events, gen.Next())
	}
	events = append(events, gen.Drain()...)
	byTopic := map[string][]kafka.Message{}
	want := map[string]uint64{}
	for _, ev := range events {
		byTopic[ev.Topic] = append(byTopic[ev.Topic], kafka.Message{Key: ev.Key, Value: ev.Value})
		want[ev.Topic]++
	}
	for topic, msgs := range byTopic {
		wr, err := kafkaio.NewWriter(kopts, topic)
		if err != nil {
			t.Fatal(err)
		}
		if err := wr.WriteMessages(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
		wr.Close()
	}
	ing, err := ingest.New(ingest.Options{Kafka: kopts, Conn: conn, Registerer: prometheus.NewRegistry(),
		Settings: ingest.Settings{ConsumerGroup: "backtest", BatchAge: 200 * time.Millisecond, MaxFutureSkew: 48 * time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	ictx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ing.Run(ictx) }()
	deadline := time.Now().Add(3 * time.Minute)
	for topic, table := range map[string]string{"inferences": "inferences", "outcomes": "outcomes"} {
		for count(t, conn, "SELECT count() FROM "+table+" FINAL") < want[topic] {
			if time.Now().After(deadline) {
				t.Fatalf("ingest of %s: %d of %d", topic, count(t, conn, "SELECT count() FROM "+table+" FINAL"), want[topic])
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ing.Close()
	return conn
}

func count(t *testing.T, conn driver.Conn, q string) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// TestBacktestScoresPolicies: a labelled history with three known shifts —
// two that hurt performance (a feature shift with a concept change, in
// hours 10–14 and 20–24; the second shift smaller) and one that does not
// (unseen categories in c0, hours 30–34) — replayed with the default
// policy and a stricter one (PSI ≥ 1, three windows in a row).
func TestBacktestScoresPolicies(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Hour).Add(-40 * time.Hour)
	at := func(h int) time.Time { return start.Add(time.Duration(h) * time.Hour) }
	conn := history(t, start, 38, 1000,
		"mean_shift:f0:2@+10h", "concept_drift:1@+10h", "mean_shift:f0:-2@+14h", "concept_drift:0@+14h",
		"mean_shift:f1:0.8@+20h", "concept_drift:1@+20h", "mean_shift:f1:-0.8@+24h", "concept_drift:0@+24h",
		"new_categories:c0:0.5@+30h", "new_categories:c0:0@+34h")

	s := monitor.DefaultSettings()
	s.Window, s.Step, s.Reference = time.Hour, time.Hour, 6*time.Hour
	s.Triggers.DailyMax = 10 // so that only the cooldown holds triggers back, whatever the UTC day
	// A monitor configuration with incremental windows on: a replay
	// computes its windows in full, so that it writes no partials.
	s.Incremental = true
	strict, err := ParsePolicy("strict", "strict.yaml", []byte("thresholds:\n  psi: 1.0\nconsecutive: 3\n"), s.Policy)
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	ctx := context.Background()
	rep, err := Run(ctx, Options{Settings: s, Conn: conn, Model: "model-0", From: start, To: at(38), Within: 2,
		Policies: []Policy{{Name: "default", Config: policy.Default()}, strict}, Progress: &progress, ProgressEvery: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	if err := WriteTable(&table, rep); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", table.String())

	// What the labels showed: the two harmful shifts, each four hourly
	// windows, and nothing in the harmless one.
	if len(rep.Incidents) != 2 || !rep.Incidents[0].Start.Equal(at(10)) || !rep.Incidents[0].End.Equal(at(14)) ||
		!rep.Incidents[1].Start.Equal(at(20)) || !rep.Incidents[1].End.Equal(at(24)) {
		t.Fatalf("incidents %+v, want [10h, 14h) and [20h, 24h)", rep.Incidents)
	}
	if rep.Windows != 38 || rep.Performance.Metric != "roc_auc" {
		t.Fatalf("windows %d, metric %s", rep.Windows, rep.Performance.Metric)
	}
	def, str := rep.Policies[0], rep.Policies[1]

	// The hand count. Default policy (KS and PSI ≥ 0.2, two windows in a
	// row): each shift drifts from its first hour, so it is sustained at
	// the end of its second: alerts at 12h (incident 1), 22h (incident 2)
	// and 32h (the harmless shift: a false alarm). Precision 2/3, recall
	// 2/2, each delay 2h (12−10, 22−20).
	alertTimes := func(pr PolicyReport) []time.Time {
		var out []time.Time
		for _, a := range pr.Alerts {
			out = append(out, a.At)
		}
		return out
	}
	if got := alertTimes(def); !slices.EqualFunc(got, []time.Time{at(12), at(22), at(32)}, time.Time.Equal) {
		t.Fatalf("default alerts at %v, want 12h, 22h, 32h", got)
	}
	testcheck.Close(t, "default precision", *def.Precision, 2.0/3, 1e-12)
	testcheck.Close(t, "default recall", *def.Recall, 1, 1e-12)
	testcheck.Close(t, "default alerts per day", def.AlertsPerDay, 3/(38.0/24), 1e-12)
	if def.TrueAlerts != 2 || len(def.Missed) != 0 || *def.MedianDelay != 2*time.Hour || *def.MaxDelay != 2*time.Hour {
		t.Fatalf("default: %d true alerts, missed %v, delays %v %v", def.TrueAlerts, def.Missed, *def.MedianDelay, *def.MaxDelay)
	}
	// Stricter (PSI ≥ 1, three in a row): the 0.8 sd shift of incident 2
	// (PSI about 0.6) no longer counts; the others are sustained at the
	// end of their third hour: 13h (incident 1) and 33h (false alarm).
	// Precision 1/2, recall 1/2, incident 2 missed, delay 3h.
	if got := alertTimes(str); !slices.EqualFunc(got, []time.Time{at(13), at(33)}, time.Time.Equal) {
		t.Fatalf("strict alerts at %v, want 13h, 33h", got)
	}
	testcheck.Close(t, "strict precision", *str.Precision, 0.5, 1e-12)
	testcheck.Close(t, "strict recall", *str.Recall, 0.5, 1e-12)
	if len(str.Alerts) >= len(def.Alerts) || !slices.Equal(str.Missed, []int{2}) || *str.MedianDelay != 3*time.Hour {
		t.Fatalf("strict: %d alerts (default %d), missed %v, delay %v", len(str.Alerts), len(def.Alerts), str.Missed, *str.MedianDelay)
	}
	// Evidence names the shifted feature with its decision methods.
	if a := def.Alerts[0]; !slices.Contains(a.Features, "f0") || !hasEvidence(a, "f0", "psi") || !hasEvidence(a, "f0", "ks") {
		t.Fatalf("evidence of the first alert: %+v", a)
	}
	if a := def.Alerts[2]; !slices.Contains(a.Features, "c0") {
		t.Fatalf("the harmless shift's alert names %v, want c0", a.Features)
	}
	// Triggers through the monitor's gate (cooldown 6h): one published at
	// each alert, the alert's later windows held back by the cooldown.
	published := func(pr PolicyReport) []time.Time {
		var out []time.Time
		for _, tr := range pr.Triggers {
			if tr.Outcome == monitor.OutcomePublished {
				out = append(out, tr.At)
			}
		}
		return out
	}
	if got := published(def); !slices.EqualFunc(got, []time.Time{at(12), at(22), at(32)}, time.Time.Equal) {
		t.Fatalf("default published triggers at %v", got)
	}
	if got := published(str); !slices.EqualFunc(got, []time.Time{at(13), at(33)}, time.Time.Equal) {
		t.Fatalf("strict published triggers at %v", got)
	}
	// Nothing was written: no results, no triggers, no reference pinned,
	// no incremental windows' partials.
	for _, table := range []string{"drift_results", "drift_distributions", "retrain_triggers", "reference_profiles", "performance_results",
		"window_partial_buckets", "window_partial_bins", "window_partial_categories"} {
		if n := count(t, conn, "SELECT count() FROM "+table); n != 0 {
			t.Errorf("%s holds %d rows after a backtest, want 0", table, n)
		}
	}
	if !strings.Contains(progress.String(), "backtest: policy strict: 38/38 windows") {
		t.Errorf("progress: %q", progress.String())
	}
	for _, want := range []string{"precision", "0.667", "0.500", "#2", "default", "strict"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("the table lacks %q", want)
		}
	}
	t.Logf("replay speed: default %d windows in %.2f s (%.1f windows/s), strict %.1f windows/s",
		rep.Windows, def.Seconds, def.WindowsPerSecond, str.WindowsPerSecond)

	// Clear errors.
	_, err = Run(ctx, Options{Settings: s, Conn: conn, Model: "model-9", From: start, To: at(38), Policies: []Policy{{Name: "d", Config: policy.Default()}}})
	if !errors.Is(err, ErrUnknownModel) || !strings.Contains(err.Error(), "model-9") {
		t.Errorf("unknown model: %v", err)
	}
	_, err = Run(ctx, Options{Settings: s, Conn: conn, Model: "model-0", From: at(-100), To: at(-90), Policies: []Policy{{Name: "d", Config: policy.Default()}}})
	if !errors.Is(err, ErrNoData) || !strings.Contains(err.Error(), "its first is at") {
		t.Errorf("no data in range: %v", err)
	}
}

func hasEvidence(a Alert, feature, method string) bool {
	for _, e := range a.Evidence {
		if e.Feature == feature && e.Method == method {
			return true
		}
	}
	return false
}

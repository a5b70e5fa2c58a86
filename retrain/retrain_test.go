package retrain

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
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
	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/loadgen"
	"github.com/driftwatch/driftwatch/internal/testcheck"
	"github.com/driftwatch/driftwatch/internal/testdb"
	"github.com/driftwatch/driftwatch/internal/testenv"
	"github.com/driftwatch/driftwatch/retrain/model"
	"github.com/driftwatch/driftwatch/schemas"
)

// world is a fresh database and topic prefix on the shared stack, filled
// with two models by loadgen through Kafka and ingest: model-0's labels
// follow other weights from the start (concept drift: its production
// model is wrong), model-1 is unchanged (its production model is the
// truth).
type world struct {
	brokers []string
	url     string // ClickHouse URL of the world's database
	kopts   kafkaio.Options
	conn    driver.Conn
	start   time.Time
	hours   int
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := openWorld(t)
	w.fill(t, 200)
	return w
}

// openWorld is an empty world: its database and topics.
func openWorld(t *testing.T) *world {
	t.Helper()
	brokers := testenv.KafkaBrokers(t)
	ctx := context.Background()
	id := strconv.FormatInt(time.Now().UnixNano(), 36)
	w := &world{brokers: brokers, kopts: kafkaio.Options{Brokers: brokers, TopicPrefix: "retrain-test-" + id + "."},
		start: time.Now().UTC().Truncate(time.Hour).Add(-40 * time.Hour), hours: 30}
	conn, db := testdb.Open(t, "retrain_test")
	w.conn, w.url = conn, testdb.URL(t, db)
	var specs []kafkaio.TopicSpec
	for _, n := range []string{"inferences", "outcomes", "business-metrics", "retrain-triggers", "model-events"} {
		specs = append(specs, kafkaio.TopicSpec{Name: w.kopts.Topic(n), Partitions: 3})
	}
	specs = append(specs, kafkaio.Specs(w.kopts, schemas.TopicFor(schemas.TopicDeadLetters))[0])
	if err := kafkaio.EnsureTopics(ctx, kafkaio.Options{Brokers: brokers}, specs); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) fill(t *testing.T, perHour int) {
	t.Helper()
	cfg := loadgen.DefaultConfig()
	cfg.Seed = 7
	cfg.Models = 2
	cfg.Start = w.start
	cfg.Step = time.Hour / time.Duration(perHour*cfg.Models)
	cfg.BusinessMetrics.Enabled = false
	ch, err := loadgen.ParseChange("model-0/concept_drift:1@0", cfg.Start)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Changes = append(cfg.Changes, ch)
	w.load(t, cfg, int64(w.hours*perHour*cfg.Models))
}

// load sends ticks of cfg's inferences and outcomes through Kafka and
// ingest into the world's database and waits for them all.
func (w *world) load(t *testing.T, cfg loadgen.Config, ticks int64) {
	t.Helper()
	gen, err := loadgen.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	writers := map[string]*kafka.Writer{}
	msgs := map[string][]kafka.Message{}
	for gen.Ticks() < ticks {
		ev := gen.Next()
		if ev.Topic != "inferences" && ev.Topic != "outcomes" {
			continue
		}
		msgs[ev.Topic] = append(msgs[ev.Topic], kafka.Message{Key: ev.Key, Value: ev.Value})
	}
	for topic, ms := range msgs {
		wr, err := kafkaio.NewWriter(w.kopts, topic)
		if err != nil {
			t.Fatal(err)
		}
		writers[topic] = wr
		if err := wr.WriteMessages(context.Background(), ms...); err != nil {
			t.Fatal(err)
		}
		wr.Close()
	}
	ing, err := ingest.New(ingest.Options{Kafka: w.kopts, Conn: w.conn, Registerer: prometheus.NewRegistry(), Settings: ingest.Settings{BatchAge: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ing.Run(ctx) }()
	deadline := time.Now().Add(6 * time.Minute)
	for w.count(t, "SELECT count() FROM inferences FINAL") < uint64(gen.Stats().Inferences) ||
		w.count(t, "SELECT count() FROM outcomes FINAL") < uint64(len(msgs["outcomes"])) {
		if time.Now().After(deadline) {
			t.Fatalf("ingest: %d of %d inferences", w.count(t, "SELECT count() FROM inferences FINAL"), gen.Stats().Inferences)
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

// now is the trainer's clock: an hour after the last inference, so with a
// maturity of 1h every label is in.
func (w *world) now() time.Time { return w.start.Add(time.Duration(w.hours+1) * time.Hour) }

func modelCfg() ModelConfig {
	mc := DefaultModelConfig()
	mc.Maturity, mc.TrainWindow, mc.EvalWindow = time.Hour, 20*time.Hour, 6*time.Hour
	mc.Resamples = 300
	// No retrain budget: the subtests run many triggers at one instant.
	mc.MaxRunsPerDay, mc.MinInterval = -1, -1
	return mc
}

// eventLog keeps the model events written to it; the trainer's workers
// write them, the test reads them, so both go through the lock.
type eventLog struct {
	mu   sync.Mutex
	msgs []kafka.Message
}

func (e *eventLog) WriteMessages(_ context.Context, ms ...kafka.Message) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.msgs = append(e.msgs, ms...)
	return nil
}

// flakyEvents fails every write while fail is set.
type flakyEvents struct {
	eventLog
	fail bool
}

func (f *flakyEvents) WriteMessages(ctx context.Context, ms ...kafka.Message) error {
	if f.fail {
		return errors.New("kafka unreachable")
	}
	return f.eventLog.WriteMessages(ctx, ms...)
}

func (e *eventLog) kinds(t *testing.T) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, m := range e.msgs {
		ev, err := schemas.DecodeModelEvent(m.Value)
		if err != nil {
			t.Fatalf("model event: %v", err)
		}
		out = append(out, ev.ModelID+":"+string(ev.Kind))
	}
	return out
}

func (w *world) trainer(t *testing.T, opts Options) *Trainer {
	t.Helper()
	opts.Conn = w.conn
	if opts.Events == nil {
		opts.Events = &eventLog{}
	}
	opts.DataDir = filepath.Join(t.TempDir(), "trainer")
	if opts.Defaults.Task == "" {
		opts.Defaults = modelCfg()
	}
	opts.Now = w.now
	tr, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// writer opens a Kafka writer of the world's topic, closed when t ends.
func (w *world) writer(t *testing.T, topic string) *kafka.Writer {
	t.Helper()
	wr, err := kafkaio.NewWriter(w.kopts, topic)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wr.Close() })
	return wr
}

// triggerReader opens a reader of retrain-triggers in group, closed when
// t ends.
func (w *world) triggerReader(t *testing.T, group string) *kafka.Reader {
	t.Helper()
	rd, err := kafkaio.NewReader(w.kopts, "retrain-triggers", group)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rd.Close() })
	return rd
}

func trigger(model, id, dedup string, at time.Time) schemas.RetrainTrigger {
	return schemas.RetrainTrigger{TriggerID: id, ModelID: model, Reason: schemas.TriggerPerformance, CreatedAt: at, DedupKey: dedup, Policy: "test"}
}

func TestTrainer(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()

	// A trigger for the drifted model, delivered three times through
	// Kafka (plus one malformed message): one run, promoted.
	t.Run("drift promoted, three deliveries one run", func(t *testing.T) {
		tr := w.trainer(t, Options{Triggers: w.triggerReader(t, "retrain-test"), Events: w.writer(t, "model-events"), DeadLetters: w.writer(t, "dead-letters")})
		raw, _ := json.Marshal(trigger("model-0", "trig-a", "perf:model-0:w1", w.now()))
		tw := w.writer(t, "retrain-triggers")
		msgs := []kafka.Message{{Key: []byte("model-0"), Value: raw}, {Key: []byte("model-0"), Value: []byte(`{"trigger_id": 1}`)},
			{Key: []byte("model-0"), Value: raw}, {Key: []byte("model-0"), Value: raw}}
		if err := tw.WriteMessages(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- tr.Run(rctx) }()
		// The trainer has consumed all four messages once it counted three
		// valid deliveries of the trigger, two of them skipped (as queued
		// or running, or as already run) and the malformed one
		// dead-lettered; and the one run has finished.
		skipped := func() float64 {
			return testutil.ToFloat64(tr.m.skipped.WithLabelValues("model-0", "queued")) + testutil.ToFloat64(tr.m.skipped.WithLabelValues("model-0", "duplicate"))
		}
		consumed := func() bool {
			return testutil.ToFloat64(tr.m.received.WithLabelValues("model-0")) == 3 && skipped() == 2 && testutilCount(tr.m.deadLettered) == 1
		}
		deadline := time.Now().Add(6 * time.Minute)
		for {
			runs, err := tr.Runs(ctx, "model-0")
			if err != nil {
				t.Fatal(err)
			}
			// Finished and registered: the run row is written first, then
			// the models row, then the run row again with the events
			// published; stopping the trainer before the last would cut
			// the registration short (Recover completes it on a restart).
			if len(runs) == 1 && runs[0].Status != RunRunning && eventsPublished(runs[0]) && consumed() {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("runs %+v; received %v, skipped %v, dead-lettered %v: want one finished run, 3 received, 2 skipped, 1 dead-lettered",
					runs, testutil.ToFloat64(tr.m.received.WithLabelValues("model-0")), skipped(), testutilCount(tr.m.deadLettered))
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Logf("redeliveries skipped: %v as queued or running, %v as already run",
			testutil.ToFloat64(tr.m.skipped.WithLabelValues("model-0", "queued")), testutil.ToFloat64(tr.m.skipped.WithLabelValues("model-0", "duplicate")))
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		runs, err := tr.Runs(ctx, "model-0")
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) != 1 {
			t.Fatalf("%d runs, want 1", len(runs))
		}
		r := runs[0]
		t.Logf("run: status %s, %s; rows train %d val %d test %d eval %d; cpu %.2fs; steps %v", r.Status, r.DecisionReason, r.RowsTrain, r.RowsValidation, r.RowsTest, r.RowsEval, r.CPUSeconds, r.StepSeconds)
		if r.Status != RunSucceeded || r.Decision != DecisionPromote {
			t.Fatalf("run %s (%s), want succeeded (promote)", r.Status, r.DecisionReason)
		}
		if !testcheck.AtLeast(r.Metrics["roc_auc"], r.ChampionMetrics["roc_auc"]+0.05) || !(r.DiffLo > 0) {
			t.Errorf("challenger auc %.3f vs champion %.3f, CI lo %.3f", r.Metrics["roc_auc"], r.ChampionMetrics["roc_auc"], r.DiffLo)
		}
		if r.RowsTrain == 0 || r.RowsEval == 0 || r.RowsRead != r.RowsTrain+r.RowsValidation+r.RowsTest+r.RowsEval || r.BytesWritten == 0 {
			t.Errorf("row counts %+v", r)
		}
		vs, err := tr.ListVersions(ctx, "model-0")
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) != 1 || vs[0].Status != StatusChampion || vs[0].Version != r.Version {
			t.Fatalf("versions %+v", vs)
		}
		// The built-in model's coefficient importance is registered with
		// the version: one share per feature, summing to 1.
		var share float64
		for _, v := range vs[0].CoefficientImportance {
			share += v
		}
		if d := math.Abs(share - 1); len(vs[0].CoefficientImportance) == 0 || !(d <= 1e-9) {
			t.Errorf("coefficient importance %v, want shares summing to 1", vs[0].CoefficientImportance)
		}
		// And its permutation importance on the evaluation window.
		share = 0
		for _, v := range vs[0].FeatureImportance {
			share += v
		}
		if d := math.Abs(share - 1); len(vs[0].FeatureImportance) == 0 || !(d <= 1e-9) {
			t.Errorf("feature importance %v, want shares summing to 1", vs[0].FeatureImportance)
		}
		t.Logf("feature importance %v; coefficient importance %v", vs[0].FeatureImportance, vs[0].CoefficientImportance)
		art := strings.TrimPrefix(vs[0].ArtifactURI, "file://")
		for _, f := range []string{"model.json", "metadata.json"} {
			if _, err := os.Stat(filepath.Join(art, f)); err != nil {
				t.Error(err)
			}
		}
		// What serve and driftwatch models export read: the checksum
		// matches and the artifact loads.
		if m, _, err := ReadArtifact(vs[0].ArtifactURI); err != nil || m.Kind != model.KindLogistic {
			t.Errorf("ReadArtifact(%s): %v", vs[0].ArtifactURI, err)
		}
		if got := testutilCount(tr.m.deadLettered); got != 1 {
			t.Errorf("dead-lettered %v, want 1", got)
		}
	})

	t.Run("nothing changed rejected", func(t *testing.T) {
		ev := &eventLog{}
		tr := w.trainer(t, Options{Events: ev})
		r, err := tr.RunTrigger(ctx, trigger("model-1", "trig-b", "perf:model-1:w1", w.now()))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("run: %s", r.DecisionReason)
		if r.Status != RunRejected || r.Decision != DecisionReject || !strings.Contains(r.DecisionReason, "not better") {
			t.Fatalf("run %s: %s, want rejected", r.Status, r.DecisionReason)
		}
		if got := strings.Join(ev.kinds(t), ","); got != "model-1:registered,model-1:rejected" {
			t.Errorf("events %s", got)
		}
		// The same dedup key again (another trigger id): skipped.
		r2, err := tr.RunTrigger(ctx, trigger("model-1", "trig-b2", "perf:model-1:w1", w.now()))
		if err != nil || r2 != nil {
			t.Fatalf("second run %+v, %v; want skipped", r2, err)
		}
		vs, _ := tr.ListVersions(ctx, "model-1")
		if len(vs) != 1 || vs[0].Status != StatusRejected {
			t.Fatalf("versions %+v", vs)
		}
	})

	script, err := filepath.Abs("testdata/train.py")
	if err != nil {
		t.Fatal(err)
	}
	external := func(args ...string) ModelConfig {
		mc := modelCfg()
		mc.Trainer = TrainerExternal
		mc.Command = append([]string{"python3", script}, args...)
		mc.Timeout = 2 * time.Minute
		return mc
	}

	t.Run("external trainer evaluated like built-in", func(t *testing.T) {
		tr := w.trainer(t, Options{Settings: Settings{Defaults: external()}})
		r, err := tr.RunTrigger(ctx, trigger("model-0", "trig-c", "perf:model-0:external", w.now()))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("run: %s %s cpu %.2fs", r.Status, r.DecisionReason, r.CPUSeconds)
		if r.Status != RunSucceeded || r.Trainer != TrainerExternal {
			t.Fatalf("run %s: %s, want succeeded", r.Status, r.DecisionReason)
		}
		if _, err := os.Stat(filepath.Join(strings.TrimPrefix(r.ArtifactURI, "file://"), "model.json")); err != nil {
			t.Error(err)
		}
		// Promoting this version retired the earlier champion.
		vs, _ := tr.ListVersions(ctx, "model-0")
		champs := 0
		for _, v := range vs {
			if v.Status == StatusChampion {
				champs++
			}
		}
		if len(vs) != 2 || champs != 1 {
			t.Errorf("versions %+v", vs)
		}
	})

	for _, tc := range []struct {
		name, arg, want string
		timeout         time.Duration
	}{
		{"failing command", "--fail", "exit status 3; last output: train.py: refusing to train", 0},
		{"hanging command", "--hang", "timed out after 2s", 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mc := external(tc.arg)
			if tc.timeout > 0 {
				mc.Timeout = tc.timeout
			}
			ev := &eventLog{}
			tr := w.trainer(t, Options{Settings: Settings{Defaults: mc}, Events: ev})
			r, err := tr.RunTrigger(ctx, trigger("model-1", "trig-"+tc.arg, "x"+tc.arg, w.now()))
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != RunFailed || !strings.Contains(r.DecisionReason, tc.want) {
				t.Fatalf("run %s: %q, want failed with %q", r.Status, r.DecisionReason, tc.want)
			}
			if got := strings.Join(ev.kinds(t), ","); got != "model-1:failed" {
				t.Errorf("events %s", got)
			}
		})
	}

	// A run longer than one attempt of the services' dependency wait
	// (30 s): through the consumer it must run to its end, not be cut
	// short and retried as interrupted.
	t.Run("run longer than 30s through the consumer", func(t *testing.T) {
		mc := external()
		mc.Command = append([]string{"sh", "-c", `sleep 35 && exec "$0" "$@"`}, mc.Command...)
		// A lease shorter than the run: the heartbeats must keep it.
		const leaseFor = 9 * time.Second
		tr := w.trainer(t, Options{Triggers: w.triggerReader(t, "retrain-test-slow"), Events: &eventLog{}, DeadLetters: w.writer(t, "dead-letters"),
			Settings: Settings{Defaults: mc, Lease: leaseFor}})
		raw, _ := json.Marshal(trigger("model-1", "trig-slow", "slow:model-1", w.now()))
		tw := w.writer(t, "retrain-triggers")
		if err := tw.WriteMessages(ctx, kafka.Message{Key: []byte("model-1"), Value: raw}); err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- tr.Run(rctx) }()
		var (
			r          *Run
			leaseSeen  int
			leaseMax   time.Duration
			heartbeats = map[int64]bool{} // distinct heartbeat_at seen while running
			owners     = map[string]bool{}
		)
		for deadline := time.Now().Add(6 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
			runs, err := tr.Runs(ctx, "model-1")
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(runs, func(r *Run) bool { return r.TriggerID == "trig-slow" })
			if i >= 0 && runs[i].Status == RunRunning {
				l, err := tr.store().lease(ctx, runs[i])
				if err != nil {
					t.Fatal(err)
				}
				if l != nil {
					leaseSeen++
					leaseMax = max(leaseMax, l.age)
					owners[l.owner] = true
				}
				var at int64
				if err := w.conn.QueryRow(ctx, "SELECT toUnixTimestamp64Milli(heartbeat_at) FROM training_leases FINAL WHERE run_id = "+chsql.String(runs[i].RunID)).Scan(&at); err == nil {
					heartbeats[at] = true
				}
			}
			if i >= 0 && runs[i].Status != RunRunning && (runs[i].Status != RunFailed || !(runs[i].Interrupted && strings.HasPrefix(runs[i].DecisionReason, interruptedReason)) || runs[i].Attempt >= 3) {
				r = runs[i]
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the slow run did not end: %+v", runs)
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		// Figures, not checks: how late the heartbeats were depends on the
		// machine.
		t.Logf("slow run: %s %q, attempt %d, steps %v; lease seen %d times while running, %d distinct heartbeats, oldest heartbeat %v (lease %v)",
			r.Status, r.DecisionReason, r.Attempt, r.StepSeconds, leaseSeen, len(heartbeats), leaseMax, leaseFor)
		// Order and outcome: the lease was renewed while the run went on
		// (a first heartbeat and at least two more), by one owner, and the
		// run ended in its first attempt, trained and judged — never
		// taken over as abandoned.
		if len(heartbeats) < 3 || len(owners) != 1 {
			t.Errorf("%d distinct heartbeats by %d owners seen during the run, want the lease renewed (3 or more) by one owner", len(heartbeats), len(owners))
		}
		if _, trained := r.StepSeconds["train"]; (r.Status != RunSucceeded && r.Status != RunRejected) || r.Attempt != 1 || !trained || r.Interrupted {
			t.Errorf("slow run %s %q after %d attempts, want one attempt that trained and was judged", r.Status, r.DecisionReason, r.Attempt)
		}
	})

	// The budget: a model without data fails every run it starts, and
	// failed runs count.
	t.Run("retrain budget", func(t *testing.T) {
		mc := modelCfg()
		mc.MaxRunsPerDay, mc.MinInterval = 2, time.Hour
		ev := &eventLog{}
		tr := w.trainer(t, Options{Settings: Settings{Defaults: mc}, Events: ev})
		clock := w.now()
		tr.opts.Now = func() time.Time { return clock }
		manual := func(id string) schemas.RetrainTrigger {
			trig := trigger("model-budget", id, id, clock)
			trig.Reason = schemas.TriggerManual
			return trig
		}
		step := func(trig schemas.RetrainTrigger, status, reason string) {
			t.Helper()
			r, err := tr.RunTrigger(ctx, trig)
			if err != nil || r == nil {
				t.Fatalf("%s: %+v, %v", trig.TriggerID, r, err)
			}
			if r.Status != status || !strings.HasPrefix(r.DecisionReason, reason) {
				t.Fatalf("%s: run %s %q, want %s %q…", trig.TriggerID, r.Status, r.DecisionReason, status, reason)
			}
		}
		step(trigger("model-budget", "b1", "b1", clock), RunFailed, "training run failed") // ran (no data)
		clock = clock.Add(10 * time.Minute)
		step(trigger("model-budget", "b2", "b2", clock), RunSkipped, "budget: min_interval 1h0m0s not elapsed")
		// Its redelivery is a duplicate, not a second skip.
		if r, err := tr.RunTrigger(ctx, trigger("model-budget", "b2", "b2", clock)); r != nil || err != nil {
			t.Fatalf("redelivered b2: %+v, %v", r, err)
		}
		clock = clock.Add(time.Minute)                       // runs are listed by start time
		step(manual("m1"), RunFailed, "training run failed") // manual: min_interval does not apply
		clock = clock.Add(2 * time.Hour)
		step(manual("m2"), RunSkipped, "budget: max_runs_per_day 2 reached")
		clock = clock.Add(time.Minute)
		step(trigger("model-budget", "b3", "b3", clock), RunSkipped, "budget: max_runs_per_day 2 reached")
		clock = clock.Add(23 * time.Hour) // the first two runs are more than a day old
		step(trigger("model-budget", "b4", "b4", clock), RunFailed, "training run failed")

		runs, err := tr.Runs(ctx, "model-budget")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range runs {
			got = append(got, r.TriggerID+":"+r.Status)
		}
		if want := "b1:failed,b2:skipped,m1:failed,m2:skipped,b3:skipped,b4:failed"; strings.Join(got, ",") != want {
			t.Errorf("runs %s, want %s", strings.Join(got, ","), want)
		}
		if n := testutil.ToFloat64(tr.m.budgetSkipped.WithLabelValues(BudgetMinInterval)); n != 1 {
			t.Errorf("budget skipped (min_interval) %v, want 1", n)
		}
		if n := testutil.ToFloat64(tr.m.budgetSkipped.WithLabelValues(BudgetMaxRunsPerDay)); n != 2 {
			t.Errorf("budget skipped (max_runs_per_day) %v, want 2", n)
		}
		if got := strings.Join(ev.kinds(t), ","); got != "model-budget:failed,model-budget:failed,model-budget:failed" {
			t.Errorf("events %s (a skipped trigger publishes none)", got)
		}
		if vs, _ := tr.ListVersions(ctx, "model-budget"); len(vs) != 0 {
			t.Errorf("versions %+v", vs)
		}
	})

	// The models row written, the events lost: Recover, or the trigger's
	// redelivery, publishes them, once.
	for _, via := range []string{"recover", "redelivery"} {
		t.Run("events republished after "+via, func(t *testing.T) {
			ev := &flakyEvents{fail: true}
			tr := w.trainer(t, Options{Events: ev})
			trig := trigger("model-1", "trig-ev-"+via, "events:"+via, w.now())
			if r, err := tr.RunTrigger(ctx, trig); err == nil {
				t.Fatalf("run %+v with Kafka down: no error", r)
			}
			var run *Run
			runs, _ := tr.Runs(ctx, "model-1")
			for _, r := range runs {
				if r.TriggerID == trig.TriggerID {
					run = r
				}
			}
			if run == nil || run.Status != RunRejected || eventsPublished(run) {
				t.Fatalf("run after the lost events: %+v", run)
			}
			ev.fail = false
			if via == "recover" {
				if err := tr.Recover(ctx); err != nil {
					t.Fatal(err)
				}
				if err := tr.Recover(ctx); err != nil {
					t.Fatal(err)
				}
			} else if r, err := tr.RunTrigger(ctx, trig); err != nil || r == nil || r.RunID != run.RunID {
				t.Fatalf("redelivery: %+v, %v", r, err)
			}
			if r, err := tr.RunTrigger(ctx, trig); r != nil || err != nil {
				t.Fatalf("second redelivery: %+v, %v; want skipped", r, err)
			}
			if got := strings.Join(ev.kinds(t), ","); got != "model-1:registered,model-1:rejected" {
				t.Errorf("events %s", got)
			}
			n := 0
			vs, _ := tr.ListVersions(ctx, "model-1")
			for _, v := range vs {
				if v.Version == run.Version {
					n++
				}
			}
			if n != 1 {
				t.Errorf("version %s registered %d times", run.Version, n)
			}
		})
	}

	t.Run("a trigger that cannot run does not block the next", func(t *testing.T) { testPoisonTriggers(t, w) })

	t.Run("only signed triggers train", func(t *testing.T) { testSignedTriggers(t, w) })

	t.Run("recover interrupted run", func(t *testing.T) {
		tr := w.trainer(t, Options{})
		// A run a killed trainer left running.
		trig := trigger("model-1", "trig-k", "kill", w.now())
		id := RunID("model-1", "kill")
		if err := tr.store().writeRun(ctx, &Run{RunID: id, ModelID: "model-1", Version: "r" + id[:12], TriggerID: trig.TriggerID, DedupKey: trig.DedupKey,
			Attempt: 1, Status: RunRunning, StartedAt: w.now()}); err != nil {
			t.Fatal(err)
		}
		if err := tr.Recover(ctx); err != nil {
			t.Fatal(err)
		}
		runs, _ := tr.Runs(ctx, "model-1")
		var got *Run
		for _, r := range runs {
			if r.RunID == id {
				got = r
			}
		}
		if got == nil || got.Status != RunFailed || !(got.Interrupted && strings.HasPrefix(got.DecisionReason, interruptedReason)) {
			t.Fatalf("after recover: %+v", got)
		}
		// The redelivered trigger retries it under the same run and version.
		r, err := tr.RunTrigger(ctx, trig)
		if err != nil || r == nil || r.RunID != id || r.Attempt != 2 || r.Status == RunFailed {
			t.Fatalf("retry: %+v, %v", r, err)
		}
		vs, _ := tr.ListVersions(ctx, "model-1")
		n := 0
		for _, v := range vs {
			if v.Version == r.Version {
				n++
			}
		}
		if n != 1 {
			t.Errorf("version %s registered %d times", r.Version, n)
		}
	})
}

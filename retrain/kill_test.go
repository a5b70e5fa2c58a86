package retrain

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/teststack"
	"github.com/driftwatch/driftwatch/schemas"
)

// TestTrainerSIGKILL kills the trainer binary with SIGKILL while its run
// is in the external command and restarts it: the interrupted run is
// retried under the same run id and version and completes, and the
// registry holds exactly one row for that version, one champion, and one
// registered and one promoted event.
func TestTrainerSIGKILL(t *testing.T) {
	w := newWorld(t)
	bin := teststack.Build(t, "./services/trainer")
	dir := t.TempDir()
	script, err := filepath.Abs("testdata/train.py")
	if err != nil {
		t.Fatal(err)
	}
	// The first attempt records its pid and hangs (until the test kills
	// it, the trainer being dead); later attempts train.
	marker := filepath.Join(dir, "first-attempt.pid")
	wrapper := filepath.Join(dir, "train.sh")
	if err := os.WriteFile(wrapper, []byte(fmt.Sprintf("#!/bin/sh\nif [ ! -e %q ]; then echo $$ > %q; exec sleep 600; fi\nexec python3 %q \"$@\"\n",
		marker, marker, script)), 0o755); err != nil {
		t.Fatal(err)
	}
	killHung := func() {
		if raw, err := os.ReadFile(marker); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil && pid > 0 {
				_ = syscall.Kill(-pid, syscall.SIGKILL) // its own process group
			}
		}
	}
	t.Cleanup(killHung)
	// Maturity 11h: the world's data ends 10 to 11 hours before the
	// binary's (real) clock. The budget is left at its defaults: the retry
	// of the interrupted run must not count against it.
	cfg := fmt.Sprintf(`data_dir: %q
defaults:
  task: binary_classification
  positive_class: "1"
  maturity: 11h
  train_window: 20h
  eval_window: 6h
  resamples: 300
  trainer: external
  command: ["sh", %q]
  timeout: 5m
`, filepath.Join(dir, "trainer"), wrapper)
	cfgPath := filepath.Join(dir, "trainer.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	httpAddr := "127.0.0.1:" + strconv.Itoa(teststack.FreePort(t))
	env := []string{"DRIFTWATCH_KAFKA_BROKERS=" + strings.Join(w.brokers, ","), "DRIFTWATCH_TOPIC_PREFIX=" + w.kopts.TopicPrefix,
		"DRIFTWATCH_CLICKHOUSE_URL=" + w.url, "DRIFTWATCH_HTTP_ADDR=" + httpAddr, "DRIFTWATCH_LOG_LEVEL=info", "DRIFTWATCH_SHUTDOWN_TIMEOUT=10s"}
	start := func() *teststack.Process {
		p := teststack.Start(t, "trainer", bin, env, "-config", cfgPath)
		teststack.WaitHTTP(t, "http://"+httpAddr+"/readyz", 90*time.Second, p)
		return p
	}
	proc := start()

	ctx := context.Background()
	tw, err := kafkaio.NewWriter(w.kopts, "retrain-triggers")
	if err != nil {
		t.Fatal(err)
	}
	defer tw.Close()
	trig := trigger("model-0", "trig-kill", "perf:model-0:kill", time.Now().UTC())
	raw, _ := json.Marshal(trig)
	if err := tw.WriteMessages(ctx, kafka.Message{Key: []byte("model-0"), Value: raw}); err != nil {
		t.Fatal(err)
	}

	q := w.trainer(t, Options{}) // for its queries only
	runID := RunID("model-0", trig.DedupKey)
	run := func() *Run {
		t.Helper()
		runs, err := q.Runs(ctx, "model-0")
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) > 1 {
			t.Fatalf("%d runs for one trigger", len(runs))
		}
		if len(runs) == 0 {
			return nil
		}
		return runs[0]
	}
	waitFor := func(what string, d time.Duration, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out after %s waiting for %s; trainer output:\n%s", d, what, proc.Output())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitFor("the run to hang in the external command", 2*time.Minute, func() bool {
		_, err := os.Stat(marker)
		r := run()
		return err == nil && r != nil && r.Status == RunRunning
	})
	proc.Kill() // SIGKILL: no deferred write, no commit
	killHung()
	t.Log("trainer killed with SIGKILL mid-run")
	if r := run(); r == nil || r.Status != RunRunning || r.Attempt != 1 {
		t.Fatalf("after the kill: %+v", r)
	}
	if vs, _ := q.ListVersions(ctx, "model-0"); len(vs) != 0 {
		t.Fatalf("a killed run registered %+v", vs)
	}
	// The kill hit the trigger in flight: its offset was not committed,
	// so the restarted trainer gets it again.
	group, topic := w.kopts.Prefix()+"trainer", w.kopts.Topic("retrain-triggers")
	committed := func() int64 {
		t.Helper()
		n, err := teststack.Committed(ctx, w.brokers, group, topic)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := committed(); n != 0 {
		t.Fatalf("%d trigger offsets committed by the killed trainer, want 0 (its run had not ended)", n)
	}

	proc = start()
	waitFor("the retried run to finish", 3*time.Minute, func() bool {
		r := run()
		return r != nil && r.Attempt >= 2 && r.Status != RunRunning
	})
	// The killed process was on this host: its run was taken over at
	// once, without waiting for its lease to lapse.
	if out := proc.Output(); !strings.Contains(out, "no longer runs on this host") {
		t.Errorf("the restarted trainer did not recognise the killed one as gone; output:\n%s", out)
	}
	// Redelivered: the restarted trainer received the trigger again, and
	// committed it once the retried run was recorded.
	if n, err := teststack.MetricSum(ctx, httpAddr, "driftwatch_trainer_triggers_received_total"); err != nil || n != 1 {
		t.Errorf("the restarted trainer received %v triggers (%v), want the one redelivered", n, err)
	}
	waitFor("the redelivered trigger committed", time.Minute, func() bool { return committed() == 1 })
	r := run()
	// The run row is final before the models row and the events are written.
	waitFor("the version registered", time.Minute, func() bool {
		return r.Status != RunSucceeded || w.count(t, "SELECT count() FROM models FINAL WHERE model_id = 'model-0' AND status = 'champion'") > 0
	})
	t.Logf("run %s attempt %d: %s %s", r.RunID, r.Attempt, r.Status, r.DecisionReason)
	if r.RunID != runID || r.Attempt != 2 || r.Status != RunSucceeded {
		t.Fatalf("run %s attempt %d %s (%s); want %s attempt 2 succeeded", r.RunID, r.Attempt, r.Status, r.DecisionReason, runID)
	}
	if n := w.count(t, fmt.Sprintf("SELECT count() FROM models FINAL WHERE model_id = 'model-0' AND version = %s", chsql.String(r.Version))); n != 1 {
		t.Errorf("%d models rows for version %s, want 1", n, r.Version)
	}
	if n := w.count(t, "SELECT count() FROM models FINAL WHERE model_id = 'model-0'"); n != 1 {
		t.Errorf("%d versions of model-0, want 1", n)
	}
	if n := w.count(t, "SELECT count() FROM models FINAL WHERE model_id = 'model-0' AND status = 'champion'"); n != 1 {
		t.Errorf("%d champions of model-0, want 1", n)
	}
	if _, err := os.Stat(filepath.Join(dir, "trainer", "artifacts", "model-0", r.Version, "model.json")); err != nil {
		t.Error(err)
	}

	// Exactly one registered and one promoted event for the version.
	rd, err := kafkaio.NewReader(w.kopts, "model-events", "retrain-kill-test")
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	seen := map[string]int{}
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		m, err := rd.FetchMessage(rctx)
		if err != nil {
			break // the deadline: every event has been read
		}
		ev, err := schemas.DecodeModelEvent(m.Value)
		if err != nil {
			t.Fatalf("model event: %v", err)
		}
		seen[ev.Version+":"+string(ev.Kind)]++
	}
	want := map[string]int{r.Version + ":registered": 1, r.Version + ":promoted": 1}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("model events %v, want %v", seen, want)
	}
	if !strings.Contains(proc.Output(), "marked an interrupted training run failed") || !strings.Contains(proc.Output(), "retrying interrupted run") {
		t.Errorf("the restarted trainer did not recover and retry the run:\n%s", proc.Output())
	}
}

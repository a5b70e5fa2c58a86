package retrain

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/schemas"
)

// withTopics is the world with its own retrain-triggers and dead-letters
// topics (the same database), so that a subtest's triggers reach no other
// subtest's consumer group.
func (w *world) withTopics(t *testing.T, name string) *world {
	t.Helper()
	wt := *w
	wt.kopts.TopicPrefix = w.kopts.TopicPrefix + name + "."
	specs := []kafkaio.TopicSpec{{Name: wt.kopts.Topic("retrain-triggers"), Partitions: 3}}
	specs = append(specs, kafkaio.Specs(wt.kopts, schemas.TopicFor(schemas.TopicDeadLetters))[0])
	if err := kafkaio.EnsureTopics(context.Background(), kafkaio.Options{Brokers: w.brokers}, specs); err != nil {
		t.Fatal(err)
	}
	return &wt
}

// deadLetters reads the world's dead-letter topic until want messages
// arrived (or a minute passed).
func (w *world) deadLetters(t *testing.T, want int) []kafka.Message {
	t.Helper()
	rd, err := kafkaio.NewReader(w.kopts, "dead-letters", "dead-letter-reader")
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out []kafka.Message
	for len(out) < want {
		m, err := rd.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("%d of %d dead letters: %v", len(out), want, err)
		}
		out = append(out, m)
	}
	return out
}

// committed returns the consumer group's committed offset of the
// retrain-triggers partition.
func (w *world) committed(t *testing.T, group string, partition int) int64 {
	t.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(w.brokers...), Timeout: 10 * time.Second}
	topic := w.kopts.Topic("retrain-triggers")
	resp, err := cl.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{Addr: net.Addr(kafka.TCP(w.brokers[0])), GroupID: group,
		Topics: map[string][]int{topic: {partition}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range resp.Topics[topic] {
		if p.Partition == partition {
			return p.CommittedOffset
		}
	}
	return -1
}

// testPoisonTriggers: a trigger that cannot run — one over the schema's
// limits (a 300 KB dedup_key, whose registry lookup exceeded ClickHouse's
// max_query_size), or one ClickHouse refuses to record (a CHECK
// constraint, a permanent error by chclient.Classify) — is dead-lettered
// with a reason saying why, its offset committed, and the valid trigger
// behind it on the same partition runs, with a single worker.
func testPoisonTriggers(t *testing.T, w *world) {
	ctx := context.Background()
	if err := w.conn.Exec(ctx, "ALTER TABLE training_runs ADD CONSTRAINT no_poison CHECK dedup_key != 'poison'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.conn.Exec(ctx, "ALTER TABLE training_runs DROP CONSTRAINT no_poison") })
	for _, tc := range []struct {
		name, dedup    string
		reason, errMsg string
	}{
		{"300 KB dedup_key", strings.Repeat("k", 300<<10), string(schemas.ReasonInvalidField), "dedup_key: 307200 bytes, at most 256"},
		{"refused by ClickHouse", "poison", string(schemas.ReasonRejectedByStorage), "code: 469"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wt := w.withTopics(t, strings.ReplaceAll(tc.name, " ", "-"))
			const group = "poison"
			tr := w.trainer(t, Options{Triggers: wt.triggerReader(t, group), Events: &eventLog{}, DeadLetters: wt.writer(t, "dead-letters"),
				Settings: Settings{Workers: 1}})
			// The bad trigger is manual, so the queue hands it out first.
			bad := trigger("model-1", "trig-bad-"+tc.dedup[:6], tc.dedup, w.now())
			bad.Reason = schemas.TriggerManual
			good := trigger("model-1", "trig-after-"+tc.dedup[:6], "after:"+tc.dedup[:6], w.now())
			badRaw, _ := json.Marshal(bad)
			goodRaw, _ := json.Marshal(good)
			if err := wt.writer(t, "retrain-triggers").WriteMessages(ctx, kafka.Message{Key: []byte("model-1"), Value: badRaw},
				kafka.Message{Key: []byte("model-1"), Value: goodRaw}); err != nil {
				t.Fatal(err)
			}
			rctx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- tr.Run(rctx) }()
			stopped := false
			stop := func() {
				if !stopped {
					stopped = true
					cancel()
					if err := <-done; err != nil {
						t.Error(err)
					}
				}
			}
			defer stop()
			var run *Run
			for deadline := time.Now().Add(4 * time.Minute); run == nil; time.Sleep(500 * time.Millisecond) {
				runs, err := tr.Runs(ctx, "model-1")
				if err != nil {
					t.Fatal(err)
				}
				if i := slices.IndexFunc(runs, func(r *Run) bool { return r.TriggerID == good.TriggerID && r.Status != RunRunning }); i >= 0 {
					run = runs[i]
				}
				if time.Now().After(deadline) {
					t.Fatalf("the valid trigger behind the bad one did not run within 4 minutes")
				}
			}
			t.Logf("valid trigger: run %s %s (%s)", run.Status, run.Decision, run.DecisionReason)
			if run.Status != RunSucceeded && run.Status != RunRejected {
				t.Errorf("valid trigger: run %s %q, want trained and judged", run.Status, run.DecisionReason)
			}
			// Its artifact and work directories are 0700 under data_dir.
			art := strings.TrimPrefix(run.ArtifactURI, "file://")
			if !strings.HasPrefix(art, filepath.Join(tr.opts.DataDir, "artifacts", "model-1")+"/") {
				t.Errorf("artifact %s not under %s", art, tr.opts.DataDir)
			}
			for _, d := range []string{tr.opts.DataDir, filepath.Join(tr.opts.DataDir, "artifacts"), filepath.Dir(art), art,
				filepath.Join(tr.opts.DataDir, "work"), filepath.Join(tr.opts.DataDir, "work", "model-1")} {
				if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 || !fi.IsDir() {
					t.Errorf("%s: %v, want a directory of mode 0700", d, fi.Mode())
				}
			}
			dl := wt.deadLetters(t, 1)[0]
			h := headers(dl)
			t.Logf("dead letter: reason %s, error %.200s", h[schemas.HeaderReason], h[schemas.HeaderError])
			if h[schemas.HeaderReason] != tc.reason || !strings.Contains(h[schemas.HeaderError], tc.errMsg) || string(dl.Value) != string(badRaw) ||
				h[schemas.HeaderSourceOffset] != "0" || h[schemas.HeaderSourceTopic] != wt.kopts.Topic("retrain-triggers") {
				t.Errorf("dead letter %v (value %d bytes), want reason %s with %q, the trigger, source offset 0", h, len(dl.Value), tc.reason, tc.errMsg)
			}
			if len(h[schemas.HeaderError]) > 2048 {
				t.Errorf("dead letter error header of %d bytes", len(h[schemas.HeaderError]))
			}
			if n := testutilCount(tr.m.deadLettered); n != 1 {
				t.Errorf("dead-lettered %v, want 1", n)
			}
			// Both offsets are committed: a restart redelivers neither.
			partition, _ := strconv.Atoi(h[schemas.HeaderSourcePartition])
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				off := wt.committed(t, group, partition)
				if off == 2 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("committed offset %d of partition %d, want 2", off, partition)
				}
			}
			stop()
			runs, _ := tr.Runs(ctx, "model-1")
			for _, r := range runs {
				if r.TriggerID == bad.TriggerID && r.Status == RunRunning {
					t.Errorf("the refused trigger left a running run: %+v", r)
				}
			}
		})
	}
}

func headers(m kafka.Message) map[string]string {
	h := map[string]string{}
	for _, kv := range m.Headers {
		h[kv.Key] = string(kv.Value)
	}
	return h
}

package retrain

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/internal/signing"
	"github.com/driftwatch/driftwatch/schemas"
)

// testSignedTriggers: a trainer with a signing key dead-letters an
// unsigned trigger (unsigned_trigger), one signed with another key and
// one whose value was altered after signing (bad_signature), records no
// run for any of them, and trains the signed trigger behind them on the
// same partition.
func testSignedTriggers(t *testing.T, w *world) {
	ctx := context.Background()
	wt := w.withTopics(t, "signed")
	key := signing.New([]byte("0123456789abcdef0123456789abcdef-trainer"))
	forger := signing.New([]byte("another key, 32 bytes or more, not the trainer's"))
	tr := w.trainer(t, Options{Triggers: wt.triggerReader(t, "signed"), Events: &eventLog{}, DeadLetters: wt.writer(t, "dead-letters"),
		Settings: Settings{Workers: 1}, TriggerKey: key})

	msg := func(id string, sign *signing.Key) kafka.Message {
		trig := trigger("model-1", id, "signed-test:"+id, w.now())
		trig.Reason = schemas.TriggerManual
		raw, _ := json.Marshal(trig)
		m := kafka.Message{Key: []byte("model-1"), Value: raw, Headers: []kafka.Header{{Key: schemas.SchemaHeader, Value: []byte(schemas.KindRetrainTrigger.SchemaName())}}}
		sign.AddTo(&m)
		return m
	}
	unsigned := msg("trig-unsigned", nil)
	forged := msg("trig-forged", forger)
	// Signed, then its model changed: the budget of another model spent
	// with a captured signature.
	altered := msg("trig-altered", key)
	var tv schemas.RetrainTrigger
	_ = json.Unmarshal(altered.Value, &tv)
	tv.DedupKey = "signed-test:trig-altered:replayed"
	altered.Value, _ = json.Marshal(tv)
	good := msg("trig-signed", key)
	if err := wt.writer(t, "retrain-triggers").WriteMessages(ctx, unsigned, forged, altered, good); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- tr.Run(rctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	var run *Run
	for deadline := time.Now().Add(4 * time.Minute); run == nil; time.Sleep(500 * time.Millisecond) {
		runs, err := tr.Runs(ctx, "model-1")
		if err != nil {
			t.Fatal(err)
		}
		if i := slices.IndexFunc(runs, func(r *Run) bool { return r.TriggerID == "trig-signed" && r.Status != RunRunning }); i >= 0 {
			run = runs[i]
		}
		if time.Now().After(deadline) {
			t.Fatal("the signed trigger did not run within 4 minutes")
		}
	}
	t.Logf("signed trigger: run %s %s (%s)", run.Status, run.Decision, run.DecisionReason)
	if run.Status != RunSucceeded && run.Status != RunRejected {
		t.Errorf("signed trigger: run %s %q, want trained and judged", run.Status, run.DecisionReason)
	}

	want := map[string]string{"trig-unsigned": string(signing.ReasonUnsigned), "trig-forged": string(signing.ReasonBadSignature),
		"trig-altered": string(signing.ReasonBadSignature)}
	for _, dl := range wt.deadLetters(t, 3) {
		var got schemas.RetrainTrigger
		_ = json.Unmarshal(dl.Value, &got)
		h := headers(dl)
		t.Logf("dead letter %s: reason %s, error %s", got.TriggerID, h[schemas.HeaderReason], h[schemas.HeaderError])
		if r, ok := want[got.TriggerID]; !ok || h[schemas.HeaderReason] != r || h[schemas.HeaderError] == "" {
			t.Errorf("dead letter of %q with reason %q (error %q), want %v", got.TriggerID, h[schemas.HeaderReason], h[schemas.HeaderError], want)
		}
		delete(want, got.TriggerID)
	}
	runs, err := tr.Runs(ctx, "model-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		if r.TriggerID == "trig-unsigned" || r.TriggerID == "trig-forged" || r.TriggerID == "trig-altered" {
			t.Errorf("a trigger that failed verification has a run: %+v", r)
		}
	}
	for reason, n := range map[schemas.Reason]float64{signing.ReasonUnsigned: 1, signing.ReasonBadSignature: 2} {
		if got := testutil.ToFloat64(tr.m.deadLettered.WithLabelValues(string(reason))); got != n {
			t.Errorf("driftwatch_trainer_triggers_dead_lettered_total{reason=%q} = %v, want %v", reason, got, n)
		}
	}
}

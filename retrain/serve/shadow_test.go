package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/retrain"
	"github.com/driftwatch/driftwatch/schemas"
)

// registerChallenger writes version's artifact and registers it with
// status (candidate or rejected), created at, after the champion; event
// publishes a registered model event for it.
func (w *world) registerChallenger(t *testing.T, modelID, version, status string, intercept float64, at time.Time, event bool) {
	t.Helper()
	dir := filepath.Join(w.dir, modelID, version)
	if err := retrain.WriteArtifact(dir, testModel(t, intercept)); err != nil {
		t.Fatal(err)
	}
	v := &retrain.Version{ModelID: modelID, Version: version, Status: status, Trainer: retrain.TrainerBuiltin, ArtifactURI: "file://" + dir, CreatedAt: at.UTC()}
	if err := retrain.WriteVersion(context.Background(), w.conn, v); err != nil {
		t.Fatal(err)
	}
	if !event {
		return
	}
	raw, err := json.Marshal(schemas.ModelEvent{EventID: "registered:" + modelID + ":" + version, ModelID: modelID, Version: version,
		Kind: schemas.ModelRegistered, ArtifactURI: v.ArtifactURI, Timestamp: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.events.WriteMessages(context.Background(), kafka.Message{Key: []byte(modelID), Value: raw,
		Headers: []kafka.Header{{Key: schemas.SchemaHeader, Value: []byte(retrain.ModelSchemaHeader)}}}); err != nil {
		t.Fatal(err)
	}
}

// decodeInferences decodes logged inference events with ingest's decoder.
func decodeInferences(t *testing.T, msgs []kafka.Message) []schemas.Inference {
	t.Helper()
	out := make([]schemas.Inference, len(msgs))
	for i, m := range msgs {
		// A decoder per event: decoded strings and maps are not shared.
		d, err := schemas.NewDecoder(schemas.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.DecodeInference(m.Value, &out[i]); err != nil {
			t.Fatalf("decode %s: %v", m.Value, err)
		}
	}
	return out
}

// TestShadowScoring: with shadow_models on, each answered row is logged
// twice: by the champion (its answer, not marked) and by the newest
// challenger (its own model_version and score, the same prediction_id,
// "shadow": true); the client only sees the champion's answer. A
// challenger registered later (model event "registered") replaces it
// without a restart.
func TestShadowScoring(t *testing.T) {
	w := openWorld(t)
	w.register(t, "churn", "v1", "", 0.1, false)
	// An older rejected version (registered before the champion) is never
	// shadowed; the newest one after the champion is.
	w.registerChallenger(t, "churn", "v0", retrain.StatusRejected, 3, time.Now().Add(-time.Hour), false)
	w.registerChallenger(t, "churn", "v2", retrain.StatusRejected, -0.7, time.Now().Add(time.Second), false)
	set := DefaultSettings()
	set.ShadowModels = []string{"churn"}
	r := w.start(t, set)
	url := r.http.URL + "/v1/models/churn/"

	const n = 10
	ids := map[string]float64{} // prediction id → a
	for i := range n {
		a := float64(i) / 4
		code, raw := post(t, url+"predict", fmt.Sprintf(`{"features": {"a": %g, "b": 3, "c": "x"}, "segment": {"country": "de"}}`, a))
		if code != 200 {
			t.Fatalf("predict: %d %s", code, raw)
		}
		var resp PredictResponse
		if err := json.Unmarshal(raw, &resp); err != nil {
			t.Fatal(err)
		}
		p := resp.Predictions[0]
		if want := handScore(0.1, a, ptr(3), "x"); p.ModelVersion != "v1" || p.Score == nil || !(math.Abs(*p.Score-want) <= 1e-12) {
			t.Fatalf("answer %s, want the champion's (v1, score %v)", raw, want)
		}
		ids[p.PredictionID] = a
	}
	evs := decodeInferences(t, w.readTopic(t, schemas.TopicInferences, 2*n))
	byVersion := map[string]int{}
	for _, ev := range evs {
		a, ok := ids[ev.PredictionID]
		if !ok {
			t.Fatalf("event %s has a prediction_id no answer had", ev.EventID)
		}
		intercept := 0.1
		switch {
		case ev.ModelVersion == "v1" && !ev.Shadow:
		case ev.ModelVersion == "v2" && ev.Shadow:
			intercept = -0.7
		default:
			t.Fatalf("event of version %s shadow %v, want v1 unmarked or v2 shadow", ev.ModelVersion, ev.Shadow)
		}
		byVersion[ev.ModelVersion]++
		if want := handScore(intercept, a, ptr(3), "x"); !ev.Prediction.HasScore || !(math.Abs(ev.Prediction.Score-want) <= 1e-12) || ev.Segment["country"] != "de" || ev.Numeric["a"] != a {
			t.Errorf("%s event: score %v, want %v; segment %v features %v", ev.ModelVersion, ev.Prediction.Score, want, ev.Segment, ev.Numeric)
		}
	}
	if byVersion["v1"] != n || byVersion["v2"] != n {
		t.Errorf("events by version %v, want %d each", byVersion, n)
	}
	if got := testutil.ToFloat64(r.s.m.shadow.WithLabelValues("churn", shadowLogged)); got != n {
		t.Errorf("shadow logged = %v, want %d", got, n)
	}

	// A newer challenger, announced by a registered event, replaces v2.
	w.registerChallenger(t, "churn", "v3", retrain.StatusCandidate, -1.5, time.Now().Add(2*time.Second), true)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if ch := (*r.s.models.Load())["churn"].challenger; ch != nil && ch.version == "v3" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the challenger registered by event was not loaded")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := testutil.ToFloat64(r.s.m.shadowInfo.WithLabelValues("churn", "v3")); got != 1 {
		t.Errorf("shadow_model_info{v3} = %v", got)
	}
}

// TestShadowFailureDoesNotFailRequests: a challenger whose scoring panics
// costs nothing but a counted failure, and one that never returns does not
// hold up a single request: the shadow queue fills and the rest is dropped
// and counted, while every request is answered by the champion.
func TestShadowFailureDoesNotFailRequests(t *testing.T) {
	w := openWorld(t)
	w.register(t, "churn", "v1", "", 0.1, false)
	w.registerChallenger(t, "churn", "v2", retrain.StatusRejected, -0.7, time.Now().Add(time.Second), false)
	set := DefaultSettings()
	set.ShadowModels = []string{"churn"}
	release := make(chan struct{})
	var mode sync.Mutex
	panicking := true
	r := w.startWith(t, set, func(s *Server) {
		s.predictHook = func(ch *served, num map[string]float64, cat map[string]string) float64 {
			mode.Lock()
			p := panicking
			mode.Unlock()
			if p {
				panic("challenger broken")
			}
			<-release // a challenger that hangs
			return ch.m.PredictRow(num, cat)
		}
	})
	defer close(release)
	url := r.http.URL + "/v1/models/churn/predict"
	body := `{"features": {"a": 1, "b": 3, "c": "x"}}`
	for range 5 {
		if code, raw := post(t, url, body); code != 200 {
			t.Fatalf("predict with a panicking challenger: %d %s", code, raw)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for testutil.ToFloat64(r.s.m.shadow.WithLabelValues("churn", shadowFailed)) < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("shadow failed = %v, want 5", testutil.ToFloat64(r.s.m.shadow.WithLabelValues("churn", shadowFailed)))
		}
		time.Sleep(20 * time.Millisecond)
	}

	mode.Lock()
	panicking = false
	mode.Unlock()
	// The worker hangs on the first of these; the queue holds shadowQueue
	// more; every one after is dropped, and every request is answered.
	const requests = shadowQueue + 50
	for i := range requests {
		code, raw := post(t, url, body)
		var resp PredictResponse
		if code != 200 || json.Unmarshal(raw, &resp) != nil || resp.Predictions[0].ModelVersion != "v1" {
			t.Fatalf("request %d with a hanging challenger: %d %s", i, code, raw)
		}
	}
	if got := testutil.ToFloat64(r.s.m.shadow.WithLabelValues("churn", shadowDropped)); got < requests-shadowQueue-1 {
		t.Errorf("shadow dropped = %v, want at least %d", got, requests-shadowQueue-1)
	}
	if got := testutil.ToFloat64(r.s.m.shadow.WithLabelValues("churn", shadowLogged)); got != 0 {
		t.Errorf("shadow logged = %v while the challenger hangs", got)
	}
}

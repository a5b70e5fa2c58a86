package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"path/filepath"
	"strings"
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

// TestShadowComparison: GET /v1/models/{model}/shadow compares champion
// and shadow predictions on the requests labelled on both sides only; the
// figures are worked out by hand below.
func TestShadowComparison(t *testing.T) {
	w := openWorld(t)
	w.register(t, "churn", "v1", "", 0.1, false)
	r := w.start(t, DefaultSettings())
	ctx := context.Background()
	at := time.Now().UTC().Add(-time.Hour)
	type inf struct {
		id, version, pred, label string
		score                    float64
		shadow                   bool
	}
	rows := []inf{
		{"c1", "v1", "p1", "1", 0.8, false}, {"s1", "v2", "p1", "1", 0.6, true},
		{"c2", "v1", "p2", "0", 0.3, false}, {"s2", "v2", "p2", "1", 0.7, true},
		{"c3", "v1", "p3", "1", 0.9, false}, {"s3", "v2", "p3", "1", 0.9, true},
		{"c4", "v1", "p4", "0", 0.1, false},                                     // no shadow prediction: not compared
		{"c5", "v1", "p5", "0", 0.2, false}, {"s5", "v2", "p5", "0", 0.2, true}, // no label: not compared
		{"x1", "v1", "p6", "1", 0.9, false}, {"y1", "v2", "p6", "1", 0.9, true}, // outside the window
	}
	b, err := w.conn.PrepareBatch(ctx, "INSERT INTO inferences (event_id, model_id, model_version, prediction_id, timestamp, prediction_label, prediction_score, shadow, ingested_at)")
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range rows {
		ts := at
		if x.pred == "p6" {
			ts = at.Add(-48 * time.Hour)
		}
		if err := b.Append(x.id, "churn", x.version, x.pred, ts, x.label, x.score, x.shadow, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	ob, err := w.conn.PrepareBatch(ctx, "INSERT INTO outcomes (event_id, model_id, prediction_id, timestamp, actual_label, ingested_at)")
	if err != nil {
		t.Fatal(err)
	}
	for p, label := range map[string]string{"p1": "1", "p2": "0", "p3": "1", "p4": "0", "p6": "1"} {
		if err := ob.Append("o-"+p, "churn", p, at.Add(time.Minute), label, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if err := ob.Send(); err != nil {
		t.Fatal(err)
	}

	resp, err := http.Get(r.http.URL + "/v1/models/churn/shadow?since=24h")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got ShadowComparison
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET shadow: %d %v", resp.StatusCode, err)
	}
	// p1..p3 are paired. Champion: 3 of 3 labels right; Brier
	// (0.2² + 0.3² + 0.1²)/3 = 0.14/3. Shadow: 2 of 3 (p2 wrong); Brier
	// (0.4² + 0.7² + 0.1²)/3 = 0.66/3.
	want := []struct {
		version         string
		shadow          bool
		accuracy, brier float64
	}{{"v1", false, 1, 0.14 / 3}, {"v2", true, 2.0 / 3, 0.66 / 3}}
	if got.Paired != 3 || len(got.Versions) != 2 {
		t.Fatalf("comparison %+v, want 3 paired requests and 2 versions", got)
	}
	for i, wv := range want {
		v := got.Versions[i]
		if v.Version != wv.version || v.Shadow != wv.shadow || v.Labelled != 3 || v.Accuracy == nil || v.Brier == nil ||
			!(math.Abs(*v.Accuracy-wv.accuracy) <= 1e-12) || !(math.Abs(*v.Brier-wv.brier) <= 1e-12) || v.MAE != nil {
			t.Errorf("version %d: %+v (accuracy %v brier %v), want %+v", i, v, deref(v.Accuracy), deref(v.Brier), wv)
		}
	}
	if code, raw := get(t, r.http.URL+"/v1/models/churn/shadow?since=forever"); code != 400 || !strings.Contains(string(raw), `"field":"since"`) {
		t.Errorf("bad since: %d %s", code, raw)
	}
	if code, _ := get(t, r.http.URL+"/v1/models/nope/shadow"); code != 404 {
		t.Errorf("unknown model: %d", code)
	}
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// TestShadowModelsValidated: a shadowed model must be served.
func TestShadowModelsValidated(t *testing.T) {
	for _, c := range []struct {
		name           string
		models, shadow []string
		ok             bool
	}{
		{"all served", nil, []string{"churn"}, true},
		{"among models", []string{"churn", "price"}, []string{"price"}, true},
		{"not served", []string{"churn"}, []string{"price"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := DefaultSettings()
			s.Models, s.ShadowModels = c.models, c.shadow
			err := s.Validate()
			if (err == nil) != c.ok || (err != nil && !strings.HasPrefix(err.Error(), "shadow_models: ")) {
				t.Errorf("Validate() = %v, want ok %v", err, c.ok)
			}
		})
	}
}

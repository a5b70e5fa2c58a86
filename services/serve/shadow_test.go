package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftwatch/driftwatch/ingest"
	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/testdb"
	"github.com/driftwatch/driftwatch/internal/testenv"
	"github.com/driftwatch/driftwatch/retrain"
	"github.com/driftwatch/driftwatch/retrain/model"
	"github.com/driftwatch/driftwatch/retrain/serve"
	"github.com/driftwatch/driftwatch/schemas"
)

// TestShadowThroughIngest is the shadow loop on the real services: traffic
// through serve with shadow scoring on, its events through Kafka and ingest
// into ClickHouse, labels through serve's outcomes endpoint. Each request
// leaves a champion row (v1, not shadow) and a shadow row (v2, shadow) with
// the same prediction_id; one outcome labels both; the comparison route
// judges both on the same labels.
func TestShadowThroughIngest(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	conn, _ := testdb.Open(t, "serve_shadow")
	ctx := context.Background()
	kopts := kafkaio.Options{Brokers: brokers, TopicPrefix: "serve-shadow-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "."}
	var specs []kafkaio.TopicSpec
	for _, n := range []string{schemas.TopicInferences, schemas.TopicOutcomes, schemas.TopicBusinessMetrics, schemas.TopicModelEvents} {
		specs = append(specs, kafkaio.TopicSpec{Name: kopts.Topic(n), Partitions: 3})
	}
	specs = append(specs, kafkaio.Specs(kopts, schemas.TopicFor(schemas.TopicDeadLetters))[0])
	if err := kafkaio.EnsureTopics(ctx, kafkaio.Options{Brokers: brokers}, specs); err != nil {
		t.Fatal(err)
	}
	// v1 (champion) and v2 (registered later, rejected): p = σ(b + 2x).
	intercepts := map[string]float64{"v1": -0.5, "v2": 0.5}
	dir := t.TempDir()
	for i, v := range []string{"v1", "v2"} {
		m := &model.Model{Format: model.FormatV1, Kind: model.KindLogistic, Target: model.Target{Task: model.Classification, PositiveClass: "1"}, C: 1,
			Preprocessor: model.Preprocessor{Numeric: []model.NumericFeature{{Name: "x", Mean: 0, Std: 1}}, Categorical: []model.CategoricalFeature{}},
			Columns:      []string{"x"}, Coef: []float64{2}, Intercept: intercepts[v]}
		var buf bytes.Buffer
		if err := m.Save(&buf); err != nil {
			t.Fatal(err)
		}
		m, err := model.Load(&buf)
		if err != nil {
			t.Fatal(err)
		}
		adir := filepath.Join(dir, v)
		if err := retrain.WriteArtifact(adir, m); err != nil {
			t.Fatal(err)
		}
		st := map[string]string{"v1": retrain.StatusChampion, "v2": retrain.StatusRejected}[v]
		if err := retrain.WriteVersion(ctx, conn, &retrain.Version{ModelID: "churn", Version: v, Status: st, Trainer: retrain.TrainerBuiltin,
			ArtifactURI: "file://" + adir, CreatedAt: time.Now().UTC().Add(time.Duration(i-2) * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}

	inf, _ := kafkaio.NewWriter(kopts, schemas.TopicInferences)
	out, _ := kafkaio.NewWriter(kopts, schemas.TopicOutcomes)
	defer func() { inf.Close(); out.Close() }()
	set := serve.DefaultSettings()
	set.ShadowModels = []string{"churn"}
	s, err := serve.New(serve.Options{Settings: set, Conn: conn, Inferences: inf, Outcomes: out, InferencesTopic: inf.Topic, OutcomesTopic: out.Topic,
		Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Load(ctx, ""); err != nil {
		t.Fatal(err)
	}
	ing, err := ingest.New(ingest.Options{Kafka: kopts, Settings: ingest.Settings{ConsumerGroup: "g", BatchRows: 1000, BatchAge: 200 * time.Millisecond},
		Conn: conn, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 2)
	go func() { done <- s.Run(runCtx) }()
	go func() { done <- ing.Run(runCtx) }()
	defer func() {
		stop()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
		ing.Close()
	}()
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	const n = 20
	sigmoid := func(z float64) float64 { return 1 / (1 + math.Exp(-z)) }
	var champRight, shadowRight int
	for i := range n {
		x := float64(i-n/2) / 5
		var resp serve.PredictResponse
		if code := postJSON(t, srv.URL+"/v1/models/churn/predict", fmt.Sprintf(`{"features": {"x": %g}}`, x), &resp); code != 200 {
			t.Fatalf("predict: %d", code)
		}
		p := resp.Predictions[0]
		if p.ModelVersion != "v1" || !(math.Abs(*p.Score-sigmoid(-0.5+2*x)) <= 1e-12) {
			t.Fatalf("answer %+v is not the champion's", p)
		}
		actual := map[bool]string{true: "1", false: "0"}[i%3 == 0]
		if p.Label == actual {
			champRight++
		}
		if map[bool]string{true: "1", false: "0"}[sigmoid(0.5+2*x) >= 0.5] == actual {
			shadowRight++
		}
		var ack map[string]string
		if code := postJSON(t, srv.URL+"/v1/models/churn/outcomes", fmt.Sprintf(`{"prediction_id": %q, "label": %q}`, p.PredictionID, actual), &ack); code != 202 {
			t.Fatalf("outcome: %d", code)
		}
	}

	count := func(q string) uint64 {
		var c uint64
		if err := conn.QueryRow(ctx, q).Scan(&c); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return c
	}
	deadline := time.Now().Add(90 * time.Second)
	for count("SELECT count() FROM inferences_labeled WHERE model_id = 'churn'") < 2*n {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %d inferences, %d labelled", count("SELECT count() FROM inferences FINAL"), count("SELECT count() FROM inferences_labeled"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	for q, want := range map[string]uint64{
		"SELECT count() FROM inferences FINAL WHERE model_version = 'v1' AND NOT shadow":                                                               n,
		"SELECT count() FROM inferences FINAL WHERE model_version = 'v2' AND shadow":                                                                   n,
		"SELECT count() FROM inferences FINAL":                                                                                                         2 * n,
		"SELECT uniqExact(prediction_id) FROM inferences FINAL":                                                                                        n,
		"SELECT count() FROM inferences_labeled WHERE shadow":                                                                                          n,
		"SELECT count() FROM (SELECT prediction_id FROM inferences_labeled GROUP BY prediction_id HAVING uniqExact(actual_label) = 1 AND count() = 2)": n,
	} {
		if got := count(q); got != want {
			t.Errorf("%s = %d, want %d", q, got, want)
		}
	}

	var cmp serve.ShadowComparison
	if code := getJSON(t, srv.URL+"/v1/models/churn/shadow", &cmp); code != 200 {
		t.Fatalf("shadow comparison: %d", code)
	}
	if cmp.Paired != n || len(cmp.Versions) != 2 {
		t.Fatalf("comparison %+v, want %d paired and 2 versions", cmp, n)
	}
	for i, want := range []struct {
		version string
		right   int
	}{{"v1", champRight}, {"v2", shadowRight}} {
		v := cmp.Versions[i]
		if v.Version != want.version || v.Shadow != (i == 1) || v.Labelled != n || v.Accuracy == nil || !(math.Abs(*v.Accuracy-float64(want.right)/n) <= 1e-12) {
			t.Errorf("version %d: %+v, want %s with accuracy %d/%d", i, v, want.version, want.right, n)
		}
	}
}

func postJSON(t *testing.T, url, body string, v any) int {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return decodeBody(t, resp, v)
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	return decodeBody(t, resp, v)
}

func decodeBody(t *testing.T, resp *http.Response, v any) int {
	t.Helper()
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return resp.StatusCode
}

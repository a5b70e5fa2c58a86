package serve

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/retrain/model"
)

type nopWriter struct{}

func (nopWriter) WriteMessages(context.Context, ...kafka.Message) error { return nil }

// BenchmarkPredictHandler is the server's own cost of one single-row
// prediction of a 20-feature logistic regression — decode, validate,
// predict, encode the inference event, queue it, answer — without HTTP
// transport or Kafka (go test -bench PredictHandler ./retrain/serve/).
func BenchmarkPredictHandler(b *testing.B) { benchPredict(b, false) }

// BenchmarkPredictHandlerShadow is BenchmarkPredictHandler with shadow
// scoring on: the request also queues its row for a challenger, which the
// shadow goroutine scores and logs (its CPU competes with the requests').
func BenchmarkPredictHandlerShadow(b *testing.B) { benchPredict(b, true) }

func benchPredict(b *testing.B, shadow bool) {
	m := &model.Model{Format: model.FormatV1, Kind: model.KindLogistic, Target: model.Target{Task: model.Classification, PositiveClass: "1"},
		Preprocessor: model.Preprocessor{Categorical: []model.CategoricalFeature{}}}
	var body strings.Builder
	body.WriteString(`{"features": {`)
	for i := range 20 {
		name := fmt.Sprintf("f%d", i)
		m.Preprocessor.Numeric = append(m.Preprocessor.Numeric, model.NumericFeature{Name: name, Mean: 0.1, Std: 1.1})
		m.Columns = append(m.Columns, name)
		m.Coef = append(m.Coef, 0.05*float64(i))
		if i > 0 {
			body.WriteString(", ")
		}
		fmt.Fprintf(&body, `"%s": %.4f`, name, 0.37*float64(i)-2)
	}
	body.WriteString(`}}`)
	var buf bytes.Buffer
	if err := m.Save(&buf); err != nil {
		b.Fatal(err)
	}
	m, err := model.Load(&buf)
	if err != nil {
		b.Fatal(err)
	}
	set := DefaultSettings()
	if shadow {
		set.ShadowModels = []string{"bench"}
	}
	s, err := New(Options{Settings: set, Inferences: nopWriter{}, Outcomes: nopWriter{}, InferencesTopic: "i", OutcomesTopic: "o"})
	if err != nil {
		b.Fatal(err)
	}
	sv, err := s.served("bench", "v1", m, nil)
	if err != nil {
		b.Fatal(err)
	}
	if shadow {
		if sv.challenger, err = s.served("bench", "v2", m, sv); err != nil {
			b.Fatal(err)
		}
	}
	s.models.Store(&map[string]*served{"bench": sv})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { defer func() { done <- struct{}{} }(); s.events.run(ctx, 0) }()
	go func() { defer func() { done <- struct{}{} }(); s.runShadow(ctx) }()
	defer func() { cancel(); <-done; <-done }()
	h := s.Handler()
	raw := []byte(body.String())
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/v1/models/bench/predict", bytes.NewReader(raw))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
	b.StopTimer()
	if shadow {
		b.ReportMetric(testutil.ToFloat64(s.m.shadow.WithLabelValues("bench", shadowDropped))/float64(b.N), "shadow-dropped/op")
	}
}

package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/retrain/model"
	"github.com/driftwatch/driftwatch/schemas"
)

// Routes of the serving API (see openapi.yaml).
const (
	RoutePredict  = "POST /v1/models/{model}/predict"
	RouteOutcomes = "POST /v1/models/{model}/outcomes"
	RouteModels   = "GET /v1/models"
	RouteShadow   = "GET /v1/models/{model}/shadow"
)

// Routes lists the API's routes, for the service to mount.
func (s *Server) Routes() map[string]http.Handler {
	return map[string]http.Handler{
		RoutePredict:  http.HandlerFunc(s.predict),
		RouteOutcomes: http.HandlerFunc(s.outcome),
		RouteModels:   http.HandlerFunc(s.list),
		RouteShadow:   http.HandlerFunc(s.compare),
	}
}

// Handler returns the routes on a mux of their own (tests, benchmarks).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	for p, h := range s.Routes() {
		mux.Handle(p, h)
	}
	return mux
}

type apiError struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

func (s *Server) fail(w http.ResponseWriter, route string, code int, field, msg string) {
	s.m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if field != "" {
		msg = field + ": " + msg
	}
	_ = json.NewEncoder(w).Encode(apiError{Error: msg, Field: field})
}

func (s *Server) ok(w http.ResponseWriter, route string, code int, v any) {
	s.m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// rowIn is one row of a predict request.
type rowIn struct {
	Features map[string]any `json:"features"`
	Segment  map[string]any `json:"segment,omitempty"`
}

type predictIn struct {
	Features map[string]any `json:"features"`
	Segment  map[string]any `json:"segment"`
	Rows     []rowIn        `json:"rows"`
}

// Prediction is one row's answer.
type Prediction struct {
	PredictionID string   `json:"prediction_id"`
	ModelVersion string   `json:"model_version"`
	Score        *float64 `json:"score,omitempty"`
	Label        string   `json:"label,omitempty"`
	Value        *float64 `json:"value,omitempty"`
	// Unlogged is set when the row's inference event was dropped (the
	// log buffer was full).
	Unlogged bool `json:"unlogged,omitempty"`
}

// PredictResponse is the answer to a predict request.
type PredictResponse struct {
	ModelID     string       `json:"model_id"`
	Predictions []Prediction `json:"predictions"`
}

// decode reads a JSON body into v: numbers as json.Number, unknown fields
// refused, one value only.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fmt.Errorf("the body is larger than max_body_bytes (%d)", s.opts.MaxBodyBytes)
		}
		return fmt.Errorf("read the body: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode the body: %v", err)
	}
	if dec.More() {
		return errors.New("decode the body: more than one JSON value")
	}
	return nil
}

const routePredict, routeOutcomes = "predict", "outcomes"

func (s *Server) predict(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { s.m.duration.WithLabelValues(routePredict).Observe(time.Since(start).Seconds()) }()
	id := r.PathValue("model")
	sv := (*s.models.Load())[id]
	if sv == nil {
		s.fail(w, routePredict, http.StatusNotFound, "model", fmt.Sprintf("no model %q is served (GET /v1/models lists them)", id))
		return
	}
	var in predictIn
	if err := s.decode(w, r, &in); err != nil {
		s.fail(w, routePredict, http.StatusBadRequest, "", err.Error())
		return
	}
	rows, prefix := in.Rows, "rows[%d]."
	switch {
	case in.Rows == nil && in.Features == nil:
		s.fail(w, routePredict, http.StatusBadRequest, "features", `required: send {"features": {…}} or {"rows": [{"features": {…}}]}`)
		return
	case in.Rows != nil && (in.Features != nil || in.Segment != nil):
		s.fail(w, routePredict, http.StatusBadRequest, "rows", "send either rows or one row's features and segment, not both")
		return
	case in.Rows == nil:
		rows, prefix = []rowIn{{Features: in.Features, Segment: in.Segment}}, ""
	case len(in.Rows) == 0:
		s.fail(w, routePredict, http.StatusBadRequest, "rows", "empty")
		return
	case len(in.Rows) > s.opts.MaxRows:
		s.fail(w, routePredict, http.StatusRequestEntityTooLarge, "rows", fmt.Sprintf("%d rows, more than max_rows (%d)", len(in.Rows), s.opts.MaxRows))
		return
	}
	if s.events.isClosed() {
		s.fail(w, routePredict, http.StatusServiceUnavailable, "", "serve is shutting down")
		return
	}
	type parsed struct {
		num map[string]float64
		cat map[string]string
		seg map[string]string
	}
	ps := make([]parsed, len(rows))
	for i, row := range rows {
		p := prefix
		if p != "" {
			p = fmt.Sprintf(prefix, i)
		}
		num, cat, field, msg := sv.parse(row.Features)
		if field != "" {
			s.fail(w, routePredict, http.StatusBadRequest, p+field, msg)
			return
		}
		seg, field, msg := parseSegment(row.Segment)
		if field != "" {
			s.fail(w, routePredict, http.StatusBadRequest, p+field, msg)
			return
		}
		ps[i] = parsed{num, cat, seg}
	}
	out := PredictResponse{ModelID: id, Predictions: make([]Prediction, len(rows))}
	now := s.opts.Now().UTC()
	for i, p := range ps {
		t0 := time.Now()
		y := sv.m.PredictRow(p.num, p.cat)
		lat := float64(time.Since(t0).Microseconds()) / 1000
		pr := Prediction{PredictionID: uuid.NewString(), ModelVersion: sv.version}
		var pred eventPrediction
		if sv.m.Kind == model.KindLogistic {
			label := sv.negative
			if y >= 0.5 {
				label = sv.m.Target.PositiveClass
			}
			pr.Score, pr.Label = &y, label
			pred = eventPrediction{Score: &y, Label: label}
		} else {
			pr.Value = &y
			pred = eventPrediction{Value: &y}
		}
		raw, err := json.Marshal(inferenceEvent{EventID: uuid.NewString(), ModelID: id, ModelVersion: sv.version, PredictionID: pr.PredictionID,
			Timestamp: now.Format(timeFormat), Features: rows[i].Features, Prediction: pred, Segment: rows[i].Segment, LatencyMs: lat})
		if err != nil {
			panic("BUG: encode inference event: " + err.Error())
		}
		if err := s.events.add(s.opts.Inferences, s.opts.InferencesTopic, kafka.Message{Key: []byte(id), Value: raw, Headers: inferenceHeaders}); err != nil {
			pr.Unlogged = true
		}
		out.Predictions[i] = pr
	}
	s.m.predictions.WithLabelValues(id).Add(float64(len(rows)))
	s.ok(w, routePredict, http.StatusOK, out)
	if sv.challenger != nil {
		s.enqueueShadow(sv, rows, out.Predictions, now)
	}
}

// timeFormat is the wire format's RFC 3339 with milliseconds, the
// precision ClickHouse stores.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

var (
	inferenceHeaders = []kafka.Header{{Key: schemas.SchemaHeader, Value: []byte(schemas.KindInference.SchemaName())}}
	outcomeHeaders   = []kafka.Header{{Key: schemas.SchemaHeader, Value: []byte(schemas.KindOutcome.SchemaName())}}
)

// inferenceEvent is driftwatch.inference.v1 (docs/architecture.md, "The
// wire format"); features and segment are the request's, as sent.
type inferenceEvent struct {
	EventID      string          `json:"event_id"`
	ModelID      string          `json:"model_id"`
	ModelVersion string          `json:"model_version"`
	PredictionID string          `json:"prediction_id"`
	Timestamp    string          `json:"timestamp"`
	Features     map[string]any  `json:"features"`
	Prediction   eventPrediction `json:"prediction"`
	Segment      map[string]any  `json:"segment,omitempty"`
	LatencyMs    float64         `json:"latency_ms"`
	Shadow       bool            `json:"shadow,omitempty"`
}

type eventPrediction struct {
	Label string   `json:"label,omitempty"`
	Score *float64 `json:"score,omitempty"`
	Value *float64 `json:"value,omitempty"`
}

// parse checks one row's features against the model and splits them into
// the model's inputs: numbers (booleans as 1/0, as the wire format stores
// them) and categories. null is a missing value (the preprocessing's
// imputation, as in training); a feature the model reads that is absent
// is an error unless it was missing in training too. Features the model
// does not read are logged but not checked beyond the wire format's
// types. It returns the offending field and why, or "".
func (sv *served) parse(features map[string]any) (num map[string]float64, cat map[string]string, field, msg string) {
	if features == nil {
		return nil, nil, "features", "required (an object of feature values)"
	}
	if len(features) > schemas.DefaultMaxFeatures {
		return nil, nil, "features", fmt.Sprintf("%d features, more than the wire format's %d", len(features), schemas.DefaultMaxFeatures)
	}
	num = make(map[string]float64, len(features))
	cat = map[string]string{}
	for k, v := range features {
		f := "features." + k
		_, isNum := sv.numeric[k]
		isCat := sv.categorical[k]
		switch x := v.(type) {
		case nil:
		case json.Number:
			if isCat {
				return nil, nil, f, fmt.Sprintf("model %s reads a category (a string) here, got the number %s", sv.id, x)
			}
			n, err := strconv.ParseFloat(string(x), 64)
			if err != nil || math.IsInf(n, 0) {
				return nil, nil, f, fmt.Sprintf("%s is not a finite number", x)
			}
			num[k] = n
		case bool:
			if isCat {
				return nil, nil, f, fmt.Sprintf("model %s reads a category (a string) here, got a boolean", sv.id)
			}
			num[k] = 0
			if x {
				num[k] = 1
			}
		case string:
			if isNum {
				return nil, nil, f, fmt.Sprintf("model %s reads a number here, got the string %q", sv.id, x)
			}
			cat[k] = x
		default:
			return nil, nil, f, "must be a number, string, boolean or null (no objects or arrays)"
		}
	}
	for name, nf := range sv.numeric {
		if _, ok := features[name]; !ok && nf.Missing == 0 {
			return nil, nil, "features." + name, fmt.Sprintf("required by model %s %s (send null for a missing value)", sv.id, sv.version)
		}
	}
	for name := range sv.categorical {
		if _, ok := features[name]; !ok {
			return nil, nil, "features." + name, fmt.Sprintf("required by model %s %s (send null for a missing value)", sv.id, sv.version)
		}
	}
	return num, cat, "", ""
}

func parseSegment(seg map[string]any) (map[string]string, string, string) {
	if seg == nil {
		return nil, "", ""
	}
	out := make(map[string]string, len(seg))
	for k, v := range seg {
		str, ok := v.(string)
		if !ok {
			return nil, "segment." + k, "must be a string"
		}
		out[k] = str
	}
	return out, "", ""
}

type outcomeIn struct {
	PredictionID string      `json:"prediction_id"`
	Label        any         `json:"label"`
	Value        json.Number `json:"value"`
}

// OutcomeResponse is the answer to an outcome.
type OutcomeResponse struct {
	EventID string `json:"event_id"`
}

type outcomeEvent struct {
	EventID      string       `json:"event_id"`
	ModelID      string       `json:"model_id"`
	PredictionID string       `json:"prediction_id"`
	Timestamp    string       `json:"timestamp"`
	Actual       outcomeValue `json:"actual"`
}

type outcomeValue struct {
	Label string   `json:"label,omitempty"`
	Value *float64 `json:"value,omitempty"`
}

func (s *Server) outcome(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { s.m.duration.WithLabelValues(routeOutcomes).Observe(time.Since(start).Seconds()) }()
	id := r.PathValue("model")
	if (*s.models.Load())[id] == nil {
		s.fail(w, routeOutcomes, http.StatusNotFound, "model", fmt.Sprintf("no model %q is served (GET /v1/models lists them)", id))
		return
	}
	var in outcomeIn
	if err := s.decode(w, r, &in); err != nil {
		s.fail(w, routeOutcomes, http.StatusBadRequest, "", err.Error())
		return
	}
	if in.PredictionID == "" || len(in.PredictionID) > 256 {
		s.fail(w, routeOutcomes, http.StatusBadRequest, "prediction_id", "required, at most 256 bytes (the prediction_id a predict answered)")
		return
	}
	var act outcomeValue
	switch l := in.Label.(type) {
	case nil:
	case string:
		if l == "" {
			s.fail(w, routeOutcomes, http.StatusBadRequest, "label", "must not be empty")
			return
		}
		act.Label = l
	default:
		s.fail(w, routeOutcomes, http.StatusBadRequest, "label", "must be a string")
		return
	}
	if in.Value != "" {
		v, err := strconv.ParseFloat(string(in.Value), 64)
		if err != nil || math.IsInf(v, 0) {
			s.fail(w, routeOutcomes, http.StatusBadRequest, "value", "must be a finite number")
			return
		}
		act.Value = &v
	}
	if act.Label == "" && act.Value == nil {
		s.fail(w, routeOutcomes, http.StatusBadRequest, "label", "label or value is required")
		return
	}
	ev := outcomeEvent{EventID: uuid.NewString(), ModelID: id, PredictionID: in.PredictionID, Timestamp: s.opts.Now().UTC().Format(timeFormat), Actual: act}
	raw, err := json.Marshal(ev)
	if err != nil {
		panic("BUG: encode outcome event: " + err.Error())
	}
	switch err := s.events.add(s.opts.Outcomes, s.opts.OutcomesTopic, kafka.Message{Key: []byte(id), Value: raw, Headers: outcomeHeaders}); {
	case errors.Is(err, ErrClosed):
		s.fail(w, routeOutcomes, http.StatusServiceUnavailable, "", err.Error())
	case err != nil:
		s.fail(w, routeOutcomes, http.StatusServiceUnavailable, "", "the event log is full; retry later")
	default:
		s.ok(w, routeOutcomes, http.StatusAccepted, OutcomeResponse{EventID: ev.EventID})
	}
}

// ModelInfo describes one served model.
type ModelInfo struct {
	ModelID       string   `json:"model_id"`
	Version       string   `json:"version"`
	Task          string   `json:"task"`
	PositiveClass string   `json:"positive_class,omitempty"`
	Numeric       []string `json:"numeric_features"`
	Categorical   []string `json:"categorical_features"`
	// ShadowVersion is the challenger shadow-scored alongside, if any.
	ShadowVersion string `json:"shadow_version,omitempty"`
}

func (s *Server) list(w http.ResponseWriter, _ *http.Request) {
	out := struct {
		Models []ModelInfo `json:"models"`
	}{Models: []ModelInfo{}}
	for _, sv := range *s.models.Load() {
		mi := ModelInfo{ModelID: sv.id, Version: sv.version, Task: string(sv.m.Target.Task), PositiveClass: sv.m.Target.PositiveClass,
			Numeric: []string{}, Categorical: []string{}}
		if sv.challenger != nil {
			mi.ShadowVersion = sv.challenger.version
		}
		for _, f := range sv.m.Preprocessor.Numeric {
			mi.Numeric = append(mi.Numeric, f.Name)
		}
		for _, f := range sv.m.Preprocessor.Categorical {
			mi.Categorical = append(mi.Categorical, f.Name)
		}
		out.Models = append(out.Models, mi)
	}
	sortModels(out.Models)
	s.ok(w, "models", http.StatusOK, out)
}

func sortModels(ms []ModelInfo) {
	slices.SortFunc(ms, func(a, b ModelInfo) int { return strings.Compare(a.ModelID, b.ModelID) })
}

package schemas

import (
	"encoding/json"
	"sort"
	"time"
)

// Inference is one model prediction, decoded from driftwatch.inference.v1.
//
// The wire object "features" is split by value type: numbers and booleans
// (as 0 and 1) go to Numeric, strings to Categorical, and null values are
// absent from both and listed in MissingFeatures, matching the ClickHouse
// Map(String, Float64) and Map(String, String) columns.
type Inference struct {
	EventID      string
	ModelID      string
	ModelVersion string
	PredictionID string
	// Timestamp is when the prediction was made, in UTC.
	Timestamp       time.Time
	Numeric         map[string]float64
	Categorical     map[string]string
	MissingFeatures []string // names whose value was null, in wire order
	Prediction      Prediction
	Segment         map[string]string // nil when absent
	LatencyMs       float64
	HasLatency      bool
	// Shadow marks a prediction made by a model version scored alongside
	// the one that answered (serve's shadow scoring): it was never returned
	// to the client, and the monitor's results for the served version
	// exclude it. Absent or null is false.
	Shadow bool
}

// Prediction is what the model answered; whichever of the fields apply are
// set. Optional scalars carry a Has flag instead of a pointer so that a
// reused Inference decodes without allocating.
type Prediction struct {
	Label         string
	HasLabel      bool
	Score         float64
	HasScore      bool
	Value         float64
	HasValue      bool
	Probabilities map[string]float64 // nil when absent
}

// Outcome is the ground truth of one prediction, decoded from
// driftwatch.outcome.v1. It may arrive days after the inference.
type Outcome struct {
	EventID      string
	ModelID      string
	PredictionID string
	Timestamp    time.Time
	Actual       Actual
}

// Actual is the true label or value of a prediction (at least one is set).
type Actual struct {
	Label    string
	HasLabel bool
	Value    float64
	HasValue bool
}

// BusinessMetric is one observation of a business KPI, decoded from
// driftwatch.business-metric.v1.
type BusinessMetric struct {
	EventID   string
	Metric    string
	Value     float64
	Timestamp time.Time
	ModelID   string            // empty when the KPI is not tied to a model
	Segment   map[string]string // nil when absent
}

// Info reports what a decoder tolerated in an accepted event.
type Info struct {
	// UnknownFields counts keys of the event, prediction or actual objects
	// that the v1 contract does not define. They are skipped (forward
	// compatibility); ingest exports the count as a metric.
	UnknownFields int
}

// reset empties ev for reuse, keeping its maps and slices.
func (ev *Inference) reset() {
	num, cat, miss, seg, prob := ev.Numeric, ev.Categorical, ev.MissingFeatures[:0], ev.Segment, ev.Prediction.Probabilities
	clear(num)
	clear(cat)
	clear(seg)
	clear(prob)
	*ev = Inference{Numeric: num, Categorical: cat, MissingFeatures: miss}
	if ev.Numeric == nil {
		ev.Numeric = make(map[string]float64, 32)
	}
	if ev.Categorical == nil {
		ev.Categorical = make(map[string]string, 8)
	}
	// Segment and Probabilities stay nil unless present; keep the
	// allocated maps around for the next event that has them.
	ev.Segment, ev.Prediction.Probabilities = seg, prob
}

// wire forms, used to encode events. Encoding is not on ingest's hot path:
// tools, tests and load generators use it.

type inferenceWire struct {
	EventID      string            `json:"event_id"`
	ModelID      string            `json:"model_id"`
	ModelVersion string            `json:"model_version"`
	PredictionID string            `json:"prediction_id"`
	Timestamp    string            `json:"timestamp"`
	Features     map[string]any    `json:"features"`
	Prediction   predictionWire    `json:"prediction"`
	Segment      map[string]string `json:"segment,omitempty"`
	LatencyMs    *float64          `json:"latency_ms,omitempty"`
	Shadow       bool              `json:"shadow,omitempty"`
}

type predictionWire struct {
	Label         *string            `json:"label,omitempty"`
	Score         *float64           `json:"score,omitempty"`
	Value         *float64           `json:"value,omitempty"`
	Probabilities map[string]float64 `json:"probabilities,omitempty"`
}

func timeWire(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// MarshalJSON encodes ev as driftwatch.inference.v1. Missing features are
// written as null; booleans come back as numbers (they were stored as 0/1).
func (ev Inference) MarshalJSON() ([]byte, error) {
	w := inferenceWire{
		EventID: ev.EventID, ModelID: ev.ModelID, ModelVersion: ev.ModelVersion,
		PredictionID: ev.PredictionID, Timestamp: timeWire(ev.Timestamp),
		Features: make(map[string]any, len(ev.Numeric)+len(ev.Categorical)+len(ev.MissingFeatures)),
		Segment:  ev.Segment,
	}
	for k, v := range ev.Numeric {
		w.Features[k] = v
	}
	for k, v := range ev.Categorical {
		w.Features[k] = v
	}
	for _, k := range ev.MissingFeatures {
		w.Features[k] = nil
	}
	p := ev.Prediction
	if p.HasLabel {
		w.Prediction.Label = &p.Label
	}
	if p.HasScore {
		w.Prediction.Score = &p.Score
	}
	if p.HasValue {
		w.Prediction.Value = &p.Value
	}
	w.Prediction.Probabilities = p.Probabilities
	if ev.HasLatency {
		w.LatencyMs = &ev.LatencyMs
	}
	w.Shadow = ev.Shadow
	return json.Marshal(w)
}

type outcomeWire struct {
	EventID      string     `json:"event_id"`
	ModelID      string     `json:"model_id"`
	PredictionID string     `json:"prediction_id"`
	Timestamp    string     `json:"timestamp"`
	Actual       actualWire `json:"actual"`
}

type actualWire struct {
	Label *string  `json:"label,omitempty"`
	Value *float64 `json:"value,omitempty"`
}

// MarshalJSON encodes ev as driftwatch.outcome.v1.
func (ev Outcome) MarshalJSON() ([]byte, error) {
	w := outcomeWire{EventID: ev.EventID, ModelID: ev.ModelID, PredictionID: ev.PredictionID, Timestamp: timeWire(ev.Timestamp)}
	if ev.Actual.HasLabel {
		w.Actual.Label = &ev.Actual.Label
	}
	if ev.Actual.HasValue {
		w.Actual.Value = &ev.Actual.Value
	}
	return json.Marshal(w)
}

type businessMetricWire struct {
	EventID   string            `json:"event_id"`
	Metric    string            `json:"metric"`
	Value     float64           `json:"value"`
	Timestamp string            `json:"timestamp"`
	ModelID   string            `json:"model_id,omitempty"`
	Segment   map[string]string `json:"segment,omitempty"`
}

// MarshalJSON encodes ev as driftwatch.business-metric.v1.
func (ev BusinessMetric) MarshalJSON() ([]byte, error) {
	return json.Marshal(businessMetricWire{
		EventID: ev.EventID, Metric: ev.Metric, Value: ev.Value, Timestamp: timeWire(ev.Timestamp),
		ModelID: ev.ModelID, Segment: ev.Segment,
	})
}

// SortedKeys returns the keys of m in ascending order. Builders use it so the
// same event always produces the same bytes (ClickHouse insert
// deduplication hashes the block).
func SortedKeys[V any](m map[string]V, dst []string) []string {
	dst = dst[:0]
	for k := range m {
		dst = append(dst, k)
	}
	sort.Strings(dst)
	return dst
}

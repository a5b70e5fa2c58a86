package schemas

import (
	"encoding/json"
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

// stdInference is what a straightforward encoding/json decoder of the
// contract looks like: the benchmark baseline and the fuzz oracle.
type stdInference struct {
	EventID      *string         `json:"event_id"`
	ModelID      *string         `json:"model_id"`
	ModelVersion *string         `json:"model_version"`
	PredictionID *string         `json:"prediction_id"`
	Timestamp    any             `json:"timestamp"`
	Features     map[string]any  `json:"features"`
	Prediction   *stdPrediction  `json:"prediction"`
	Segment      map[string]any  `json:"segment"`
	LatencyMs    *float64        `json:"latency_ms"`
	Shadow       *bool           `json:"shadow"`
	_            json.RawMessage `json:"-"`
}

type stdPrediction struct {
	Label         *string            `json:"label"`
	Score         *float64           `json:"score"`
	Value         *float64           `json:"value"`
	Probabilities map[string]float64 `json:"probabilities"`
}

// stdDecodeInference decodes with json.Unmarshal and then applies the same
// validation rules as the scanner (not duplicate keys, which encoding/json
// cannot see, nor case-sensitive field names).
func stdDecodeInference(d *Decoder, data []byte, ev *Inference) error {
	if len(data) > d.lim.MaxBytes {
		return newErr(ReasonTooLarge, "", -1, "too large")
	}
	if !utf8.Valid(data) {
		return newErr(ReasonInvalidUTF8, "", -1, "invalid UTF-8")
	}
	var w stdInference
	if err := json.Unmarshal(data, &w); err != nil {
		return newErr(ReasonInvalidJSON, "", -1, err.Error())
	}
	reqStr := func(path string, p *string, max int) (string, error) {
		switch {
		case p == nil:
			return "", missing(path)
		case *p == "":
			return "", newErr(ReasonInvalidField, path, -1, "must not be empty")
		case len(*p) > max:
			return "", newErr(ReasonInvalidField, path, -1, "too long")
		}
		return *p, nil
	}
	var err error
	*ev = Inference{Numeric: map[string]float64{}, Categorical: map[string]string{}}
	if ev.EventID, err = reqStr("event_id", w.EventID, MaxIDBytes); err != nil {
		return err
	}
	if w.ModelID == nil {
		return missing("model_id")
	}
	if !validIdent([]byte(*w.ModelID)) {
		return newErr(ReasonInvalidModelID, "model_id", -1, "bad")
	}
	ev.ModelID = *w.ModelID
	if ev.ModelVersion, err = reqStr("model_version", w.ModelVersion, MaxVersionBytes); err != nil {
		return err
	}
	if ev.PredictionID, err = reqStr("prediction_id", w.PredictionID, MaxIDBytes); err != nil {
		return err
	}
	switch ts := w.Timestamp.(type) {
	case nil:
		return missing("timestamp")
	case string:
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return newErr(ReasonInvalidTimestamp, "timestamp", -1, "bad")
		}
		ev.Timestamp = t.UTC()
	case float64:
		if ts < -1e15 || ts > 1e15 {
			return newErr(ReasonTimestampOutOfRange, "timestamp", -1, "range")
		}
		whole := math.Floor(ts)
		ev.Timestamp = time.UnixMilli(int64(whole)).Add(time.Duration(math.Round((ts - whole) * 1e6))).UTC()
	default:
		return newErr(ReasonInvalidTimestamp, "timestamp", -1, "type")
	}
	if ev.Timestamp.Before(d.lim.MinTime) || ev.Timestamp.After(d.now().Add(d.lim.MaxFutureSkew)) {
		return newErr(ReasonTimestampOutOfRange, "timestamp", -1, "range")
	}
	if w.Features == nil {
		return missing("features")
	}
	if len(w.Features) > d.lim.MaxFeatures {
		return newErr(ReasonTooManyFeatures, "features", -1, "too many")
	}
	for k, v := range w.Features {
		if k == "" || len(k) > MaxKeyBytes {
			return newErr(ReasonInvalidFeature, "features", -1, "name")
		}
		switch v := v.(type) {
		case float64:
			ev.Numeric[k] = v
		case bool:
			ev.Numeric[k] = 0
			if v {
				ev.Numeric[k] = 1
			}
		case string:
			ev.Categorical[k] = v
		case nil:
			ev.MissingFeatures = append(ev.MissingFeatures, k)
		default:
			return newErr(ReasonInvalidFeature, "features."+k, -1, fmt.Sprintf("type %T", v))
		}
	}
	if w.Prediction == nil {
		return missing("prediction")
	}
	p := w.Prediction
	if p.Label != nil {
		ev.Prediction.Label, ev.Prediction.HasLabel = *p.Label, true
	}
	if p.Score != nil {
		ev.Prediction.Score, ev.Prediction.HasScore = *p.Score, true
	}
	if p.Value != nil {
		ev.Prediction.Value, ev.Prediction.HasValue = *p.Value, true
	}
	for k, v := range p.Probabilities {
		if k == "" || len(k) > MaxKeyBytes || !(v >= 0 && v <= 1) {
			return newErr(ReasonInvalidField, "prediction.probabilities", -1, "bad")
		}
	}
	if len(p.Probabilities) > 0 {
		ev.Prediction.Probabilities = p.Probabilities
	}
	if !p.HasAny() {
		return newErr(ReasonInvalidField, "prediction", -1, "empty")
	}
	for k, v := range w.Segment {
		s, ok := v.(string)
		if !ok || k == "" || len(k) > MaxKeyBytes {
			return newErr(ReasonInvalidField, "segment", -1, "bad")
		}
		if ev.Segment == nil {
			ev.Segment = map[string]string{}
		}
		ev.Segment[k] = s
	}
	if w.LatencyMs != nil {
		if *w.LatencyMs < 0 {
			return newErr(ReasonInvalidField, "latency_ms", -1, "negative")
		}
		ev.LatencyMs, ev.HasLatency = *w.LatencyMs, true
	}
	if w.Shadow != nil {
		ev.Shadow = *w.Shadow
	}
	return nil
}

func (p *stdPrediction) HasAny() bool {
	return p.Label != nil || p.Score != nil || p.Value != nil || len(p.Probabilities) > 0
}

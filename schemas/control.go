package schemas

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// TriggerReason says why a retrain was triggered.
type TriggerReason string

// The retrain trigger reasons of docs/architecture.md.
const (
	TriggerFeatureDrift    TriggerReason = "feature_drift"
	TriggerPredictionDrift TriggerReason = "prediction_drift"
	TriggerPerformance     TriggerReason = "performance"
	TriggerBusiness        TriggerReason = "business"
	TriggerDataQuality     TriggerReason = "data_quality"
	TriggerSchedule        TriggerReason = "schedule"
	TriggerManual          TriggerReason = "manual"
)

var triggerReasons = []TriggerReason{TriggerFeatureDrift, TriggerPredictionDrift, TriggerPerformance,
	TriggerBusiness, TriggerDataQuality, TriggerSchedule, TriggerManual}

// TimeRange is a half-open interval [From, To).
type TimeRange struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// Evidence is one check result that contributed to a trigger.
type Evidence struct {
	Check   string `json:"check"`
	Feature string `json:"feature,omitempty"`
	// Segment is the slice (key=value) of a root_cause entry: the slice
	// contributing most to the feature's drift; Method says whether by a
	// mix shift (mix) or a within-slice shift (within), Value is its
	// contribution and Threshold the population's PSI.
	Segment   string   `json:"segment,omitempty"`
	Method    string   `json:"method,omitempty"`
	Value     float64  `json:"value"`
	Threshold float64  `json:"threshold"`
	PValue    *float64 `json:"p_value,omitempty"`
	Samples   int64    `json:"samples"`
}

// RetrainTrigger is driftwatch.retrain-trigger.v1, published by monitor and
// consumed by the trainer. driftwatch produces it itself, so it is encoded
// and decoded with encoding/json.
type RetrainTrigger struct {
	TriggerID    string        `json:"trigger_id"`
	ModelID      string        `json:"model_id"`
	ModelVersion string        `json:"model_version"`
	Reason       TriggerReason `json:"reason"`
	CreatedAt    time.Time     `json:"created_at"`
	Window       TimeRange     `json:"window"`
	Reference    TimeRange     `json:"reference"`
	Evidence     []Evidence    `json:"evidence"`
	Policy       string        `json:"policy"`
	DedupKey     string        `json:"dedup_key"`
}

// The limits of a driftwatch.retrain-trigger.v1 message. The trainer looks
// a trigger up by its ids and keys in ClickHouse and keeps queued triggers
// in memory, so every field is bounded: a trigger over a limit is a
// poison message (a *DecodeError), dead-lettered, never retried.
const (
	// MaxTriggerBytes bounds the encoded message (Kafka's default
	// max.message.bytes is a little more).
	MaxTriggerBytes = 1 << 20
	// MaxTriggerKeyBytes bounds trigger_id, dedup_key and policy, and an
	// evidence row's check, feature and method.
	MaxTriggerKeyBytes = 256
	// MaxTriggerEvidence bounds the evidence rows.
	MaxTriggerEvidence = 1000
)

// Validate reports the first broken rule as a *DecodeError: a required
// field missing, a field out of its domain, or over its limit
// (MaxTriggerKeyBytes, MaxVersionBytes, MaxTriggerEvidence).
func (t *RetrainTrigger) Validate() error {
	switch {
	case t.TriggerID == "":
		return missing("trigger_id")
	case len(t.TriggerID) > MaxTriggerKeyBytes:
		return tooLong("trigger_id", t.TriggerID, MaxTriggerKeyBytes)
	case !validIdent([]byte(t.ModelID)):
		return newErr(ReasonInvalidModelID, "model_id", -1, quoteValue([]byte(t.ModelID))+" "+identRule)
	case len(t.ModelVersion) > MaxVersionBytes:
		return tooLong("model_version", t.ModelVersion, MaxVersionBytes)
	case !slices.Contains(triggerReasons, t.Reason):
		return newErr(ReasonInvalidField, "reason", -1, fmt.Sprintf("%s is not one of %v", quoteValue([]byte(t.Reason)), triggerReasons))
	case t.CreatedAt.IsZero():
		return missing("created_at")
	case t.Window.To.Before(t.Window.From):
		return newErr(ReasonInvalidField, "window", -1, "to is before from")
	case t.Reference.To.Before(t.Reference.From):
		return newErr(ReasonInvalidField, "reference", -1, "to is before from")
	case len(t.Policy) > MaxTriggerKeyBytes:
		return tooLong("policy", t.Policy, MaxTriggerKeyBytes)
	case t.DedupKey == "":
		return missing("dedup_key")
	case len(t.DedupKey) > MaxTriggerKeyBytes:
		return tooLong("dedup_key", t.DedupKey, MaxTriggerKeyBytes)
	case len(t.Evidence) > MaxTriggerEvidence:
		return newErr(ReasonInvalidField, "evidence", -1, fmt.Sprintf("%d rows, at most %d", len(t.Evidence), MaxTriggerEvidence))
	}
	for i, e := range t.Evidence {
		for _, f := range []struct{ name, v string }{{"check", e.Check}, {"feature", e.Feature}, {"method", e.Method}} {
			if len(f.v) > MaxTriggerKeyBytes {
				return tooLong(fmt.Sprintf("evidence[%d].%s", i, f.name), f.v, MaxTriggerKeyBytes)
			}
		}
	}
	return nil
}

// tooLong is the error of a string field over its limit in bytes.
func tooLong(path, v string, limit int) *DecodeError {
	return newErr(ReasonInvalidField, path, -1, fmt.Sprintf("%d bytes, at most %d (%s)", len(v), limit, quoteValue([]byte(v))))
}

// EncodeRetrainTrigger validates t and encodes it as the message
// DecodeRetrainTrigger reads; a trigger that breaks a rule, or whose
// encoding is longer than MaxTriggerBytes, is an error, so a producer
// never publishes what the trainer would dead-letter.
func EncodeRetrainTrigger(t *RetrainTrigger) ([]byte, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	data, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("encode retrain trigger: %w", err)
	}
	if len(data) > MaxTriggerBytes {
		return nil, newErr(ReasonTooLarge, "", -1, fmt.Sprintf("retrain trigger of %d bytes, at most %d", len(data), MaxTriggerBytes))
	}
	return data, nil
}

// ModelEventKind says what happened to a model version.
type ModelEventKind string

// The model event kinds of docs/architecture.md.
const (
	ModelRegistered ModelEventKind = "registered"
	ModelPromoted   ModelEventKind = "promoted"
	ModelRejected   ModelEventKind = "rejected"
	ModelFailed     ModelEventKind = "failed"
)

// ModelEvent is driftwatch.model-event.v1, published by the trainer.
// ChampionMetrics and ChallengerMetrics map a metric name (auc, rmse, …) to
// its value on the shared evaluation window.
type ModelEvent struct {
	EventID           string             `json:"event_id"`
	ModelID           string             `json:"model_id"`
	Version           string             `json:"version"`
	Kind              ModelEventKind     `json:"kind"`
	TriggerID         string             `json:"trigger_id,omitempty"`
	ChampionMetrics   map[string]float64 `json:"champion_metrics,omitempty"`
	ChallengerMetrics map[string]float64 `json:"challenger_metrics,omitempty"`
	ArtifactURI       string             `json:"artifact_uri,omitempty"`
	Timestamp         time.Time          `json:"timestamp"`
}

// Validate reports the first broken rule as a *DecodeError.
func (e *ModelEvent) Validate() error {
	switch {
	case e.EventID == "":
		return missing("event_id")
	case !validIdent([]byte(e.ModelID)):
		return newErr(ReasonInvalidModelID, "model_id", -1, quoteValue([]byte(e.ModelID))+" "+identRule)
	case e.Version == "":
		return missing("version")
	case !slices.Contains([]ModelEventKind{ModelRegistered, ModelPromoted, ModelRejected, ModelFailed}, e.Kind):
		return newErr(ReasonInvalidField, "kind", -1, quoteValue([]byte(e.Kind))+" is not one of registered, promoted, rejected, failed")
	case e.Timestamp.IsZero():
		return missing("timestamp")
	}
	return nil
}

// DecodeRetrainTrigger decodes and validates a driftwatch.retrain-trigger.v1
// message of at most MaxTriggerBytes. Errors are *DecodeError.
func DecodeRetrainTrigger(data []byte) (RetrainTrigger, error) {
	var t RetrainTrigger
	if len(data) > MaxTriggerBytes {
		return t, newErr(ReasonTooLarge, "", -1, fmt.Sprintf("retrain trigger of %d bytes, at most %d", len(data), MaxTriggerBytes))
	}
	if err := json.Unmarshal(data, &t); err != nil {
		return t, newErr(ReasonInvalidJSON, "", -1, "decode retrain trigger: "+err.Error())
	}
	return t, t.Validate()
}

// DecodeModelEvent decodes and validates a driftwatch.model-event.v1
// message. Errors are *DecodeError.
func DecodeModelEvent(data []byte) (ModelEvent, error) {
	var e ModelEvent
	if err := json.Unmarshal(data, &e); err != nil {
		return e, newErr(ReasonInvalidJSON, "", -1, "decode model event: "+err.Error())
	}
	return e, e.Validate()
}

// NewManualTrigger returns the trigger a person asks for (`driftwatch
// retrain`): reason manual, policy (default "manual"), and a random dedup
// key, so that every manual request runs once.
func NewManualTrigger(model, policy string, now time.Time) RetrainTrigger {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	id := "manual-" + hex.EncodeToString(b[:])
	if policy == "" {
		policy = "manual"
	}
	now = now.UTC()
	return RetrainTrigger{TriggerID: id, ModelID: model, Reason: TriggerManual, CreatedAt: now, Policy: policy, DedupKey: id,
		Window: TimeRange{From: now, To: now}, Reference: TimeRange{From: now, To: now}}
}

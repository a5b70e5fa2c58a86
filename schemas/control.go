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
	Check     string   `json:"check"`
	Feature   string   `json:"feature,omitempty"`
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

// Validate reports the first broken rule as a *DecodeError.
func (t *RetrainTrigger) Validate() error {
	switch {
	case t.TriggerID == "":
		return missing("trigger_id")
	case !validIdent([]byte(t.ModelID)):
		return newErr(ReasonInvalidModelID, "model_id", -1, quoteValue([]byte(t.ModelID))+" must be 1-128 characters of letters, digits and ._:-")
	case !slices.Contains(triggerReasons, t.Reason):
		return newErr(ReasonInvalidField, "reason", -1, fmt.Sprintf("%s is not one of %v", quoteValue([]byte(t.Reason)), triggerReasons))
	case t.CreatedAt.IsZero():
		return missing("created_at")
	case t.Window.To.Before(t.Window.From):
		return newErr(ReasonInvalidField, "window", -1, "to is before from")
	case t.Reference.To.Before(t.Reference.From):
		return newErr(ReasonInvalidField, "reference", -1, "to is before from")
	case t.DedupKey == "":
		return missing("dedup_key")
	}
	return nil
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
		return newErr(ReasonInvalidModelID, "model_id", -1, quoteValue([]byte(e.ModelID))+" must be 1-128 characters of letters, digits and ._:-")
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
// message. Errors are *DecodeError.
func DecodeRetrainTrigger(data []byte) (RetrainTrigger, error) {
	var t RetrainTrigger
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

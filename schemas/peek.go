package schemas

import (
	"encoding/json"
	"math"
	"time"
)

// peekLimit is the largest payload Peek parses: bigger ones were rejected
// for their size, and parsing them would cost more than it tells.
const peekLimit = 1 << 20

// Peek reads, best effort, the model and the event time of a message that
// failed to decode, so a dead letter can be counted against its model and
// window. modelID is the payload's top-level "model_id" when it is a valid
// model id, else key when that is one (producers key model-scoped events by
// model_id), else empty. ts is the payload's "timestamp" (RFC 3339 or epoch
// milliseconds, between 1970 and 2200), else the zero time.
func Peek(data, key []byte) (modelID string, ts time.Time) {
	if validIdent(key) {
		modelID = string(key)
	}
	if len(data) > peekLimit {
		return modelID, ts
	}
	var ev struct {
		ModelID   json.RawMessage `json:"model_id"`
		Timestamp json.RawMessage `json:"timestamp"`
	}
	if json.Unmarshal(data, &ev) != nil {
		return modelID, ts
	}
	var id string
	if json.Unmarshal(ev.ModelID, &id) == nil && validIdent([]byte(id)) {
		modelID = id
	}
	var s string
	var ms float64
	switch {
	case json.Unmarshal(ev.Timestamp, &s) == nil:
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			ts = t.UTC()
		}
	case json.Unmarshal(ev.Timestamp, &ms) == nil && !math.IsNaN(ms):
		ts = time.UnixMilli(int64(ms)).UTC()
		if ms < 0 || ms > 7258118400000 { // 2200-01-01
			ts = time.Time{}
		}
	}
	if ts.Year() < 1970 || ts.Year() >= 2200 {
		ts = time.Time{}
	}
	return modelID, ts
}

package schemas

import (
	"strings"
	"testing"
	"time"
)

func TestPeek(t *testing.T) {
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, data, key string
		model           string
		ts              time.Time
	}{
		{"valid event", `{"model_id": "fraud-v2", "timestamp": "2026-11-27T10:00:00Z", "features": 1}`, "", "fraud-v2", at},
		{"epoch millis", `{"model_id": "m", "timestamp": 1795773600000}`, "", "m", at},
		{"payload wins over key", `{"model_id": "m"}`, "k", "m", time.Time{}},
		{"invalid JSON, key", `{"model_id": "m", `, "churn", "churn", time.Time{}},
		{"bad model id, key", `{"model_id": "has space", "timestamp": "yesterday"}`, "m2", "m2", time.Time{}},
		{"bad model id, no key", `{"model_id": 7}`, "", "", time.Time{}},
		{"bad key", `not json`, "a b", "", time.Time{}},
		{"timestamp out of range", `{"model_id": "m", "timestamp": 1e300}`, "", "m", time.Time{}},
		{"negative timestamp", `{"model_id": "m", "timestamp": -5}`, "", "m", time.Time{}},
		{"not an object", `[1, 2]`, "", "", time.Time{}},
		{"too large", `{"model_id": "m", "pad": "` + strings.Repeat("x", peekLimit) + `"}`, "k", "k", time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			model, ts := Peek([]byte(tc.data), []byte(tc.key))
			if model != tc.model || !ts.Equal(tc.ts) {
				t.Errorf("Peek = %q, %v; want %q, %v", model, ts, tc.model, tc.ts)
			}
		})
	}
}

func FuzzPeek(f *testing.F) {
	f.Add([]byte(`{"model_id": "m", "timestamp": "2026-11-27T10:00:00Z"}`), []byte("k"))
	f.Add([]byte(`{"timestamp": 1e18}`), []byte(""))
	f.Fuzz(func(t *testing.T, data, key []byte) {
		model, ts := Peek(data, key)
		if model != "" && !validIdent([]byte(model)) {
			t.Fatalf("Peek returned invalid model id %q", model)
		}
		if !ts.IsZero() && (ts.Year() < 1970 || ts.Year() >= 2200) {
			t.Fatalf("Peek returned %v", ts)
		}
	})
}

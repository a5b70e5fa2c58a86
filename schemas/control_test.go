package schemas

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func validTrigger() RetrainTrigger {
	ts := time.Date(2025, 11, 20, 14, 0, 0, 0, time.UTC)
	return RetrainTrigger{TriggerID: "t1", ModelID: "churn", ModelVersion: "3", Reason: TriggerFeatureDrift, CreatedAt: ts,
		Window: TimeRange{ts.Add(-time.Hour), ts}, Reference: TimeRange{ts.Add(-48 * time.Hour), ts.Add(-24 * time.Hour)},
		Evidence: []Evidence{{Check: "drift", Feature: "age", Method: "psi", Value: 0.3, Threshold: 0.2, Samples: 5000}},
		Policy:   "default", DedupKey: "churn/3/feature_drift/2025-11-20T14"}
}

// TestRetrainTriggerLimits: each field one byte (or row) over its limit is
// a *DecodeError naming the field and the limit, from Validate, from
// DecodeRetrainTrigger and from EncodeRetrainTrigger; at the limit it is
// accepted.
func TestRetrainTriggerLimits(t *testing.T) {
	evidence := func(n int) []Evidence {
		ev := make([]Evidence, n)
		for i := range ev {
			ev[i] = Evidence{Check: "drift", Feature: "f", Method: "psi", Value: 1, Threshold: 0.2, Samples: 1}
		}
		return ev
	}
	for _, tc := range []struct {
		field  string
		limit  int
		set    func(t *RetrainTrigger, n int)
		reason Reason
		msg    string // the error at limit+1
	}{
		{"trigger_id", 256, func(t *RetrainTrigger, n int) { t.TriggerID = strings.Repeat("t", n) }, ReasonInvalidField, "trigger_id: 257 bytes, at most 256"},
		{"dedup_key", 256, func(t *RetrainTrigger, n int) { t.DedupKey = strings.Repeat("k", n) }, ReasonInvalidField, "dedup_key: 257 bytes, at most 256"},
		{"policy", 256, func(t *RetrainTrigger, n int) { t.Policy = strings.Repeat("p", n) }, ReasonInvalidField, "policy: 257 bytes, at most 256"},
		{"model_version", 128, func(t *RetrainTrigger, n int) { t.ModelVersion = strings.Repeat("v", n) }, ReasonInvalidField, "model_version: 129 bytes, at most 128"},
		{"model_id", 128, func(t *RetrainTrigger, n int) { t.ModelID = strings.Repeat("m", n) }, ReasonInvalidModelID, "model_id: \"" + strings.Repeat("m", 64) + "\"… must be 1-128 characters"},
		{"evidence", 1000, func(t *RetrainTrigger, n int) { t.Evidence = evidence(n) }, ReasonInvalidField, "evidence: 1001 rows, at most 1000"},
		{"evidence[0].check", 256, func(t *RetrainTrigger, n int) { t.Evidence[0].Check = strings.Repeat("c", n) }, ReasonInvalidField, "evidence[0].check: 257 bytes, at most 256"},
		{"evidence[0].feature", 256, func(t *RetrainTrigger, n int) { t.Evidence[0].Feature = strings.Repeat("f", n) }, ReasonInvalidField, "evidence[0].feature: 257 bytes, at most 256"},
		{"evidence[0].method", 256, func(t *RetrainTrigger, n int) { t.Evidence[0].Method = strings.Repeat("m", n) }, ReasonInvalidField, "evidence[0].method: 257 bytes, at most 256"},
	} {
		t.Run(tc.field, func(t *testing.T) {
			at := validTrigger()
			tc.set(&at, tc.limit)
			if err := at.Validate(); err != nil {
				t.Errorf("at the limit (%d): %v", tc.limit, err)
			}
			if _, err := EncodeRetrainTrigger(&at); err != nil {
				t.Errorf("encode at the limit: %v", err)
			}
			over := validTrigger()
			tc.set(&over, tc.limit+1)
			data, _ := json.Marshal(over) // what a producer without the check would send
			_, derr := DecodeRetrainTrigger(data)
			_, eerr := EncodeRetrainTrigger(&over)
			for name, err := range map[string]error{"Validate": over.Validate(), "DecodeRetrainTrigger": derr, "EncodeRetrainTrigger": eerr} {
				var de *DecodeError
				if !errors.As(err, &de) || de.Reason != tc.reason || de.Path != tc.field || !strings.HasPrefix(err.Error(), tc.msg) {
					t.Errorf("%s over the limit: %v, want %s %q…", name, err, tc.reason, tc.msg)
				}
			}
		})
	}

	// The message as a whole: more than 1 MiB is too_large before it is
	// parsed, whatever it holds.
	big := []byte(`{"trigger_id":"` + strings.Repeat("x", MaxTriggerBytes) + `"}`)
	if _, err := DecodeRetrainTrigger(big); err == nil || err.Error() != "retrain trigger of 1048593 bytes, at most 1048576" {
		t.Errorf("1 MiB trigger: %v", err)
	} else if r, _ := ReasonOf(err); r != ReasonTooLarge {
		t.Errorf("1 MiB trigger: reason %s, want too_large", r)
	}
	// Fields within their limits whose encoding is still over 1 MiB
	// (JSON escapes '<' as six bytes): EncodeRetrainTrigger refuses it.
	wide := validTrigger()
	wide.Evidence = evidence(MaxTriggerEvidence)
	for i := range wide.Evidence {
		wide.Evidence[i].Feature = strings.Repeat("<", MaxTriggerKeyBytes)
	}
	if err := wide.Validate(); err != nil {
		t.Fatalf("wide trigger: %v", err)
	}
	if _, err := EncodeRetrainTrigger(&wide); err == nil || !strings.HasPrefix(err.Error(), "retrain trigger of ") {
		t.Errorf("encode a trigger over 1 MiB: %v", err)
	} else if r, _ := ReasonOf(err); r != ReasonTooLarge {
		t.Errorf("encode a trigger over 1 MiB: reason %s, want too_large", r)
	}
}

// TestDotModelIDsRejected: "." and ".." name a directory and its parent,
// so no contract accepts them as a model_id; "..." and ".a" are ordinary
// names.
func TestDotModelIDsRejected(t *testing.T) {
	d := testDecoder(t, Limits{})
	for _, id := range []string{".", ".."} {
		tr := validTrigger()
		tr.ModelID = id
		if r, _ := ReasonOf(tr.Validate()); r != ReasonInvalidModelID {
			t.Errorf("trigger model_id %q: %v", id, tr.Validate())
		}
		me := ModelEvent{EventID: "e", ModelID: id, Version: "1", Kind: ModelRegistered, Timestamp: tr.CreatedAt}
		if r, _ := ReasonOf(me.Validate()); r != ReasonInvalidModelID {
			t.Errorf("model event model_id %q: %v", id, me.Validate())
		}
		for kind, data := range map[Kind]string{
			KindInference:      inference("model_id", `"`+id+`"`),
			KindOutcome:        `{"event_id":"o","model_id":"` + id + `","prediction_id":"p","timestamp":"2025-11-20T14:00:00Z","actual":{"label":"x"}}`,
			KindBusinessMetric: `{"event_id":"b","metric":"revenue","value":1,"timestamp":"2025-11-20T14:00:00Z","model_id":"` + id + `"}`,
		} {
			_, _, err := decodeAny(d, kind, []byte(data))
			if r, _ := ReasonOf(err); r != ReasonInvalidModelID || !strings.Contains(err.Error(), `not "." or ".."`) {
				t.Errorf("%v model_id %q: %v", kind, id, err)
			}
		}
	}
	for _, id := range []string{"...", ".a", "a.", "..a", "a..b"} {
		tr := validTrigger()
		tr.ModelID = id
		if err := tr.Validate(); err != nil {
			t.Errorf("model_id %q: %v", id, err)
		}
	}
}

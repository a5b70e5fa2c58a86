package schemas

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func TestKindForMessage(t *testing.T) {
	for _, tc := range []struct {
		header, topic string
		want          Kind
		err           string
	}{
		{"driftwatch.inference.v1", "driftwatch.inferences", KindInference, ""},
		{"", "driftwatch.outcomes", KindOutcome, ""},
		{"", "driftwatch.business-metrics", KindBusinessMetric, ""},
		{"driftwatch.business-metric.v1", "other-topic", KindBusinessMetric, ""},
		{"driftwatch.model-event.v1", "driftwatch.model-events", KindModelEvent, ""},
		{"", "driftwatch.retrain-triggers", KindRetrainTrigger, ""},
		{"driftwatch.inference.v2", "driftwatch.inferences", KindUnknown, `schema "driftwatch.inference.v2": unsupported version, this build reads driftwatch.inference.v1`},
		{"driftwatch.prediction.v1", "driftwatch.inferences", KindUnknown, `schema "driftwatch.prediction.v1": unknown event kind "prediction"`},
		{"inference", "driftwatch.inferences", KindUnknown, `schema "inference": not of the form driftwatch.<event>.v<version>`},
		{"driftwatch.outcome.v1", "driftwatch.inferences", KindUnknown, `schema "driftwatch.outcome.v1" does not belong on topic "driftwatch.inferences", which carries driftwatch.inference.v1`},
		{"", "random", KindUnknown, `no "schema" header and topic "random" is not a driftwatch event topic`},
	} {
		k, err := KindForMessage(tc.header, tc.topic, "driftwatch.")
		if k != tc.want {
			t.Errorf("%q %q: kind %v, want %v", tc.header, tc.topic, k, tc.want)
		}
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || err.Error() != tc.err) {
			t.Errorf("%q %q: error %v, want %q", tc.header, tc.topic, err, tc.err)
		}
		if r, _ := ReasonOf(err); err != nil && r != ReasonUnsupportedSchema {
			t.Errorf("reason %q", r)
		}
	}
	for _, k := range Kinds() {
		if got, err := KindForMessage(k.SchemaName(), "", ""); got != k || err != nil {
			t.Errorf("%v round trip: %v %v", k, got, err)
		}
	}
}

func TestControlEventsRoundTrip(t *testing.T) {
	ts := time.Date(2025, 11, 20, 14, 0, 0, 0, time.UTC)
	p := 0.001
	tr := RetrainTrigger{TriggerID: "t1", ModelID: "churn", ModelVersion: "3", Reason: TriggerFeatureDrift, CreatedAt: ts,
		Window: TimeRange{ts.Add(-time.Hour), ts}, Reference: TimeRange{ts.Add(-48 * time.Hour), ts.Add(-24 * time.Hour)},
		Evidence: []Evidence{{Check: "drift", Feature: "age", Method: "psi", Value: 0.3, Threshold: 0.2, PValue: &p, Samples: 5000}},
		Policy:   "default", DedupKey: "churn/3/feature_drift/2025-11-20T14"}
	data, _ := json.Marshal(tr)
	got, err := DecodeRetrainTrigger(data)
	if err != nil || !reflect.DeepEqual(got, tr) {
		t.Errorf("trigger round trip: %v\n%+v\n%+v", err, got, tr)
	}
	bad := tr
	bad.Reason = "vibes"
	if r, _ := ReasonOf(bad.Validate()); r != ReasonInvalidField {
		t.Errorf("bad reason accepted: %v", bad.Validate())
	}
	me := ModelEvent{EventID: "m1", ModelID: "churn", Version: "4", Kind: ModelPromoted, TriggerID: "t1",
		ChampionMetrics: map[string]float64{"auc": 0.81}, ChallengerMetrics: map[string]float64{"auc": 0.84}, ArtifactURI: "file:///models/churn/4", Timestamp: ts}
	data, _ = json.Marshal(me)
	gotME, err := DecodeModelEvent(data)
	if err != nil || !reflect.DeepEqual(gotME, me) {
		t.Errorf("model event round trip: %v", err)
	}
	if _, err := DecodeModelEvent([]byte(`{"event_id":"x","model_id":"m","version":"1","kind":"exploded","timestamp":"2025-11-20T14:00:00Z"}`)); err == nil ||
		err.Error() != `kind: "exploded" is not one of registered, promoted, rejected, failed` {
		t.Errorf("got %v", err)
	}
}

func TestDecodeOutcomeAndBusinessMetricErrors(t *testing.T) {
	d := testDecoder(t, Limits{})
	for _, tc := range []struct {
		kind Kind
		data string
		msg  string
	}{
		{KindOutcome, `{"event_id":"o","model_id":"m","prediction_id":"p","timestamp":"2025-11-20T14:00:00Z","actual":{}}`, "actual: must have a label or a value"},
		{KindOutcome, `{"event_id":"o","model_id":"m","prediction_id":"p","timestamp":"2025-11-20T14:00:00Z","actual":{"value":"3"}}`, "actual.value: must be a number, got string"},
		{KindOutcome, `{"event_id":"o","model_id":"m","timestamp":"2025-11-20T14:00:00Z","actual":{"label":"x"}}`, "prediction_id: required field is missing"},
		{KindBusinessMetric, `{"event_id":"b","metric":"rev","value":null,"timestamp":"2025-11-20T14:00:00Z"}`, "value: required field is null"},
		{KindBusinessMetric, `{"event_id":"b","metric":"rev","value":1,"timestamp":"2025-11-20T14:00:00Z","model_id":"a b"}`, `model_id: "a b" must be 1-128 characters of letters, digits and ._:-, and not "." or ".."`},
		{KindBusinessMetric, `{"event_id":"b","metric":"rev","value":1,"timestamp":"2025-11-20T14:00:00Z","segment":{"r":"x","r":"y"}}`, "segment.r: duplicate key"},
	} {
		if _, _, err := decodeAny(d, tc.kind, []byte(tc.data)); err == nil || err.Error() != tc.msg {
			t.Errorf("%s\ngot  %v\nwant %s", tc.data, err, tc.msg)
		}
	}
	var bm BusinessMetric
	if _, err := d.DecodeBusinessMetric([]byte(`{"event_id":"b","metric":"rev","value":1,"timestamp":"2025-11-20T14:00:00Z","model_id":null}`), &bm); err != nil || bm.ModelID != "" {
		t.Errorf("null model_id: %v %+v", err, bm)
	}
}

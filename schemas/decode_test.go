package schemas

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2025, 11, 20, 15, 0, 0, 0, time.UTC)

func testDecoder(t testing.TB, lim Limits) *Decoder {
	t.Helper()
	d, err := NewDecoder(Options{Limits: lim, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// obj builds a JSON object from key, raw-value pairs in order; a pair with
// an empty raw value is left out.
func obj(kv ...string) string {
	var b strings.Builder
	b.WriteByte('{')
	first := true
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "" {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteString(`"` + kv[i] + `":` + kv[i+1])
	}
	b.WriteByte('}')
	return b.String()
}

// inference returns a valid inference with the given top-level members
// replaced (an empty value removes the member, a new key is appended).
func inference(over ...string) string {
	base := []string{
		"event_id", `"e1"`,
		"model_id", `"churn"`,
		"model_version", `"3"`,
		"prediction_id", `"p1"`,
		"timestamp", `"2025-11-20T14:00:00Z"`,
		"features", `{"age":42,"country":"DE"}`,
		"prediction", `{"score":0.5}`,
	}
	for i := 0; i < len(over); i += 2 {
		if j := slices.Index(base, over[i]); j >= 0 && j%2 == 0 {
			base[j+1] = over[i+1]
		} else {
			base = append(base, over[i], over[i+1])
		}
	}
	return obj(base...)
}

func TestDecodeInferenceValid(t *testing.T) {
	d := testDecoder(t, Limits{})
	data := `{"event_id":"e\u00e9","model_id":"m.1:a-b_c","model_version":"v1","prediction_id":"p",` +
		`"timestamp":1763647200000.5,"features":{"n":-1.5e2,"b":true,"f":false,"s":"a\"\\\/\b\f\n\r\t\ud83d\ude00","z":null,"neg0":-0},` +
		`"prediction":{"label":"x","score":1,"value":-2,"probabilities":{"x":1,"y":0},"extra":[1,{"a":null}]},` +
		`"segment":{"region":"eu"},"latency_ms":0,"new_field":{"deep":[true]}}`
	var ev Inference
	info, err := d.DecodeInference([]byte(data), &ev)
	if err != nil {
		t.Fatal(err)
	}
	want := Inference{
		EventID: "eé", ModelID: "m.1:a-b_c", ModelVersion: "v1", PredictionID: "p",
		Timestamp:       time.Date(2025, 11, 20, 14, 0, 0, 500000, time.UTC),
		Numeric:         map[string]float64{"n": -150, "b": 1, "f": 0, "neg0": 0},
		Categorical:     map[string]string{"s": "a\"\\/\b\f\n\r\t😀"},
		MissingFeatures: []string{"z"},
		Prediction:      Prediction{Label: "x", HasLabel: true, Score: 1, HasScore: true, Value: -2, HasValue: true, Probabilities: map[string]float64{"x": 1, "y": 0}},
		Segment:         map[string]string{"region": "eu"},
		HasLatency:      true,
	}
	if !reflect.DeepEqual(ev, want) {
		t.Errorf("got  %+v\nwant %+v", ev, want)
	}
	if !math.Signbit(ev.Numeric["neg0"]) {
		t.Error("-0 lost its sign")
	}
	if info.UnknownFields != 2 {
		t.Errorf("UnknownFields = %d, want 2", info.UnknownFields)
	}

	// Reuse: the next event must not inherit anything.
	if _, err := d.DecodeInference([]byte(inference()), &ev); err != nil {
		t.Fatal(err)
	}
	if len(ev.MissingFeatures) != 0 || ev.Segment != nil || ev.Prediction.HasLabel || ev.HasLatency || len(ev.Numeric) != 1 || ev.Categorical["country"] != "DE" {
		t.Errorf("reused event kept old data: %+v", ev)
	}
}

func TestTimestampForms(t *testing.T) {
	d := testDecoder(t, Limits{})
	for _, tc := range []struct{ raw string }{
		{`"2025-11-20T14:00:00Z"`},
		{`"2025-11-20T16:00:00+02:00"`},
		{`"2025-11-20T14:00:00.000Z"`},
		{`1763647200000`},
		{`1.7636472e12`},
	} {
		var ev Inference
		if _, err := d.DecodeInference([]byte(inference("timestamp", tc.raw)), &ev); err != nil {
			t.Errorf("%s: %v", tc.raw, err)
			continue
		}
		if want := time.Date(2025, 11, 20, 14, 0, 0, 0, time.UTC); !ev.Timestamp.Equal(want) || ev.Timestamp.Location() != time.UTC {
			t.Errorf("%s: got %v, want %v", tc.raw, ev.Timestamp, want)
		}
	}
}

func TestDecodeInferenceErrors(t *testing.T) {
	many := make([]string, 0, 6)
	for i := range 6 {
		many = append(many, `"f`+string(rune('a'+i))+`":1`)
	}
	for _, tc := range []struct {
		name   string
		data   string
		reason Reason
		msg    string
	}{
		{"not json", `{"event_id":`, ReasonInvalidJSON, "event_id: invalid JSON at byte 12: expected a JSON value, found end of input"},
		{"array", `[1]`, ReasonInvalidField, "an event must be a JSON object, got array"},
		{"empty input", ``, ReasonInvalidJSON, "invalid JSON at byte 0: expected object, found end of input"},
		{"trailing", inference() + `x`, ReasonInvalidJSON, "invalid JSON at byte 176: unexpected 'x' after the event object"},
		{"bad escape", inference("event_id", `"a\x"`), ReasonInvalidJSON, `event_id: invalid JSON at byte 14: invalid escape "\\x"`},
		{"leading zero", inference("latency_ms", `01`), ReasonInvalidJSON, "invalid JSON at byte 190: expected ',' or '}' after object member, found number"},
		{"control char", inference("event_id", "\"a\nb\""), ReasonInvalidJSON, "event_id: invalid JSON at byte 14: control character in string (escape it)"},
		{"deep unknown", inference("x", strings.Repeat("[", 70)+strings.Repeat("]", 70)), ReasonInvalidJSON, "invalid JSON at byte 245: nesting deeper than 64 levels"},
		{"utf8", inference("event_id", "\"a\xffb\""), ReasonInvalidUTF8, "event_id: invalid UTF-8 at byte 14"},
		{"utf8 in key", inference("features", "{\"\xc3\":1}"), ReasonInvalidUTF8, "features: invalid UTF-8 at byte 125"},
		{"empty", `{}`, ReasonMissingField, "event_id: required field is missing"},
		{"missing prediction", inference("prediction", ""), ReasonMissingField, "prediction: required field is missing"},
		{"null event_id", inference("event_id", "null"), ReasonMissingField, "event_id: required field is null"},
		{"null features", inference("features", "null"), ReasonMissingField, "features: required field is null"},
		{"event_id number", inference("event_id", "7"), ReasonInvalidField, "event_id: must be a string, got number"},
		{"event_id empty", inference("event_id", `""`), ReasonInvalidField, "event_id: must not be empty"},
		{"event_id long", inference("event_id", `"`+strings.Repeat("a", 257)+`"`), ReasonInvalidField, "event_id: is 257 bytes, longer than 256"},
		{"empty prediction", inference("prediction", `{}`), ReasonInvalidField, "prediction: must have at least one of label, score, value or probabilities"},
		{"probability", inference("prediction", `{"probabilities":{"a":1.5}}`), ReasonInvalidField, "prediction.probabilities.a: probability 1.5 is outside [0, 1]"},
		{"segment number", inference("segment", `{"tier":3}`), ReasonInvalidField, "segment.tier: must be a string, got number"},
		{"latency negative", inference("latency_ms", `-1`), ReasonInvalidField, "latency_ms: must not be negative"},
		{"shadow string", inference("shadow", `"yes"`), ReasonInvalidField, "shadow: must be a boolean, got string"},
		{"shadow number", inference("shadow", `1`), ReasonInvalidField, "shadow: must be a boolean, got number"},
		{"dup shadow", inference("shadow", `false,"shadow":true`), ReasonDuplicateKey, "shadow: duplicate key"},
		{"features array", inference("features", `[]`), ReasonInvalidField, "features: must be an object, got array"},
		{"dup top", inference("event_id", `"a","event_id":"b"`), ReasonDuplicateKey, "event_id: duplicate key"},
		{"dup feature", inference("features", `{"a":1,"a":2}`), ReasonDuplicateKey, "features.a: duplicate key"},
		{"dup feature kinds", inference("features", `{"a":"x","a":null}`), ReasonDuplicateKey, "features.a: duplicate key"},
		{"dup feature escaped", inference("features", `{"a":"x","\u0061":1}`), ReasonDuplicateKey, "features.a: duplicate key"},
		{"dup unknown", inference("x", `1,"x":2`), ReasonDuplicateKey, "x: duplicate key"},
		{"dup probabilities", inference("prediction", `{"probabilities":{"a":0.1,"a":0.2}}`), ReasonDuplicateKey, "prediction.probabilities.a: duplicate key"},
		{"model_id space", inference("model_id", `"churn model"`), ReasonInvalidModelID, `model_id: "churn model" must be 1-128 characters of letters, digits and ._:-, and not "." or ".."`},
		{"model_id empty", inference("model_id", `""`), ReasonInvalidModelID, `model_id: "" must be 1-128 characters of letters, digits and ._:-, and not "." or ".."`},
		{"model_id long", inference("model_id", `"`+strings.Repeat("m", 129)+`"`), ReasonInvalidModelID, `model_id: "` + strings.Repeat("m", 64) + `"… must be 1-128 characters of letters, digits and ._:-, and not "." or ".."`},
		{"model_id number", inference("model_id", `5`), ReasonInvalidModelID, "model_id: must be a string, got number"},
		{"timestamp text", inference("timestamp", `"yesterday"`), ReasonInvalidTimestamp, `timestamp: "yesterday" is not RFC 3339 (2006-01-02T15:04:05Z) or epoch milliseconds`},
		{"timestamp no zone", inference("timestamp", `"2025-11-20T14:00:00"`), ReasonInvalidTimestamp, `timestamp: "2025-11-20T14:00:00" is not RFC 3339 (2006-01-02T15:04:05Z) or epoch milliseconds`},
		{"timestamp bool", inference("timestamp", `true`), ReasonInvalidTimestamp, "timestamp: must be an RFC 3339 string or epoch milliseconds, got boolean"},
		{"timestamp NaN", inference("timestamp", `NaN`), ReasonInvalidTimestamp, "timestamp: NaN is not a finite number"},
		{"epoch seconds", inference("timestamp", `1763647200`), ReasonTimestampOutOfRange, "timestamp: 1970-01-21T09:54:07.2Z is before 2000-01-01T00:00:00Z (epoch seconds? send milliseconds)"},
		{"future", inference("timestamp", `"2025-11-20T16:00:01Z"`), ReasonTimestampOutOfRange, "timestamp: 2025-11-20T16:00:01Z is more than 1h0m0s in the future"},
		{"huge epoch", inference("timestamp", `1e300`), ReasonTimestampOutOfRange, "timestamp: 1e+300 epoch milliseconds is out of range"},
		{"feature object", inference("features", `{"geo":{"lat":1}}`), ReasonInvalidFeature, "features.geo: must be a number, string, boolean or null, got object"},
		{"feature array", inference("features", `{"tags":["a"]}`), ReasonInvalidFeature, "features.tags: must be a number, string, boolean or null, got array"},
		{"feature empty name", inference("features", `{"":1}`), ReasonInvalidFeature, `features[""]: feature name must be 1-256 bytes`},
		{"feature odd name", inference("features", `{"a b":[]}`), ReasonInvalidFeature, `features["a b"]: must be a number, string, boolean or null, got array`},
		{"NaN", inference("features", `{"age":NaN}`), ReasonNonFiniteNumber, "features.age: NaN is not a finite number"},
		{"Infinity", inference("features", `{"age":Infinity}`), ReasonNonFiniteNumber, "features.age: Infinity is not a finite number"},
		{"-Infinity", inference("features", `{"age":-Infinity}`), ReasonNonFiniteNumber, "features.age: -Infinity is not a finite number"},
		{"1e999", inference("features", `{"age":1e999}`), ReasonNonFiniteNumber, "features.age: 1e999 is out of the float64 range"},
		{"score NaN", inference("prediction", `{"score":NaN}`), ReasonNonFiniteNumber, "prediction.score: NaN is not a finite number"},
		{"too many", inference("features", "{"+strings.Join(many, ",")+"}"), ReasonTooManyFeatures, "features: more than 5 features"},
		{"too large", inference("pad", `"`+strings.Repeat(" ", 600)+`"`), ReasonTooLarge, "event is 785 bytes, the limit is 700"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := testDecoder(t, Limits{MaxFeatures: 5, MaxBytes: 700})
			var ev Inference
			_, err := d.DecodeInference([]byte(tc.data), &ev)
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v (%T) is not a *DecodeError; input %s", err, err, tc.data)
			}
			if de.Reason != tc.reason || err.Error() != tc.msg {
				t.Errorf("got  %s %q\nwant %s %q\ninput %s", de.Reason, err.Error(), tc.reason, tc.msg, tc.data)
			}
			if r, ok := ReasonOf(err); !ok || r != tc.reason {
				t.Errorf("ReasonOf = %q, %v", r, ok)
			}
		})
	}
}

func TestEveryReasonIsTested(t *testing.T) {
	// Every reason must be produced by at least one fixture or table case;
	// the list below is kept honest by TestFixtures and the table tests.
	covered := map[Reason]bool{}
	for _, f := range invalidFixtures(t) {
		covered[f.reason] = true
	}
	covered[ReasonUnsupportedSchema] = true // TestKindForMessage
	covered[ReasonTooLarge] = true          // TestDecodeInferenceErrors; a 1 MiB fixture is not worth its weight
	for _, r := range Reasons() {
		if !covered[r] {
			t.Errorf("no invalid fixture in testdata/invalid for reason %s", r)
		}
	}
}

type fixture struct {
	path   string
	kind   Kind
	reason Reason
}

// invalidFixtures lists testdata/invalid/<kind>/<reason>.<name>.json.
func invalidFixtures(t testing.TB) []fixture {
	files, err := filepath.Glob("testdata/invalid/*/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	var out []fixture
	for _, f := range files {
		kind := kindByName(filepath.Base(filepath.Dir(f)))
		reason, _, _ := strings.Cut(filepath.Base(f), ".")
		out = append(out, fixture{f, kind, Reason(reason)})
	}
	return out
}

func kindByName(name string) Kind {
	for _, k := range Kinds() {
		if k.String() == name {
			return k
		}
	}
	return KindUnknown
}

// decodeAny decodes data as kind and returns the event.
func decodeAny(d *Decoder, kind Kind, data []byte) (any, Info, error) {
	switch kind {
	case KindInference:
		var ev Inference
		info, err := d.DecodeInference(data, &ev)
		return ev, info, err
	case KindOutcome:
		var ev Outcome
		info, err := d.DecodeOutcome(data, &ev)
		return ev, info, err
	case KindBusinessMetric:
		var ev BusinessMetric
		info, err := d.DecodeBusinessMetric(data, &ev)
		return ev, info, err
	}
	panic("BUG: no decoder for " + kind.String())
}

func TestFixtures(t *testing.T) {
	d := testDecoder(t, Limits{})
	valid, _ := filepath.Glob("testdata/valid/*.json")
	for _, f := range valid {
		t.Run(f, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			name, _, _ := strings.Cut(filepath.Base(f), "-")
			if name == "business" {
				name = "business-metric"
			}
			if _, _, err := decodeAny(d, kindByName(name), data); err != nil {
				t.Error(err)
			}
		})
	}
	for _, fx := range invalidFixtures(t) {
		t.Run(fx.path, func(t *testing.T) {
			data, err := os.ReadFile(fx.path)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = decodeAny(d, fx.kind, data)
			if r, _ := ReasonOf(err); r != fx.reason {
				t.Errorf("got %v (reason %q), want reason %q", err, r, fx.reason)
			}
		})
	}
}

func TestNewDecoderValidates(t *testing.T) {
	_, err := NewDecoder(Options{Limits: Limits{MaxFeatures: -1, MaxBytes: -1}})
	if err == nil || !strings.Contains(err.Error(), "limits.max_features") || !strings.Contains(err.Error(), "limits.max_bytes") {
		t.Errorf("got %v, want both problems", err)
	}
	d, err := NewDecoder(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if l := d.Limits(); l.MaxFeatures != 2000 || l.MaxBytes != 1<<20 || l.MaxFutureSkew != time.Hour || !l.MinTime.Equal(DefaultMinTime) {
		t.Errorf("defaults: %+v", l)
	}
}

func TestReasonsClosed(t *testing.T) {
	rs := Reasons()
	if len(rs) != 13 {
		t.Errorf("Reasons() has %d entries; update the package doc and dashboards when the set changes", len(rs))
	}
	rs[0] = "changed"
	if Reasons()[0] != ReasonInvalidJSON {
		t.Error("Reasons returned its backing array")
	}
}

// TestDecodeInferenceShadow: the optional shadow marker decodes to
// Inference.Shadow (absent, null and false are false) and survives a
// MarshalJSON round trip.
func TestDecodeInferenceShadow(t *testing.T) {
	d := testDecoder(t, Limits{})
	for _, tc := range []struct {
		name, value string
		want        bool
	}{{"absent", "", false}, {"null", "null", false}, {"false", "false", false}, {"true", "true", true}} {
		t.Run(tc.name, func(t *testing.T) {
			var ev Inference
			data := inference()
			if tc.value != "" {
				data = inference("shadow", tc.value)
			}
			if _, err := d.DecodeInference([]byte(data), &ev); err != nil {
				t.Fatal(err)
			}
			if ev.Shadow != tc.want {
				t.Fatalf("Shadow = %v, want %v", ev.Shadow, tc.want)
			}
			raw, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			var back Inference
			if _, err := d.DecodeInference(raw, &back); err != nil || back.Shadow != tc.want {
				t.Fatalf("round trip of %s: Shadow = %v (err %v), want %v", raw, back.Shadow, err, tc.want)
			}
		})
	}
}

package schemas

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

type jsonSchema struct {
	ID         string                 `json:"$id"`
	Required   []string               `json:"required"`
	Properties map[string]*jsonSchema `json:"properties"`
	Pattern    string                 `json:"pattern"`
	MaxLength  int                    `json:"maxLength"`
	MaxProps   int                    `json:"maxProperties"`
}

func loadSchema(t *testing.T, name string) *jsonSchema {
	t.Helper()
	data, err := os.ReadFile("jsonschema/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var s jsonSchema
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return &s
}

func specNames(specs []fieldSpec, required bool) []string {
	var out []string
	for _, f := range specs {
		if !required || f.required {
			out = append(out, f.name)
		}
	}
	slices.Sort(out)
	return out
}

func checkObject(t *testing.T, where string, s *jsonSchema, specs []fieldSpec) {
	t.Helper()
	var props []string
	for k := range s.Properties {
		props = append(props, k)
	}
	slices.Sort(props)
	if want := specNames(specs, false); !slices.Equal(props, want) {
		t.Errorf("%s: schema properties %v, decoder fields %v", where, props, want)
	}
	req := slices.Sorted(slices.Values(s.Required))
	if want := specNames(specs, true); !slices.Equal(req, want) && !(len(req) == 0 && len(want) == 0) {
		t.Errorf("%s: schema required %v, decoder requires %v", where, req, want)
	}
}

// TestJSONSchemasMatchDecoder keeps jsonschema/*.json and the decoder in
// step: the same properties, the same required ones, the same id pattern
// and limits, and every schema property is one the decoder reads (setting
// it to an array is an error about that very field, not an unknown field).
func TestJSONSchemasMatchDecoder(t *testing.T) {
	valid := map[Kind]string{
		KindInference:      inference(),
		KindOutcome:        `{"event_id":"o","model_id":"m","prediction_id":"p","timestamp":"2025-11-20T14:00:00Z","actual":{"label":"x"}}`,
		KindBusinessMetric: `{"event_id":"b","metric":"revenue","value":1,"timestamp":"2025-11-20T14:00:00Z"}`,
	}
	for _, tc := range []struct {
		file       string
		kind       Kind
		specs      []fieldSpec
		inner      string
		innerSpecs []fieldSpec
	}{
		{"inference.v1.json", KindInference, inferenceFields, "prediction", predictionFields},
		{"outcome.v1.json", KindOutcome, outcomeFields, "actual", actualFields},
		{"business-metric.v1.json", KindBusinessMetric, businessMetricFields, "", nil},
	} {
		t.Run(tc.file, func(t *testing.T) {
			s := loadSchema(t, tc.file)
			if s.ID != tc.kind.SchemaName() {
				t.Errorf("$id %q, want %q", s.ID, tc.kind.SchemaName())
			}
			checkObject(t, tc.file, s, tc.specs)
			if tc.inner != "" {
				checkObject(t, tc.file+" "+tc.inner, s.Properties[tc.inner], tc.innerSpecs)
			}
			for _, name := range []string{"model_id", "metric"} {
				if p := s.Properties[name]; p != nil && p.Pattern != ModelIDPattern {
					t.Errorf("%s pattern %q, decoder uses %q", name, p.Pattern, ModelIDPattern)
				}
			}
			if got := s.Properties["event_id"].MaxLength; got != MaxIDBytes {
				t.Errorf("event_id maxLength %d, decoder %d", got, MaxIDBytes)
			}
			if f := s.Properties["features"]; f != nil && f.MaxProps != DefaultMaxFeatures {
				t.Errorf("features maxProperties %d, decoder default %d", f.MaxProps, DefaultMaxFeatures)
			}

			d := testDecoder(t, Limits{})
			base := valid[tc.kind]
			for name := range s.Properties {
				data := strings.TrimSuffix(base, "}") + `,"` + name + `":[]}`
				if strings.Contains(base, `"`+name+`":`) {
					data = replaceMember(t, base, name, "[]")
				}
				_, _, err := decodeAny(d, tc.kind, []byte(data))
				var de *DecodeError
				if !asDecodeError(err, &de) || de.Path != name {
					t.Errorf("property %s: decoder does not read it (err %v)", name, err)
				}
			}
			_, info, err := decodeAny(d, tc.kind, []byte(strings.TrimSuffix(base, "}")+`,"not_in_schema":[]}`))
			if err != nil || info.UnknownFields != 1 {
				t.Errorf("unknown property: err %v, UnknownFields %d", err, info.UnknownFields)
			}
		})
	}
}

func asDecodeError(err error, de **DecodeError) bool {
	e, ok := err.(*DecodeError)
	*de = e
	return ok
}

// replaceMember replaces the value of a top-level member of a flat test
// event by decoding and re-encoding with encoding/json.
func replaceMember(t *testing.T, data, name, raw string) string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(data), &m); err != nil {
		t.Fatal(err)
	}
	m[name] = json.RawMessage(raw)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestModelIDPatternMatchesValidator(t *testing.T) {
	re := regexp.MustCompile(ModelIDPattern)
	for _, s := range []string{"a", "churn-v2", "team.model:prod_1", strings.Repeat("x", 128), strings.Repeat("x", 129),
		"", "a b", "a/b", "é", "a\n", "A-Z.0_9:", "ünï",
		".", "..", "...", ".a", "a.", "..a", ".." + strings.Repeat("x", 126), ".." + strings.Repeat("x", 127), "." + strings.Repeat("x", 127), "." + strings.Repeat("x", 128)} {
		if got, want := validIdent([]byte(s)), re.MatchString(s); got != want {
			t.Errorf("%q: validator %v, pattern %v", s, got, want)
		}
	}
}

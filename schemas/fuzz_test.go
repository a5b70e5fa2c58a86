package schemas

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// addSeeds adds every fixture of kind (valid and invalid) as a fuzz seed.
func addSeeds(f *testing.F, kind Kind) {
	prefix := kind.String()
	valid, _ := filepath.Glob("testdata/valid/" + prefix + "-*.json")
	invalid, _ := filepath.Glob("testdata/invalid/" + prefix + "/*.json")
	for _, p := range append(valid, invalid...) {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		if len(data) < 64<<10 { // the too_large seed would slow every run
			f.Add(data)
		}
	}
}

// checkCommon holds the invariants every decoder shares: the error is a
// *DecodeError with a known reason, and the scanner agrees with
// encoding/json on what is syntactically valid JSON.
func checkCommon(t *testing.T, data []byte, err error) {
	t.Helper()
	if err != nil {
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("error %v is %T, not *DecodeError", err, err)
		}
		if !slices.Contains(Reasons(), de.Reason) || de.Msg == "" {
			t.Fatalf("bad error %#v", de)
		}
	}
	if err == nil && !json.Valid(data) {
		t.Fatalf("accepted invalid JSON %q", data)
	}
	if r, _ := ReasonOf(err); r == ReasonInvalidJSON && json.Valid(data) && utf8.Valid(data) &&
		!strings.Contains(err.Error(), "nesting deeper") {
		t.Fatalf("rejected valid JSON as invalid: %v\n%q", err, data)
	}
	if r, _ := ReasonOf(err); r == ReasonInvalidUTF8 && utf8.Valid(data) {
		t.Fatalf("rejected valid UTF-8: %v", err)
	}
}

// foldedKeys reports whether data is an object with a key that matches a
// contract field only case-insensitively; encoding/json would fill the
// field from it, the scanner (rightly) treats it as unknown.
func foldedKeys(data []byte, specs ...[]fieldSpec) bool {
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) != nil {
		return true
	}
	var keys []string
	for k, v := range top {
		keys = append(keys, k)
		var inner map[string]json.RawMessage
		if (k == "prediction" || strings.EqualFold(k, "prediction")) && json.Unmarshal(v, &inner) == nil {
			for k := range inner {
				keys = append(keys, k)
			}
		}
	}
	for _, k := range keys {
		for _, fs := range specs {
			for _, f := range fs {
				if k != f.name && strings.EqualFold(k, f.name) {
					return true
				}
			}
		}
	}
	return false
}

func sortedMissing(ev Inference) Inference {
	ev.MissingFeatures = slices.Sorted(slices.Values(ev.MissingFeatures))
	if len(ev.MissingFeatures) == 0 {
		ev.MissingFeatures = nil
	}
	return ev
}

func FuzzDecodeInference(f *testing.F) {
	addSeeds(f, KindInference)
	f.Add([]byte(`{"event_id":"\ud800","features":{"a":"\udc00\ud83d\ude00"}}`))
	d := testDecoder(f, Limits{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var ev Inference
		_, err := d.DecodeInference(data, &ev)
		checkCommon(t, data, err)
		if err != nil {
			return
		}
		// Accepted: the encoding/json decoder must accept it too and see the
		// same event (unless field names differ only in case).
		var ref Inference
		if rerr := stdDecodeInference(d, data, &ref); !foldedKeys(data, inferenceFields, predictionFields) {
			if rerr != nil {
				t.Fatalf("scanner accepted, encoding/json rejected: %v\n%q", rerr, data)
			}
			if a, b := sortedMissing(ev), sortedMissing(ref); !reflect.DeepEqual(a, b) {
				t.Fatalf("scanner and encoding/json disagree\nscanner %+v\nstd     %+v\n%q", a, b, data)
			}
		}
		// Re-encode and decode again: the same event.
		enc, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("encode accepted event: %v", err)
		}
		var again Inference
		if _, err := d.DecodeInference(enc, &again); err != nil {
			t.Fatalf("re-encoded event rejected: %v\n%s", err, enc)
		}
		if a, b := sortedMissing(ev), sortedMissing(again); !reflect.DeepEqual(a, b) {
			t.Fatalf("round trip changed the event\nfirst  %+v\nsecond %+v\n%s", a, b, enc)
		}
	})
}

// fuzzRoundTrip fuzzes decode with the seeds of kind: the common checks on
// every input, and an accepted event, encoded with encoding/json, decodes
// again to the same event.
func fuzzRoundTrip[E any](f *testing.F, kind Kind, decode func(*Decoder, []byte, *E) (Info, error)) {
	addSeeds(f, kind)
	d := testDecoder(f, Limits{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var ev E
		_, err := decode(d, data, &ev)
		checkCommon(t, data, err)
		if err != nil {
			return
		}
		enc, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("encode accepted event: %v", err)
		}
		var again E
		if _, err := decode(d, enc, &again); err != nil || !reflect.DeepEqual(ev, again) {
			t.Fatalf("round trip: %v\nfirst  %+v\nsecond %+v\n%s", err, ev, again, enc)
		}
	})
}

func FuzzDecodeOutcome(f *testing.F) {
	fuzzRoundTrip(f, KindOutcome, (*Decoder).DecodeOutcome)
}

func FuzzDecodeBusinessMetric(f *testing.F) {
	fuzzRoundTrip(f, KindBusinessMetric, (*Decoder).DecodeBusinessMetric)
}

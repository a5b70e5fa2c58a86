package personal

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/driftwatch/driftwatch/schemas"
)

const testKey = "driftwatch-test-key-0123456789"

// The expected hashes are the first 16 bytes of
//
//	printf '%s' VALUE | openssl dgst -sha256 -hmac driftwatch-test-key-0123456789
//
// computed outside Go.
const (
	hashPhone  = "hmac:ddd83f54a8dfc0e34b26bbc4dac37780" // "+1 555 0100"
	hashNumber = "hmac:ae46e4deccf5d439b49b42e5cf0d9ef6" // 5550100 as a number
)

func newPolicy(t *testing.T) *Policy {
	t.Helper()
	p, err := New(map[string]Rules{
		"credit-risk": {"email": Drop, "phone": Hash},
		AllModels:     {"ssn": Drop, "user": Hash},
	}, []byte(testKey))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHashMatchesOpenSSL(t *testing.T) {
	h := newPolicy(t).NewHasher()
	if got := h.String("+1 555 0100"); got != hashPhone {
		t.Errorf("String = %s, want %s", got, hashPhone)
	}
	if got := h.Number(5550100); got != hashNumber {
		t.Errorf("Number = %s, want %s", got, hashNumber)
	}
	again := newPolicy(t).NewHasher() // equal values hash alike across hashers and calls
	if h.String("+1 555 0100") != again.String("+1 555 0100") || h.String("+1 555 0100") == h.String("+1 555 0101") {
		t.Error("equal values must hash alike, different ones apart")
	}
}

func TestNew(t *testing.T) {
	if p, err := New(nil, nil); p != nil || err != nil {
		t.Errorf("no rules: %v, %v; want nil, nil", p, err)
	}
	if p, err := New(map[string]Rules{"m": {"email": Drop}}, nil); p == nil || err != nil {
		t.Errorf("drop needs no key: %v, %v", p, err)
	}
	if _, err := New(map[string]Rules{"m": {"phone": Hash}}, nil); !errors.Is(err, ErrNoKey) {
		t.Errorf("hash without key: %v", err)
	}
	if _, err := New(map[string]Rules{"m": {"phone": Hash}}, []byte("short")); err == nil || !strings.Contains(err.Error(), "at least 16") {
		t.Errorf("short key: %v", err)
	}
}

func TestInference(t *testing.T) {
	h := newPolicy(t).NewHasher()
	for _, c := range []struct {
		name     string
		model    string
		num      map[string]float64
		cat, seg map[string]string
		wantNum  map[string]float64
		wantCat  map[string]string
		wantSeg  map[string]string
	}{
		{"model rules and all-model rules", "credit-risk",
			map[string]float64{"age": 30, "phone": 5550100}, map[string]string{"email": "a@b.c", "user": "+1 555 0100", "city": "Oslo"}, map[string]string{"ssn": "x", "country": "NO"},
			map[string]float64{"age": 30}, map[string]string{"phone": hashNumber, "user": hashPhone, "city": "Oslo"}, map[string]string{"country": "NO"}},
		{"another model gets the all-model rules only", "churn",
			map[string]float64{"phone": 1}, map[string]string{"email": "a@b.c", "user": "+1 555 0100"}, nil,
			map[string]float64{"phone": 1}, map[string]string{"email": "a@b.c", "user": hashPhone}, nil},
		{"segment values are hashed by name", "credit-risk",
			nil, nil, map[string]string{"phone": "+1 555 0100", "email": "a@b.c"},
			nil, map[string]string{}, map[string]string{"phone": hashPhone}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ev := &schemas.Inference{ModelID: c.model, Numeric: c.num, Categorical: c.cat, Segment: c.seg}
			h.Inference(ev)
			if !equal(ev.Numeric, c.wantNum) || !equal(ev.Categorical, c.wantCat) || !equal(ev.Segment, c.wantSeg) {
				t.Errorf("got %v %v %v\nwant %v %v %v", ev.Numeric, ev.Categorical, ev.Segment, c.wantNum, c.wantCat, c.wantSeg)
			}
		})
	}
}

func equal[V comparable](a, b map[string]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestPayload(t *testing.T) {
	h := newPolicy(t).NewHasher()
	for _, c := range []struct {
		name, model, in string
		want            string // "" for unchanged
		withheld        bool
	}{
		{"features and segment", "credit-risk",
			`{"model_id":"credit-risk","features":{"email":"a@b.c","phone":5550100,"age":"thirty"},"segment":{"user":"+1 555 0100"}}`,
			`{"features":{"age":"thirty","phone":"` + hashNumber + `"},"model_id":"credit-risk","segment":{"user":"` + hashPhone + `"}}`, false},
		{"nothing personal", "credit-risk", `{"features":{"age":1}}`, "", false},
		{"broken JSON", "credit-risk", `{"features":{"email":"a@b.c"`, string(Withheld(28)), true},
		{"features not an object", "credit-risk", `{"features":"email=a@b.c"}`, string(Withheld(26)), true},
		{"unknown model gets every rule", "", `{"features":{"email":"a@b.c","phone":"+1 555 0100"}}`,
			`{"features":{"phone":"` + hashPhone + `"}}`, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, changed, withheld := h.Payload([]byte(c.in), c.model)
			want := c.want
			if want == "" {
				want = c.in
			}
			if string(out) != want || changed != (c.want != "") || withheld != c.withheld {
				t.Errorf("Payload = %s, %v, %v\nwant      %s, %v, %v", out, changed, withheld, want, c.want != "", c.withheld)
			}
			if strings.Contains(string(out), "a@b.c") || strings.Contains(string(out), "555 0100") {
				t.Errorf("raw value left in %s", out)
			}
			if !json.Valid(out) {
				t.Errorf("not JSON: %s", out)
			}
		})
	}
}

// FuzzPayload checks that governing any bytes gives valid JSON without the
// dropped value.
func FuzzPayload(f *testing.F) {
	f.Add([]byte(`{"event_id":"e1","model_id":"credit-risk","features":{"email":"a@b.c","phone":"+1 555 0100","age":31},"segment":{"country":"NO"}}`))
	f.Add([]byte(`{"features":{"email":null}}`))
	f.Add([]byte(`[1,2]`))
	p, err := New(map[string]Rules{AllModels: {"email": Drop, "phone": Hash}}, []byte(testKey))
	if err != nil {
		f.Fatal(err)
	}
	h := p.NewHasher()
	f.Fuzz(func(t *testing.T, in []byte) {
		out, _, _ := h.Payload(in, "m")
		if !json.Valid(out) && json.Valid(in) {
			t.Errorf("Payload(%q) = %q, not JSON", in, out)
		}
		var v struct {
			Features map[string]any `json:"features"`
		}
		if json.Unmarshal(out, &v) == nil {
			if _, ok := v.Features["email"]; ok {
				t.Errorf("Payload(%q) = %q keeps email", in, out)
			}
		}
	})
}

// BenchmarkInference measures the rules on a 20-feature inference with one
// dropped and one hashed feature (`go test -bench . ./ingest/personal`).
func BenchmarkInference(b *testing.B) {
	p, err := New(map[string]Rules{"m": {"email": Drop, "phone": Hash}}, []byte(testKey))
	if err != nil {
		b.Fatal(err)
	}
	h := p.NewHasher()
	ev := &schemas.Inference{ModelID: "m", Numeric: map[string]float64{}, Categorical: map[string]string{}}
	for i := range 18 {
		ev.Numeric[string(rune('a'+i))] = float64(i)
	}
	b.ReportAllocs()
	for b.Loop() {
		ev.Categorical["email"] = "a@b.c"
		ev.Categorical["phone"] = "+1 555 0100"
		h.Inference(ev)
	}
}

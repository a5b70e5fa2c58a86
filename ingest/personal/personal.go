// Package personal applies ingest's personal-data rules to events before
// anything is stored: per model, features (numeric and categorical) and
// segment entries named in a rule are dropped or replaced by a keyed hash,
// so equal values still join and count while the value cannot be read back.
//
// A hash is "hmac:" + the hex of the first 16 bytes of HMAC-SHA256(key,
// value); a numeric feature's value is hashed as its plain decimal text
// (strconv.FormatFloat(v, 'f', -1, 64): 5550100 as "5550100", so it hashes
// as the same number sent as a string) and the hash moves to the categorical map under the same
// name (a hash is not a number). The same value hashes alike in every
// feature and segment key, so the hash of an e-mail joins across models.
//
// Rejected events (dead letters) are handled by Payload: their JSON is
// parsed and the named fields of "features" and "segment" dropped or
// hashed; a payload that does not parse is withheld and replaced by a note.
package personal

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"math"
	"strconv"
	"strings"

	"github.com/driftwatch/driftwatch/schemas"
)

// Action is what a rule does to a field.
type Action uint8

// The actions; the zero Action keeps the field (no rule).
const (
	Keep Action = iota
	Drop
	Hash
)

// String returns the action's configuration word.
func (a Action) String() string {
	switch a {
	case Drop:
		return "drop"
	case Hash:
		return "hash"
	}
	return "keep"
}

// ParseAction reads "drop" or "hash".
func ParseAction(s string) (Action, error) {
	switch s {
	case "drop":
		return Drop, nil
	case "hash":
		return Hash, nil
	}
	return Keep, fmt.Errorf("%q is not drop or hash", s)
}

// AllModels is the model key whose rules apply to every model.
const AllModels = "*"

// HashPrefix starts every hashed value.
const HashPrefix = "hmac:"

// MinKeyBytes is the shortest hash key accepted.
const MinKeyBytes = 16

// Rules maps a field name (a feature or a segment key) to its action.
type Rules map[string]Action

// Policy is the compiled rules of every model. It is immutable and safe for
// concurrent use; hashing goes through a Hasher, one per goroutine.
type Policy struct {
	key    []byte
	all    Rules
	models map[string]Rules // each merged with all; the model's rule wins
	union  Rules            // every rule of every model, drop winning: for events whose model is unknown
}

// ErrNoKey says a hash rule exists but no key was given.
var ErrNoKey = errors.New("a personal rule hashes but no hash key is set")

// New compiles the rules by model (AllModels for every model). It returns
// nil when there are none: callers then skip the policy entirely. A hash
// rule needs key (at least MinKeyBytes).
func New(models map[string]Rules, key []byte) (*Policy, error) {
	p := &Policy{key: bytes.Clone(key), models: map[string]Rules{}, union: Rules{}}
	hashes := false
	for _, rules := range models {
		for name, a := range rules {
			if a == Keep {
				continue
			}
			hashes = hashes || a == Hash
			if p.union[name] != Drop {
				p.union[name] = a
			}
		}
	}
	if len(p.union) == 0 {
		return nil, nil
	}
	if hashes && len(key) < MinKeyBytes {
		if len(key) == 0 {
			return nil, ErrNoKey
		}
		return nil, fmt.Errorf("the personal hash key is %d bytes, at least %d are needed", len(key), MinKeyBytes)
	}
	p.all = clean(models[AllModels])
	for model, rules := range models {
		if model == AllModels {
			continue
		}
		merged := Rules{}
		for n, a := range p.all {
			merged[n] = a
		}
		for n, a := range rules {
			if a != Keep {
				merged[n] = a
			}
		}
		p.models[model] = merged
	}
	return p, nil
}

func clean(r Rules) Rules {
	out := Rules{}
	for n, a := range r {
		if a != Keep {
			out[n] = a
		}
	}
	return out
}

// For returns model's rules (its own over AllModels'); empty when none
// apply. An unknown model ("") gets every rule of every model, drop
// winning over hash.
func (p *Policy) For(model string) Rules {
	if model == "" {
		return p.union
	}
	if r, ok := p.models[model]; ok {
		return r
	}
	return p.all
}

// Hasher hashes values under the policy's key. It is not safe for
// concurrent use: each goroutine has its own.
type Hasher struct {
	p   *Policy
	mac hash.Hash
	sum []byte
	hex []byte
}

// NewHasher returns a Hasher of the policy.
func (p *Policy) NewHasher() *Hasher {
	return &Hasher{p: p, mac: hmac.New(sha256.New, p.key), sum: make([]byte, 0, sha256.Size), hex: make([]byte, len(HashPrefix)+32)}
}

// NewKeyHasher returns a Hasher under key that applies no rules, for
// computing the hash ingest stored for a value (driftwatch forget).
func NewKeyHasher(key []byte) (*Hasher, error) {
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("the personal hash key is %d bytes, at least %d are needed", len(key), MinKeyBytes)
	}
	return (&Policy{key: bytes.Clone(key)}).NewHasher(), nil
}

// Policy returns the policy h hashes for.
func (h *Hasher) Policy() *Policy { return h.p }

// String returns the hash of v: "hmac:" + 32 hex digits.
func (h *Hasher) String(v string) string {
	h.mac.Reset()
	h.mac.Write([]byte(v))
	h.sum = h.mac.Sum(h.sum[:0])
	copy(h.hex, HashPrefix)
	hex.Encode(h.hex[len(HashPrefix):], h.sum[:16])
	return string(h.hex)
}

// Number returns the hash of a numeric value, as its shortest decimal form.
func (h *Hasher) Number(v float64) string { return h.String(formatNumber(v)) }

func formatNumber(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// Inference applies the rules of ev's model to its features and segment.
func (h *Hasher) Inference(ev *schemas.Inference) {
	rules := h.p.For(ev.ModelID)
	for name, a := range rules {
		if v, ok := ev.Numeric[name]; ok {
			delete(ev.Numeric, name)
			if a == Hash {
				if ev.Categorical == nil {
					ev.Categorical = map[string]string{}
				}
				ev.Categorical[name] = h.Number(v)
			}
		} else if s, ok := ev.Categorical[name]; ok {
			if a == Hash {
				ev.Categorical[name] = h.String(s)
			} else {
				delete(ev.Categorical, name)
			}
		}
		h.segment(ev.Segment, name, a)
	}
}

// BusinessMetric applies the rules of ev's model (AllModels' when it names
// none) to its segment.
func (h *Hasher) BusinessMetric(ev *schemas.BusinessMetric) {
	rules := h.p.all
	if ev.ModelID != "" {
		rules = h.p.For(ev.ModelID)
	}
	for name, a := range rules {
		h.segment(ev.Segment, name, a)
	}
}

func (h *Hasher) segment(seg map[string]string, name string, a Action) {
	s, ok := seg[name]
	if !ok {
		return
	}
	if a == Hash {
		seg[name] = h.String(s)
	} else {
		delete(seg, name)
	}
}

// Withheld is the note that replaces a rejected payload the rules could not
// be applied to (it does not parse as a JSON object with object features and
// segment).
func Withheld(n int) []byte {
	return []byte(fmt.Sprintf(`{"driftwatch_withheld":"payload of %d bytes withheld by the personal-data rules: it does not parse, so its personal fields could not be dropped or hashed"}`, n))
}

// Payload returns raw, a rejected event's value, with the rules of model
// (every model's when "") applied to its "features" and "segment" objects
// (their keys matched ignoring case, as encoding/json matches them),
// and whether anything changed. A payload the rules cannot be applied to
// (not a JSON object; features or segment not objects) is withheld: the
// result is Withheld's note and withheld is true. Hashes equal those of
// stored events: a string is hashed as its text, a number as its
// shortest decimal form.
func (h *Hasher) Payload(raw []byte, model string) (out []byte, changed, withheld bool) {
	rules := h.p.For(model)
	if len(rules) == 0 {
		return raw, false, false
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil || top == nil {
		return Withheld(len(raw)), true, true
	}
	// Keys are matched as JSON decoders match struct fields, ignoring
	// case: a reader of the dead letter with encoding/json takes
	// "Features" for features, so its personal fields are governed too.
	for field, v := range top {
		if !strings.EqualFold(field, "features") && !strings.EqualFold(field, "segment") {
			continue
		}
		if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			continue
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(v, &obj); err != nil {
			return Withheld(len(raw)), true, true
		}
		hit := false
		for name, a := range rules {
			fv, ok := obj[name]
			if !ok {
				continue
			}
			hit = true
			if a == Drop {
				delete(obj, name)
				continue
			}
			obj[name] = h.rawValue(fv)
		}
		if hit {
			b, err := marshalSorted(obj)
			if err != nil {
				return Withheld(len(raw)), true, true
			}
			top[field] = b
			changed = true
		}
	}
	if !changed {
		return raw, false, false
	}
	b, err := marshalSorted(top)
	if err != nil {
		return Withheld(len(raw)), true, true
	}
	return b, true, false
}

// rawValue hashes one JSON value: a string as its text, a number as the
// float64 it decodes to, anything else (null, bool, object) as its JSON.
func (h *Hasher) rawValue(v json.RawMessage) json.RawMessage {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return quote(h.String(s))
	}
	var f float64
	if json.Unmarshal(v, &f) == nil && !math.IsNaN(f) {
		return quote(h.Number(f))
	}
	return quote(h.String(string(bytes.TrimSpace(v))))
}

func quote(s string) json.RawMessage { return json.RawMessage(strconv.Quote(s)) }

// marshalSorted writes obj with its keys in order (encoding/json sorts
// map keys), so a payload governs to the same bytes every time: the dead
// letters' deduplication token depends on it.
func marshalSorted(obj map[string]json.RawMessage) (json.RawMessage, error) { return json.Marshal(obj) }

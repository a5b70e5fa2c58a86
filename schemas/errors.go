package schemas

import (
	"errors"
	"strconv"
)

// Reason is the stable, machine-readable cause of a rejected event. Ingest
// labels its dead-letter metric and the dead-letter record with it, so the
// set is closed: Reasons lists every value a decoder in this package returns.
type Reason string

// The reasons an event is rejected. Adding one is a contract change (a new
// metric label value and a new dead-letter reason); renaming one breaks
// dashboards and alert rules.
const (
	// ReasonInvalidJSON: the bytes are not one RFC 8259 JSON object, or the
	// nesting of an unknown field is deeper than the decoder follows.
	ReasonInvalidJSON Reason = "invalid_json"
	// ReasonInvalidUTF8: a string contains bytes that are not UTF-8.
	ReasonInvalidUTF8 Reason = "invalid_utf8"
	// ReasonTooLarge: the event is longer than Limits.MaxBytes.
	ReasonTooLarge Reason = "too_large"
	// ReasonTooManyFeatures: features has more than Limits.MaxFeatures keys.
	ReasonTooManyFeatures Reason = "too_many_features"
	// ReasonUnsupportedSchema: the schema header names an unknown contract or
	// version, or a contract that does not belong on the topic.
	ReasonUnsupportedSchema Reason = "unsupported_schema"
	// ReasonMissingField: a required field is absent or null.
	ReasonMissingField Reason = "missing_field"
	// ReasonInvalidField: a field has the wrong JSON type, is empty or too
	// long, or breaks a rule of its own (probabilities within [0, 1], …).
	ReasonInvalidField Reason = "invalid_field"
	// ReasonDuplicateKey: an object repeats a key. JSON parsers disagree on
	// which copy wins, so accepting it would let two readers of the same
	// event see different data.
	ReasonDuplicateKey Reason = "duplicate_key"
	// ReasonInvalidModelID: model_id is not 1-128 letters, digits or ._:-
	ReasonInvalidModelID Reason = "invalid_model_id"
	// ReasonInvalidTimestamp: a timestamp is neither RFC 3339 nor epoch
	// milliseconds.
	ReasonInvalidTimestamp Reason = "invalid_timestamp"
	// ReasonTimestampOutOfRange: a timestamp is before Limits.MinTime or more
	// than Limits.MaxFutureSkew ahead of the decoder's clock.
	ReasonTimestampOutOfRange Reason = "timestamp_out_of_range"
	// ReasonInvalidFeature: a feature value is an object or array, or a
	// feature name is empty or too long.
	ReasonInvalidFeature Reason = "invalid_feature"
	// ReasonNonFiniteNumber: a number is NaN or ±Infinity (as Python's json
	// module writes them) or outside the float64 range (1e999).
	ReasonNonFiniteNumber Reason = "non_finite_number"
)

// The reasons ingest gives an event the decoder accepted but ClickHouse
// cannot keep. They are not decoder reasons (Reasons leaves them out);
// DeadLetterReasons lists them with the rest.
const (
	// ReasonOlderThanRetention: the event's timestamp is older than the
	// tables' retention_days, so the TTL would delete it at the next merge.
	ReasonOlderThanRetention Reason = "older_than_retention"
	// ReasonRejectedByStorage: ClickHouse refused the row itself (the
	// error carries the exception code and message); every other row of
	// its batch was stored.
	ReasonRejectedByStorage Reason = "rejected_by_storage"
)

// DeadLetterReasons returns every reason a dead letter can carry: Reasons
// and the two ingest reasons, in a fixed order.
func DeadLetterReasons() []Reason {
	return append(Reasons(), ReasonOlderThanRetention, ReasonRejectedByStorage)
}

var allReasons = [...]Reason{
	ReasonInvalidJSON,
	ReasonInvalidUTF8,
	ReasonTooLarge,
	ReasonTooManyFeatures,
	ReasonUnsupportedSchema,
	ReasonMissingField,
	ReasonInvalidField,
	ReasonDuplicateKey,
	ReasonInvalidModelID,
	ReasonInvalidTimestamp,
	ReasonTimestampOutOfRange,
	ReasonInvalidFeature,
	ReasonNonFiniteNumber,
}

// Reasons returns every Reason this package can return, in a fixed order, so
// a caller can pre-create one metric series per reason.
func Reasons() []Reason {
	out := make([]Reason, len(allReasons))
	copy(out, allReasons[:])
	return out
}

// DecodeError is the only error type the decoders return. Every DecodeError
// means the event itself is bad (a poison event): retrying cannot help, the
// event belongs in the dead-letter topic.
type DecodeError struct {
	// Reason is the stable cause, one of Reasons().
	Reason Reason
	// Path names the field the problem is in: "timestamp",
	// "prediction.score", "features.age", or features["odd name"]. Empty
	// when the problem is the event as a whole.
	Path string
	// Offset is the byte offset in the event where the problem was found,
	// or -1 when the problem is not at one place (a missing field).
	Offset int
	// Msg says what is wrong in words a producer can act on.
	Msg string
}

// Error returns "path: message", or the message alone when Path is empty.
func (e *DecodeError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// ReasonOf returns the Reason of the *DecodeError in err's chain, if any.
func ReasonOf(err error) (Reason, bool) {
	var de *DecodeError
	if errors.As(err, &de) {
		return de.Reason, true
	}
	return "", false
}

func newErr(r Reason, path string, off int, msg string) *DecodeError {
	return &DecodeError{Reason: r, Path: path, Offset: off, Msg: msg}
}

// at fills in the path of an error raised by a low-level reader that does
// not know which field it is reading.
func (e *DecodeError) at(path string) *DecodeError {
	if e.Path == "" {
		e.Path = path
	}
	return e
}

// childPath renders parent.key, quoting keys that are not plain identifiers
// (and truncating long ones) so a hostile key cannot make the message huge or
// ambiguous.
func childPath(parent string, key []byte) string {
	if parent == "" && len(key) > 0 && len(key) <= 64 && isIdent(key) {
		return string(key)
	}
	if len(key) > 0 && len(key) <= 64 && isIdent(key) {
		return parent + "." + string(key)
	}
	if len(key) > 64 {
		return parent + "[" + strconv.Quote(string(key[:64])) + "…]"
	}
	return parent + "[" + strconv.Quote(string(key)) + "]"
}

func isIdent(b []byte) bool {
	for _, c := range b {
		if !identByte[c] {
			return false
		}
	}
	return true
}

// identByte marks the bytes allowed in model_id and metric names:
// letters, digits and ._:-
var identByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "._:-" {
		t[c] = true
	}
	return t
}()

// quoteValue quotes a producer-supplied value for an error message,
// truncated so messages stay short.
func quoteValue(b []byte) string {
	if len(b) > 64 {
		return strconv.Quote(string(b[:64])) + "…"
	}
	return strconv.Quote(string(b))
}

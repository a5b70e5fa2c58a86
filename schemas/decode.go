package schemas

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Limits bound what one event may contain. Zero fields take the defaults.
type Limits struct {
	// MaxFeatures is the most keys features may have (null ones included).
	// Default 2000.
	MaxFeatures int
	// MaxBytes is the largest event accepted. Default 1 MiB.
	MaxBytes int
	// MaxFutureSkew is how far ahead of the decoder's clock a timestamp may
	// be (producer clocks drift). Default 1h.
	MaxFutureSkew time.Duration
	// MinTime is the earliest timestamp accepted; it catches epoch seconds
	// sent where milliseconds are expected. Default 2000-01-01T00:00:00Z.
	MinTime time.Time
}

// Default limits.
const (
	DefaultMaxFeatures   = 2000
	DefaultMaxBytes      = 1 << 20
	DefaultMaxFutureSkew = time.Hour
)

// DefaultMinTime is the default Limits.MinTime.
var DefaultMinTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Other fixed limits of the v1 contract.
const (
	// MaxIDBytes bounds event_id and prediction_id.
	MaxIDBytes = 256
	// MaxModelIDLen bounds model_id and metric (ASCII, so bytes = chars).
	MaxModelIDLen = 128
	// MaxVersionBytes bounds model_version.
	MaxVersionBytes = 128
	// MaxKeyBytes bounds a feature, segment or probabilities key.
	MaxKeyBytes = 256
	// ModelIDPattern is the regular expression model_id and metric match; the
	// JSON Schemas in jsonschema/ use the same pattern (a test checks it).
	// It is 1-128 letters, digits or ._:- except "." and "..": the trainer
	// names directories after a model, and those two would climb out of
	// them. It is written without lookahead so that Go's regexp (RE2) and
	// JSON Schema's ECMA-262 dialect read it the same way.
	ModelIDPattern = `^([A-Za-z0-9_:-][A-Za-z0-9._:-]{0,127}|\.[A-Za-z0-9_:-][A-Za-z0-9._:-]{0,126}|\.\.[A-Za-z0-9._:-]{1,126})$`
)

// Options configure a Decoder.
type Options struct {
	Limits Limits
	// Now is the clock timestamps are checked against; default time.Now.
	Now func() time.Time
}

// Decoder validates and decodes v1 events. A Decoder keeps scratch buffers
// and a bounded table of interned strings (feature names, model ids and
// other repeating values), so it is not safe for concurrent use: give each
// ingest worker its own.
type Decoder struct {
	lim    Limits
	now    func() time.Time
	s      scanner
	intern map[string]string
	nulls  map[string]struct{} // feature names seen with null, per event
	unk    map[string]struct{} // unknown keys seen, per object
}

// internCap bounds the intern table; when full it is cleared, so hostile
// high-cardinality values cost allocations but never unbounded memory.
const internCap = 8192

// internMaxLen is the longest string interned; longer ones are unlikely to
// repeat.
const internMaxLen = 64

// NewDecoder returns a Decoder with opts, defaults filled in.
func NewDecoder(opts Options) (*Decoder, error) {
	l := opts.Limits
	var errs []error
	if l.MaxFeatures < 0 {
		errs = append(errs, fmt.Errorf("limits.max_features: must not be negative, got %d", l.MaxFeatures))
	}
	if l.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("limits.max_bytes: must not be negative, got %d", l.MaxBytes))
	}
	if l.MaxFutureSkew < 0 {
		errs = append(errs, fmt.Errorf("limits.max_future_skew: must not be negative, got %s", l.MaxFutureSkew))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if l.MaxFeatures == 0 {
		l.MaxFeatures = DefaultMaxFeatures
	}
	if l.MaxBytes == 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxFutureSkew == 0 {
		l.MaxFutureSkew = DefaultMaxFutureSkew
	}
	if l.MinTime.IsZero() {
		l.MinTime = DefaultMinTime
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Decoder{lim: l, now: now, intern: make(map[string]string, 256)}, nil
}

// Limits returns the limits in force, defaults filled in.
func (d *Decoder) Limits() Limits { return d.lim }

func (d *Decoder) str(b []byte) string {
	if len(b) > internMaxLen {
		return string(b)
	}
	if s, ok := d.intern[string(b)]; ok {
		return s
	}
	if len(d.intern) >= internCap {
		clear(d.intern)
	}
	s := string(b)
	d.intern[s] = s
	return s
}

func (d *Decoder) begin(data []byte) *DecodeError {
	d.s = scanner{data: data, kbuf: d.s.kbuf, vbuf: d.s.vbuf}
	clear(d.unk)
	if len(data) > d.lim.MaxBytes {
		return newErr(ReasonTooLarge, "", -1, fmt.Sprintf("event is %d bytes, the limit is %d", len(data), d.lim.MaxBytes))
	}
	empty, err := d.s.objectStart()
	if err != nil {
		if c := d.s.peek(); d.s.pos < len(data) && c != '{' && startsValue(c) {
			return newErr(ReasonInvalidField, "", d.s.pos, "an event must be a JSON object, got "+describe(c))
		}
		return err
	}
	if empty {
		return errEmptyObject
	}
	return nil
}

// errEmptyObject is a marker: the object had no members. The callers turn it
// into the error for their first required field.
var errEmptyObject = &DecodeError{}

// unknownKey records an unknown key of the object being decoded, rejecting
// a repeat of it.
func (d *Decoder) unknownKey(path string, key []byte, info *Info) *DecodeError {
	if d.unk == nil {
		d.unk = make(map[string]struct{})
	}
	id := path + "\x00" + string(key)
	if _, dup := d.unk[id]; dup {
		return newErr(ReasonDuplicateKey, childPath(path, key), d.s.pos, "duplicate key")
	}
	d.unk[id] = struct{}{}
	info.UnknownFields++
	return nil
}

func pathOf(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// field bit sets track which known members an object had, to find missing
// and duplicate ones.
type fieldSet uint32

// wrongType reports a value of the wrong JSON type, or a syntax error when
// the next byte cannot start a JSON value at all.
func wrongType(path, want string, c byte, off int) *DecodeError {
	if !startsValue(c) {
		return newErr(ReasonInvalidJSON, path, off, fmt.Sprintf("invalid JSON at byte %d: expected a JSON value, found %s", off, describe(c)))
	}
	return newErr(ReasonInvalidField, path, off, "must be "+want+", got "+describe(c))
}

func startsValue(c byte) bool {
	switch c {
	case '"', '{', '[', 't', 'f', 'n', '-', 'N', 'I':
		return true
	}
	return c >= '0' && c <= '9'
}

// readStr reads a string value; null yields isNull.
func (d *Decoder) readStr(path string) (b []byte, isNull bool, err *DecodeError) {
	switch c := d.s.peek(); c {
	case '"':
		b, err = d.s.readString(&d.s.vbuf)
		if err != nil {
			return nil, false, err.at(path)
		}
		return b, false, nil
	case 'n':
		if d.s.literal("null") {
			return nil, true, nil
		}
	default:
		return nil, false, wrongType(path, "a string", c, d.s.pos)
	}
	return nil, false, d.s.syntax("expected a JSON value").at(path)
}

// readNum reads a finite number value; null yields isNull.
func (d *Decoder) readNum(path string) (f float64, isNull bool, err *DecodeError) {
	c := d.s.peek()
	switch {
	case c == '-' || (c >= '0' && c <= '9') || c == 'N' || c == 'I':
		f, err = d.s.readNumber()
		if err != nil {
			return 0, false, err.at(path)
		}
		return f, false, nil
	case c == 'n':
		if d.s.literal("null") {
			return 0, true, nil
		}
		return 0, false, d.s.syntax("expected a JSON value").at(path)
	}
	return 0, false, wrongType(path, "a number", c, d.s.pos)
}

// requiredStr reads a required string field of 1..max bytes.
func (d *Decoder) requiredStr(path string, max int) ([]byte, *DecodeError) {
	off := d.s.pos
	b, isNull, err := d.readStr(path)
	if err != nil {
		return nil, err
	}
	if isNull {
		return nil, newErr(ReasonMissingField, path, off, "required field is null")
	}
	if len(b) == 0 {
		return nil, newErr(ReasonInvalidField, path, off, "must not be empty")
	}
	if len(b) > max {
		return nil, newErr(ReasonInvalidField, path, off, fmt.Sprintf("is %d bytes, longer than %d", len(b), max))
	}
	return b, nil
}

// identifier reads a required model_id-like field.
func (d *Decoder) identifier(path string, reason Reason, nullable bool) (b []byte, isNull bool, err *DecodeError) {
	off := d.s.pos
	b, isNull, err = d.readStr(path)
	if err != nil {
		if err.Reason == ReasonInvalidField {
			err.Reason = reason
		}
		return nil, false, err
	}
	if isNull {
		if nullable {
			return nil, true, nil
		}
		return nil, false, newErr(ReasonMissingField, path, off, "required field is null")
	}
	if !validIdent(b) {
		return nil, false, newErr(reason, path, off, quoteValue(b)+" "+identRule)
	}
	return b, false, nil
}

// identRule says what validIdent accepts, for error messages.
const identRule = `must be 1-128 characters of letters, digits and ._:-, and not "." or ".."`

// validIdent reports whether b matches ModelIDPattern.
func validIdent(b []byte) bool {
	return len(b) >= 1 && len(b) <= MaxModelIDLen && isIdent(b) && string(b) != "." && string(b) != ".."
}

// timestamp reads an RFC 3339 string or epoch milliseconds and checks the
// range.
func (d *Decoder) timestamp(path string) (time.Time, *DecodeError) {
	off := d.s.pos
	var t time.Time
	switch c := d.s.peek(); {
	case c == '"':
		b, err := d.s.readString(&d.s.vbuf)
		if err != nil {
			return t, err.at(path)
		}
		var perr error
		t, perr = time.Parse(time.RFC3339Nano, string(b))
		if perr != nil {
			return t, newErr(ReasonInvalidTimestamp, path, off, quoteValue(b)+" is not RFC 3339 (2006-01-02T15:04:05Z) or epoch milliseconds")
		}
		t = t.UTC()
	case c == '-' || (c >= '0' && c <= '9') || c == 'N' || c == 'I':
		ms, err := d.s.readNumber()
		if err != nil {
			if err.Reason == ReasonNonFiniteNumber {
				err.Reason = ReasonInvalidTimestamp
			}
			return t, err.at(path)
		}
		// Range-check before converting: a huge float does not fit int64.
		const limit = 1e15 // year ~33658
		if ms < -limit || ms > limit {
			return t, newErr(ReasonTimestampOutOfRange, path, off, fmt.Sprintf("%g epoch milliseconds is out of range", ms))
		}
		whole := math.Floor(ms)
		t = time.UnixMilli(int64(whole)).Add(time.Duration(math.Round((ms - whole) * 1e6))).UTC()
	case c == 'n' && d.s.literal("null"):
		return t, newErr(ReasonMissingField, path, off, "required field is null")
	default:
		if !startsValue(c) {
			return t, wrongType(path, "", c, off)
		}
		return t, newErr(ReasonInvalidTimestamp, path, off, "must be an RFC 3339 string or epoch milliseconds, got "+describe(c))
	}
	if t.Before(d.lim.MinTime) {
		hint := ""
		if t.Year() == 1970 {
			hint = " (epoch seconds? send milliseconds)"
		}
		return t, newErr(ReasonTimestampOutOfRange, path, off, fmt.Sprintf("%s is before %s%s",
			t.Format(time.RFC3339Nano), d.lim.MinTime.UTC().Format(time.RFC3339), hint))
	}
	if latest := d.now().Add(d.lim.MaxFutureSkew); t.After(latest) {
		return t, newErr(ReasonTimestampOutOfRange, path, off, fmt.Sprintf("%s is more than %s in the future",
			t.Format(time.RFC3339Nano), d.lim.MaxFutureSkew))
	}
	return t, nil
}

// stringMap reads an object of strings (segment) into *m, allocating it on
// first use. null leaves *m nil.
func (d *Decoder) stringMap(path string, m *map[string]string) *DecodeError {
	if d.s.peek() == 'n' && d.s.literal("null") {
		return nil
	}
	if c := d.s.peek(); c != '{' {
		return wrongType(path, "an object of strings", c, d.s.pos)
	}
	empty, err := d.s.objectStart()
	if err != nil {
		return err.at(path)
	}
	if *m == nil {
		*m = make(map[string]string, 4)
	}
	for !empty {
		k, err := d.s.objectKey()
		if err != nil {
			return err.at(path)
		}
		if len(k) == 0 || len(k) > MaxKeyBytes {
			return newErr(ReasonInvalidField, childPath(path, k), d.s.pos, fmt.Sprintf("key must be 1-%d bytes", MaxKeyBytes))
		}
		key := d.str(k)
		off := d.s.pos
		v, isNull, err := d.readStr(childPath(path, k))
		if err == nil && isNull {
			err = wrongType(childPath(path, k), "a string", 'n', off)
		}
		if err != nil {
			return err
		}
		n := len(*m)
		(*m)[key] = d.str(v)
		if len(*m) == n {
			return newErr(ReasonDuplicateKey, childPath(path, k), off, "duplicate key")
		}
		more, err := d.s.objectNext()
		if err != nil {
			return err.at(path)
		}
		empty = !more
	}
	return nil
}

func (d *Decoder) finish() *DecodeError {
	if err := d.s.end(); err != nil {
		return err
	}
	return nil
}

func missing(path string) *DecodeError {
	return newErr(ReasonMissingField, path, -1, "required field is missing")
}

// asError converts a nil *DecodeError to a nil error interface.
func asError(err *DecodeError) error {
	if err == nil {
		return nil
	}
	return err
}

package schemas

import (
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxSkipDepth bounds the nesting of unknown fields the scanner walks over.
const maxSkipDepth = 64

// scanner is a single-pass RFC 8259 reader over one event. It never builds a
// generic tree: the decoders pull exactly the values they expect, so known
// fields cost one pass and no intermediate allocation. Its methods return
// *DecodeError with an empty Path; the caller adds the path (DecodeError.at).
type scanner struct {
	data []byte
	pos  int
	kbuf []byte // unescaped object keys
	vbuf []byte // unescaped string values
}

func (s *scanner) syntax(msg string) *DecodeError {
	return newErr(ReasonInvalidJSON, "", s.pos, fmt.Sprintf("invalid JSON at byte %d: %s", s.pos, msg))
}

func (s *scanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the next byte after whitespace, or 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

func describe(c byte) string {
	switch {
	case c == 0:
		return "end of input"
	case c == '"':
		return "string"
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == 't' || c == 'f':
		return "boolean"
	case c == 'n':
		return "null"
	case c == '-' || (c >= '0' && c <= '9') || c == 'N' || c == 'I':
		return "number"
	case c >= 0x20 && c < 0x7f:
		return strconv.QuoteRune(rune(c))
	default:
		return fmt.Sprintf("byte 0x%02x", c)
	}
}

// objectStart consumes '{' and reports whether the object is empty (and then
// also consumes '}').
func (s *scanner) objectStart() (empty bool, err *DecodeError) {
	if s.peek() != '{' {
		return false, s.syntax("expected object, found " + describe(s.peek()))
	}
	s.pos++
	if s.peek() == '}' {
		s.pos++
		return true, nil
	}
	return false, nil
}

// objectKey reads `"key" :` and leaves the position at the value.
func (s *scanner) objectKey() ([]byte, *DecodeError) {
	if s.peek() != '"' {
		return nil, s.syntax("expected string object key, found " + describe(s.peek()))
	}
	k, err := s.readString(&s.kbuf)
	if err != nil {
		return nil, err
	}
	if s.peek() != ':' {
		return nil, s.syntax("expected ':' after object key, found " + describe(s.peek()))
	}
	s.pos++
	s.ws()
	return k, nil
}

// objectNext consumes ',' (more members follow) or '}' (done).
func (s *scanner) objectNext() (more bool, err *DecodeError) {
	switch s.peek() {
	case ',':
		s.pos++
		return true, nil
	case '}':
		s.pos++
		return false, nil
	}
	return false, s.syntax("expected ',' or '}' after object member, found " + describe(s.peek()))
}

// literal consumes lit if it is next.
func (s *scanner) literal(lit string) bool {
	if len(s.data)-s.pos >= len(lit) && string(s.data[s.pos:s.pos+len(lit)]) == lit {
		s.pos += len(lit)
		return true
	}
	return false
}

// readString reads the string at s.pos (which is '"'). Without escapes it
// returns a sub-slice of the input; with escapes it unescapes into *buf.
// Lone UTF-16 surrogates in \u escapes become U+FFFD, as encoding/json does.
func (s *scanner) readString(buf *[]byte) ([]byte, *DecodeError) {
	d := s.data
	start := s.pos + 1
	i := start
	for i < len(d) {
		c := d[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return d[start:i], nil
		case c == '\\':
			return s.readStringSlow(buf, start, i)
		case c < 0x20:
			s.pos = i
			return nil, s.syntax("control character in string (escape it)")
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(d[i:])
			if r == utf8.RuneError && size == 1 {
				s.pos = i
				return nil, newErr(ReasonInvalidUTF8, "", i, fmt.Sprintf("invalid UTF-8 at byte %d", i))
			}
			i += size
		}
	}
	s.pos = i
	return nil, s.syntax("unterminated string")
}

func (s *scanner) readStringSlow(buf *[]byte, start, i int) ([]byte, *DecodeError) {
	d := s.data
	b := append((*buf)[:0], d[start:i]...)
	defer func() { *buf = b[:0] }()
	for i < len(d) {
		c := d[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return b, nil
		case c < 0x20:
			s.pos = i
			return nil, s.syntax("control character in string (escape it)")
		case c < utf8.RuneSelf && c != '\\':
			b = append(b, c)
			i++
		case c == '\\':
			if i+1 >= len(d) {
				s.pos = i
				return nil, s.syntax("unterminated string")
			}
			switch d[i+1] {
			case '"', '\\', '/':
				b = append(b, d[i+1])
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r, ok := hex4(d, i+2)
				if !ok {
					s.pos = i
					return nil, s.syntax(`invalid \u escape`)
				}
				i += 6
				if utf16.IsSurrogate(r) {
					r2, ok2 := rune(0), false
					if i+1 < len(d) && d[i] == '\\' && d[i+1] == 'u' {
						r2, ok2 = hex4(d, i+2)
					}
					if dec := utf16.DecodeRune(r, r2); ok2 && dec != utf8.RuneError {
						r = dec
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				b = utf8.AppendRune(b, r)
				continue
			default:
				s.pos = i
				return nil, s.syntax("invalid escape " + strconv.Quote(string(d[i:i+2])))
			}
			i += 2
		default:
			r, size := utf8.DecodeRune(d[i:])
			if r == utf8.RuneError && size == 1 {
				s.pos = i
				return nil, newErr(ReasonInvalidUTF8, "", i, fmt.Sprintf("invalid UTF-8 at byte %d", i))
			}
			b = append(b, d[i:i+size]...)
			i += size
		}
	}
	s.pos = i
	return nil, s.syntax("unterminated string")
}

func hex4(d []byte, i int) (rune, bool) {
	if i+4 > len(d) {
		return 0, false
	}
	var r rune
	for _, c := range d[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// readNumber reads a JSON number at s.pos. NaN, Infinity and -Infinity (what
// Python's json module writes for non-finite floats) and numbers beyond the
// float64 range are ReasonNonFiniteNumber, so the producer learns what to fix
// instead of seeing a syntax error.
func (s *scanner) readNumber() (float64, *DecodeError) {
	d := s.data
	start := s.pos
	i := start
	if i < len(d) && d[i] == '-' {
		i++
	}
	if s.literal("NaN") || s.literal("Infinity") || s.literal("-Infinity") {
		s.pos = start
		return 0, newErr(ReasonNonFiniteNumber, "", start, string(s.nonFiniteToken())+" is not a finite number")
	}
	intStart := i
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		s.pos = i
		return 0, s.syntax("invalid number")
	}
	simple := i-intStart <= 15 // fits 2^53 exactly and has no fraction or exponent
	if i < len(d) && d[i] == '.' {
		simple = false
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			s.pos = i
			return 0, s.syntax("invalid number: digit expected after '.'")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		simple = false
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			s.pos = i
			return 0, s.syntax("invalid number: digit expected in exponent")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	s.pos = i
	if simple {
		var n int64
		for _, c := range d[intStart:i] {
			n = n*10 + int64(c-'0')
		}
		if d[start] == '-' {
			if n == 0 {
				return math.Copysign(0, -1), nil
			}
			n = -n
		}
		return float64(n), nil
	}
	f, err := strconv.ParseFloat(string(d[start:i]), 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, newErr(ReasonNonFiniteNumber, "", start, quoteNumber(d[start:i])+" is out of the float64 range")
	}
	return f, nil
}

func (s *scanner) nonFiniteToken() []byte {
	for _, t := range []string{"-Infinity", "Infinity", "NaN"} {
		if len(s.data)-s.pos >= len(t) && string(s.data[s.pos:s.pos+len(t)]) == t {
			return []byte(t)
		}
	}
	return nil
}

func quoteNumber(b []byte) string {
	if len(b) > 32 {
		return string(b[:32]) + "…"
	}
	return string(b)
}

// skipValue validates and skips any JSON value (unknown fields).
func (s *scanner) skipValue(depth int) *DecodeError {
	if depth > maxSkipDepth {
		return s.syntax(fmt.Sprintf("nesting deeper than %d levels", maxSkipDepth))
	}
	switch c := s.peek(); c {
	case '"':
		_, err := s.readString(&s.vbuf)
		return err
	case '{':
		empty, err := s.objectStart()
		if err != nil || empty {
			return err
		}
		for {
			if _, err := s.objectKey(); err != nil {
				return err
			}
			if err := s.skipValue(depth + 1); err != nil {
				return err
			}
			more, err := s.objectNext()
			if err != nil || !more {
				return err
			}
		}
	case '[':
		s.pos++
		if s.peek() == ']' {
			s.pos++
			return nil
		}
		for {
			if err := s.skipValue(depth + 1); err != nil {
				return err
			}
			switch s.peek() {
			case ',':
				s.pos++
			case ']':
				s.pos++
				return nil
			default:
				return s.syntax("expected ',' or ']' in array, found " + describe(s.peek()))
			}
		}
	case 't':
		if s.literal("true") {
			return nil
		}
	case 'f':
		if s.literal("false") {
			return nil
		}
	case 'n':
		if s.literal("null") {
			return nil
		}
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			_, err := s.readNumber()
			if err != nil && err.Reason == ReasonNonFiniteNumber {
				// An out-of-range number in a field we ignore is still
				// valid JSON; only NaN/Infinity tokens are not.
				if s.pos > err.Offset {
					return nil
				}
			}
			return err
		}
	}
	return s.syntax("expected a JSON value, found " + describe(s.peek()))
}

// end checks that only whitespace follows the top-level value.
func (s *scanner) end() *DecodeError {
	if s.peek() != 0 || s.pos != len(s.data) {
		return s.syntax("unexpected " + describe(s.peek()) + " after the event object")
	}
	return nil
}

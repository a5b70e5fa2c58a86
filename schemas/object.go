package schemas

import "time"

// The contract objects (an event, its prediction or actual) are decoded
// the same way: members in any order, each known one at most once, unknown
// ones counted and skipped, required ones checked at the end. object and
// child do that walk once; a decoder supplies only what to do with the
// value of each known member.

// member decodes the value of the known member at position i of the
// object's field table; the scanner stands at the value.
type member func(i int) *DecodeError

// object decodes data as a top-level contract object with the members
// specs and reports the first required member that is missing.
func (d *Decoder) object(data []byte, specs []fieldSpec, info *Info, decode member) *DecodeError {
	if err := d.begin(data); err != nil {
		if err == errEmptyObject {
			return firstMissing(specs, 0, "")
		}
		return err
	}
	set, err := d.members("", specs, info, decode)
	if err != nil {
		return err
	}
	if err := d.finish(); err != nil {
		return err
	}
	return firstMissing(specs, set, "")
}

// child decodes the value at the scanner as the required object member
// path (one level down): null is a missing field, any other non-object a
// wrong type. It returns where the object starts, for errors about the
// object as a whole.
func (d *Decoder) child(path string, specs []fieldSpec, info *Info, decode member) (start int, err *DecodeError) {
	s := &d.s
	if c := s.peek(); c != '{' {
		if c == 'n' && s.literal("null") {
			return s.pos - 4, newErr(ReasonMissingField, path, s.pos-4, "required field is null")
		}
		return s.pos, wrongType(path, "an object", c, s.pos)
	}
	start = s.pos
	empty, err := s.objectStart()
	if err != nil {
		return start, err.at(path)
	}
	if !empty {
		_, err = d.members(path, specs, info, decode)
	}
	return start, err
}

// members walks the members of a non-empty object whose opening brace has
// been read, up to and including its closing one, and returns the set of
// known members it saw. parent is the object's path, "" at the top level.
func (d *Decoder) members(parent string, specs []fieldSpec, info *Info, decode member) (fieldSet, *DecodeError) {
	s := &d.s
	depth := 0 // skipValue's nesting: the contract objects are the event and its direct children
	if parent != "" {
		depth = 1
	}
	var set fieldSet
	for {
		k, err := s.objectKey()
		if err != nil {
			return set, err.at(parent)
		}
		i := fieldIndex(specs, k)
		if i >= 0 {
			if set&(1<<i) != 0 {
				// the path is built only here, on the error path, not for every member
				return set, newErr(ReasonDuplicateKey, pathOf(parent, specs[i].name), s.pos, "duplicate key")
			}
			set |= 1 << i
			if err := decode(i); err != nil {
				return set, err
			}
		} else {
			if err := d.unknownKey(parent, k, info); err != nil {
				return set, err
			}
			if err := s.skipValue(depth); err != nil {
				return set, err
			}
		}
		more, err := s.objectNext()
		if err != nil {
			return set, err.at(parent)
		}
		if !more {
			return set, nil
		}
	}
}

// fieldIndex is the position of key in specs, or -1. Matching is exact: a
// key that differs in case is unknown.
func fieldIndex(specs []fieldSpec, key []byte) int {
	for i := range specs {
		if specs[i].name == string(key) {
			return i
		}
	}
	return -1
}

// The members that several contracts share (event_id, prediction_id,
// model_id, timestamp) are read into their field by one function each.

// idInto reads the required id member path into *dst, as a copy of its own:
// ids are not interned, each event has new ones.
func (d *Decoder) idInto(path string, dst *string) *DecodeError {
	b, err := d.requiredStr(path, MaxIDBytes)
	if err != nil {
		return err
	}
	*dst = string(b)
	return nil
}

// modelIDInto reads the required model_id member into *dst.
func (d *Decoder) modelIDInto(dst *string) *DecodeError {
	b, _, err := d.identifier("model_id", ReasonInvalidModelID, false)
	if err != nil {
		return err
	}
	*dst = d.str(b)
	return nil
}

// timestampInto reads the timestamp member path into *dst.
func (d *Decoder) timestampInto(path string, dst *time.Time) *DecodeError {
	t, err := d.timestamp(path)
	if err != nil {
		return err
	}
	*dst = t
	return nil
}

// optionalStr reads the nullable string member path into *dst and *has;
// null leaves both alone.
func (d *Decoder) optionalStr(path string, dst *string, has *bool) *DecodeError {
	b, isNull, err := d.readStr(path)
	if err != nil {
		return err
	}
	if !isNull {
		*dst, *has = d.str(b), true
	}
	return nil
}

// optionalNum reads the nullable number member path into *dst and *has;
// null sets *has to false.
func (d *Decoder) optionalNum(path string, dst *float64, has *bool) *DecodeError {
	f, isNull, err := d.readNum(path)
	if err != nil {
		return err
	}
	*dst, *has = f, !isNull
	return nil
}

// optionalBool reads the nullable boolean member path into *dst; null
// leaves it false.
func (d *Decoder) optionalBool(path string, dst *bool) *DecodeError {
	s := &d.s
	off := s.pos
	switch c := s.peek(); {
	case c == 't' && s.literal("true"):
		*dst = true
	case c == 'f' && s.literal("false"):
		*dst = false
	case c == 'n' && s.literal("null"):
	default:
		return wrongType(path, "a boolean", c, off)
	}
	return nil
}

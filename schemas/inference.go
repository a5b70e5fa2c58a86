package schemas

import "fmt"

// fieldSpec describes one member of a contract object. The tables below are
// the decoder's view of the contract; a test checks them against the JSON
// Schemas in jsonschema/.
type fieldSpec struct {
	name     string
	required bool
}

var inferenceFields = []fieldSpec{
	{"event_id", true},
	{"model_id", true},
	{"model_version", true},
	{"prediction_id", true},
	{"timestamp", true},
	{"features", true},
	{"prediction", true},
	{"segment", false},
	{"latency_ms", false},
	{"shadow", false},
}

var predictionFields = []fieldSpec{
	{"label", false},
	{"score", false},
	{"value", false},
	{"probabilities", false},
}

// bit positions in inferenceFields
const (
	infEventID = iota
	infModelID
	infModelVersion
	infPredictionID
	infTimestamp
	infFeatures
	infPrediction
	infSegment
	infLatency
	infShadow
)

func firstMissing(specs []fieldSpec, set fieldSet, parent string) *DecodeError {
	for i, f := range specs {
		if f.required && set&(1<<i) == 0 {
			return missing(pathOf(parent, f.name))
		}
	}
	return nil
}

// DecodeInference validates data as driftwatch.inference.v1 and decodes it
// into ev. ev is reset first; its maps and slices are reused, so decoding
// into the same Inference again allocates little, but overwrites the
// previous event: copy what must outlive the next call. Segment and
// Probabilities are nil when absent or empty. The error is nil or a
// *DecodeError; after an error ev holds a partial event.
func (d *Decoder) DecodeInference(data []byte, ev *Inference) (Info, error) {
	ev.reset()
	info, err := d.decodeInference(data, ev)
	if len(ev.Segment) == 0 {
		ev.Segment = nil
	}
	if len(ev.Prediction.Probabilities) == 0 {
		ev.Prediction.Probabilities = nil
	}
	return info, asError(err)
}

func (d *Decoder) decodeInference(data []byte, ev *Inference) (Info, *DecodeError) {
	var info Info
	err := d.object(data, inferenceFields, &info, func(i int) *DecodeError {
		switch i {
		case infEventID:
			return d.idInto("event_id", &ev.EventID)
		case infModelID:
			return d.modelIDInto(&ev.ModelID)
		case infModelVersion:
			b, err := d.requiredStr("model_version", MaxVersionBytes)
			if err != nil {
				return err
			}
			ev.ModelVersion = d.str(b)
		case infPredictionID:
			return d.idInto("prediction_id", &ev.PredictionID)
		case infTimestamp:
			return d.timestampInto("timestamp", &ev.Timestamp)
		case infFeatures:
			return d.features(ev)
		case infPrediction:
			return d.prediction(&ev.Prediction, &info)
		case infSegment:
			return d.stringMap("segment", &ev.Segment)
		case infLatency:
			off := d.s.pos
			f, isNull, err := d.readNum("latency_ms")
			if err != nil {
				return err
			}
			if !isNull {
				if f < 0 {
					return newErr(ReasonInvalidField, "latency_ms", off, "must not be negative")
				}
				ev.LatencyMs, ev.HasLatency = f, true
			}
		case infShadow:
			return d.optionalBool("shadow", &ev.Shadow)
		}
		return nil
	})
	return info, err
}

// features decodes the features object: numbers to Numeric, booleans to
// Numeric as 0/1, strings to Categorical, null to MissingFeatures.
func (d *Decoder) features(ev *Inference) *DecodeError {
	s := &d.s
	if c := s.peek(); c != '{' {
		if c == 'n' && s.literal("null") {
			return newErr(ReasonMissingField, "features", s.pos-4, "required field is null")
		}
		return wrongType("features", "an object", c, s.pos)
	}
	empty, err := s.objectStart()
	if err != nil {
		return err.at("features")
	}
	clear(d.nulls)
	count := 0
	for !empty {
		k, err := s.objectKey()
		if err != nil {
			return err.at("features")
		}
		count++
		if count > d.lim.MaxFeatures {
			return newErr(ReasonTooManyFeatures, "features", s.pos, fmt.Sprintf("more than %d features", d.lim.MaxFeatures))
		}
		if len(k) == 0 || len(k) > MaxKeyBytes {
			return newErr(ReasonInvalidFeature, childPath("features", k), s.pos, fmt.Sprintf("feature name must be 1-%d bytes", MaxKeyBytes))
		}
		off := s.pos
		name := d.str(k)
		var dup bool
		switch c := s.peek(); {
		case c == '"':
			v, err := s.readString(&s.vbuf)
			if err != nil {
				return err.at(childPath("features", k))
			}
			_, dup = ev.Numeric[name]
			n := len(ev.Categorical)
			ev.Categorical[name] = d.str(v)
			dup = dup || len(ev.Categorical) == n
		case c == 't' || c == 'f':
			v := 0.0
			if s.literal("true") {
				v = 1
			} else if !s.literal("false") {
				return s.syntax("expected a JSON value").at(childPath("features", k))
			}
			dup = d.putNumeric(ev, name, v)
		case c == 'n':
			if !s.literal("null") {
				return s.syntax("expected a JSON value").at(childPath("features", k))
			}
			_, dup = ev.Numeric[name]
			if _, ok := ev.Categorical[name]; ok {
				dup = true
			}
			if d.nulls == nil {
				d.nulls = make(map[string]struct{})
			}
			if _, ok := d.nulls[name]; ok {
				dup = true
			}
			d.nulls[name] = struct{}{}
			ev.MissingFeatures = append(ev.MissingFeatures, name)
		case c == '-' || (c >= '0' && c <= '9') || c == 'N' || c == 'I':
			v, err := s.readNumber()
			if err != nil {
				return err.at(childPath("features", k))
			}
			dup = d.putNumeric(ev, name, v)
		default:
			return newErr(ReasonInvalidFeature, childPath("features", k), off, "must be a number, string, boolean or null, got "+describe(c))
		}
		if dup {
			return newErr(ReasonDuplicateKey, childPath("features", k), off, "duplicate key")
		}
		more, err := s.objectNext()
		if err != nil {
			return err.at("features")
		}
		empty = !more
	}
	return nil
}

// putNumeric stores a numeric feature and reports whether name was already
// a feature of the event.
func (d *Decoder) putNumeric(ev *Inference, name string, v float64) (dup bool) {
	if len(ev.Categorical) > 0 {
		_, dup = ev.Categorical[name]
	}
	if len(d.nulls) > 0 {
		if _, ok := d.nulls[name]; ok {
			dup = true
		}
	}
	n := len(ev.Numeric)
	ev.Numeric[name] = v
	return dup || len(ev.Numeric) == n
}

func (d *Decoder) prediction(p *Prediction, info *Info) *DecodeError {
	start, err := d.child("prediction", predictionFields, info, func(i int) *DecodeError {
		switch i {
		case 0: // label
			return d.optionalStr("prediction.label", &p.Label, &p.HasLabel)
		case 1: // score
			return d.optionalNum("prediction.score", &p.Score, &p.HasScore)
		case 2: // value
			return d.optionalNum("prediction.value", &p.Value, &p.HasValue)
		case 3: // probabilities
			return d.probabilities(p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !p.HasLabel && !p.HasScore && !p.HasValue && len(p.Probabilities) == 0 {
		return newErr(ReasonInvalidField, "prediction", start, "must have at least one of label, score, value or probabilities")
	}
	return nil
}

func (d *Decoder) probabilities(p *Prediction) *DecodeError {
	const path = "prediction.probabilities"
	s := &d.s
	if s.peek() == 'n' && s.literal("null") {
		return nil
	}
	if c := s.peek(); c != '{' {
		return wrongType(path, "an object of numbers", c, s.pos)
	}
	empty, err := s.objectStart()
	if err != nil {
		return err.at(path)
	}
	if p.Probabilities == nil {
		p.Probabilities = make(map[string]float64, 4)
	}
	for !empty {
		k, err := s.objectKey()
		if err != nil {
			return err.at(path)
		}
		if len(k) == 0 || len(k) > MaxKeyBytes {
			return newErr(ReasonInvalidField, childPath(path, k), s.pos, fmt.Sprintf("key must be 1-%d bytes", MaxKeyBytes))
		}
		key := d.str(k)
		off := s.pos
		f, isNull, err := d.readNum(childPath(path, k))
		if err == nil && isNull {
			err = wrongType(childPath(path, k), "a number", 'n', off)
		}
		if err != nil {
			return err
		}
		if !(f >= 0 && f <= 1) {
			return newErr(ReasonInvalidField, childPath(path, k), off, fmt.Sprintf("probability %g is outside [0, 1]", f))
		}
		n := len(p.Probabilities)
		p.Probabilities[key] = f
		if len(p.Probabilities) == n {
			return newErr(ReasonDuplicateKey, childPath(path, k), off, "duplicate key")
		}
		more, err := s.objectNext()
		if err != nil {
			return err.at(path)
		}
		empty = !more
	}
	return nil
}

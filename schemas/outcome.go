package schemas

var outcomeFields = []fieldSpec{
	{"event_id", true},
	{"model_id", true},
	{"prediction_id", true},
	{"timestamp", true},
	{"actual", true},
}

var actualFields = []fieldSpec{
	{"label", false},
	{"value", false},
}

var businessMetricFields = []fieldSpec{
	{"event_id", true},
	{"metric", true},
	{"value", true},
	{"timestamp", true},
	{"model_id", false},
	{"segment", false},
}

// DecodeOutcome validates data as driftwatch.outcome.v1 and decodes it into
// ev (overwritten). The error is nil or a *DecodeError.
func (d *Decoder) DecodeOutcome(data []byte, ev *Outcome) (Info, error) {
	*ev = Outcome{}
	info, err := d.decodeOutcome(data, ev)
	return info, asError(err)
}

func (d *Decoder) decodeOutcome(data []byte, ev *Outcome) (Info, *DecodeError) {
	var info Info
	var set fieldSet
	if err := d.begin(data); err != nil {
		if err == errEmptyObject {
			return info, firstMissing(outcomeFields, 0, "")
		}
		return info, err
	}
	s := &d.s
	for {
		k, err := s.objectKey()
		if err != nil {
			return info, err
		}
		switch string(k) {
		case "event_id":
			if err := d.seen(&set, 0, "event_id"); err != nil {
				return info, err
			}
			b, err := d.requiredStr("event_id", MaxIDBytes)
			if err != nil {
				return info, err
			}
			ev.EventID = string(b)
		case "model_id":
			if err := d.seen(&set, 1, "model_id"); err != nil {
				return info, err
			}
			b, _, err := d.identifier("model_id", ReasonInvalidModelID, false)
			if err != nil {
				return info, err
			}
			ev.ModelID = d.str(b)
		case "prediction_id":
			if err := d.seen(&set, 2, "prediction_id"); err != nil {
				return info, err
			}
			b, err := d.requiredStr("prediction_id", MaxIDBytes)
			if err != nil {
				return info, err
			}
			ev.PredictionID = string(b)
		case "timestamp":
			if err := d.seen(&set, 3, "timestamp"); err != nil {
				return info, err
			}
			t, err := d.timestamp("timestamp")
			if err != nil {
				return info, err
			}
			ev.Timestamp = t
		case "actual":
			if err := d.seen(&set, 4, "actual"); err != nil {
				return info, err
			}
			if err := d.actual(&ev.Actual, &info); err != nil {
				return info, err
			}
		default:
			if err := d.unknownKey("", k, &info); err != nil {
				return info, err
			}
			if err := s.skipValue(0); err != nil {
				return info, err
			}
		}
		more, err := s.objectNext()
		if err != nil {
			return info, err
		}
		if !more {
			break
		}
	}
	if err := d.finish(); err != nil {
		return info, err
	}
	return info, firstMissing(outcomeFields, set, "")
}

func (d *Decoder) actual(a *Actual, info *Info) *DecodeError {
	s := &d.s
	if c := s.peek(); c != '{' {
		if c == 'n' && s.literal("null") {
			return newErr(ReasonMissingField, "actual", s.pos-4, "required field is null")
		}
		return wrongType("actual", "an object", c, s.pos)
	}
	start := s.pos
	empty, err := s.objectStart()
	if err != nil {
		return err.at("actual")
	}
	var set fieldSet
	for !empty {
		k, err := s.objectKey()
		if err != nil {
			return err.at("actual")
		}
		switch string(k) {
		case "label":
			if err := d.seen(&set, 0, "actual.label"); err != nil {
				return err
			}
			b, isNull, err := d.readStr("actual.label")
			if err != nil {
				return err
			}
			if !isNull {
				a.Label, a.HasLabel = d.str(b), true
			}
		case "value":
			if err := d.seen(&set, 1, "actual.value"); err != nil {
				return err
			}
			f, isNull, err := d.readNum("actual.value")
			if err != nil {
				return err
			}
			a.Value, a.HasValue = f, !isNull
		default:
			if err := d.unknownKey("actual", k, info); err != nil {
				return err
			}
			if err := s.skipValue(1); err != nil {
				return err
			}
		}
		more, err := s.objectNext()
		if err != nil {
			return err.at("actual")
		}
		empty = !more
	}
	if !a.HasLabel && !a.HasValue {
		return newErr(ReasonInvalidField, "actual", start, "must have a label or a value")
	}
	return nil
}

// DecodeBusinessMetric validates data as driftwatch.business-metric.v1 and
// decodes it into ev. ev is overwritten; its Segment map is reused. The
// error is nil or a *DecodeError.
func (d *Decoder) DecodeBusinessMetric(data []byte, ev *BusinessMetric) (Info, error) {
	seg := ev.Segment
	clear(seg)
	*ev = BusinessMetric{Segment: seg}
	info, err := d.decodeBusinessMetric(data, ev)
	if len(ev.Segment) == 0 {
		ev.Segment = nil
	}
	return info, asError(err)
}

func (d *Decoder) decodeBusinessMetric(data []byte, ev *BusinessMetric) (Info, *DecodeError) {
	var info Info
	var set fieldSet
	if err := d.begin(data); err != nil {
		if err == errEmptyObject {
			return info, firstMissing(businessMetricFields, 0, "")
		}
		return info, err
	}
	s := &d.s
	for {
		k, err := s.objectKey()
		if err != nil {
			return info, err
		}
		switch string(k) {
		case "event_id":
			if err := d.seen(&set, 0, "event_id"); err != nil {
				return info, err
			}
			b, err := d.requiredStr("event_id", MaxIDBytes)
			if err != nil {
				return info, err
			}
			ev.EventID = string(b)
		case "metric":
			if err := d.seen(&set, 1, "metric"); err != nil {
				return info, err
			}
			b, _, err := d.identifier("metric", ReasonInvalidField, false)
			if err != nil {
				return info, err
			}
			ev.Metric = d.str(b)
		case "value":
			if err := d.seen(&set, 2, "value"); err != nil {
				return info, err
			}
			off := s.pos
			f, isNull, err := d.readNum("value")
			if err != nil {
				return info, err
			}
			if isNull {
				return info, newErr(ReasonMissingField, "value", off, "required field is null")
			}
			ev.Value = f
		case "timestamp":
			if err := d.seen(&set, 3, "timestamp"); err != nil {
				return info, err
			}
			t, err := d.timestamp("timestamp")
			if err != nil {
				return info, err
			}
			ev.Timestamp = t
		case "model_id":
			if err := d.seen(&set, 4, "model_id"); err != nil {
				return info, err
			}
			b, isNull, err := d.identifier("model_id", ReasonInvalidModelID, true)
			if err != nil {
				return info, err
			}
			if !isNull {
				ev.ModelID = d.str(b)
			}
		case "segment":
			if err := d.seen(&set, 5, "segment"); err != nil {
				return info, err
			}
			if err := d.stringMap("segment", &ev.Segment); err != nil {
				return info, err
			}
		default:
			if err := d.unknownKey("", k, &info); err != nil {
				return info, err
			}
			if err := s.skipValue(0); err != nil {
				return info, err
			}
		}
		more, err := s.objectNext()
		if err != nil {
			return info, err
		}
		if !more {
			break
		}
	}
	if err := d.finish(); err != nil {
		return info, err
	}
	return info, firstMissing(businessMetricFields, set, "")
}

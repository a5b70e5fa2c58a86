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
	err := d.object(data, outcomeFields, &info, func(i int) *DecodeError {
		switch i {
		case 0: // event_id
			return d.idInto("event_id", &ev.EventID)
		case 1: // model_id
			return d.modelIDInto(&ev.ModelID)
		case 2: // prediction_id
			return d.idInto("prediction_id", &ev.PredictionID)
		case 3: // timestamp
			return d.timestampInto("timestamp", &ev.Timestamp)
		case 4: // actual
			return d.actual(&ev.Actual, &info)
		}
		return nil
	})
	return info, err
}

func (d *Decoder) actual(a *Actual, info *Info) *DecodeError {
	start, err := d.child("actual", actualFields, info, func(i int) *DecodeError {
		switch i {
		case 0: // label
			return d.optionalStr("actual.label", &a.Label, &a.HasLabel)
		case 1: // value
			return d.optionalNum("actual.value", &a.Value, &a.HasValue)
		}
		return nil
	})
	if err != nil {
		return err
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
	err := d.object(data, businessMetricFields, &info, func(i int) *DecodeError {
		switch i {
		case 0: // event_id
			return d.idInto("event_id", &ev.EventID)
		case 1: // metric
			b, _, err := d.identifier("metric", ReasonInvalidField, false)
			if err != nil {
				return err
			}
			ev.Metric = d.str(b)
		case 2: // value
			off := d.s.pos
			f, isNull, err := d.readNum("value")
			if err != nil {
				return err
			}
			if isNull {
				return newErr(ReasonMissingField, "value", off, "required field is null")
			}
			ev.Value = f
		case 3: // timestamp
			return d.timestampInto("timestamp", &ev.Timestamp)
		case 4: // model_id
			b, isNull, err := d.identifier("model_id", ReasonInvalidModelID, true)
			if err != nil {
				return err
			}
			if !isNull {
				ev.ModelID = d.str(b)
			}
		case 5: // segment
			return d.stringMap("segment", &ev.Segment)
		}
		return nil
	})
	return info, err
}

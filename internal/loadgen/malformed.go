package loadgen

import (
	"bytes"
	"strconv"
	"strings"
	"time"

	"github.com/driftwatch/driftwatch/schemas"
)

// member is one object member with its raw JSON value. A nil value with a
// non-nil sub renders the sub-object.
type member struct {
	k   string
	v   []byte
	sub *[]member
}

type doc struct {
	top, feats, pred, seg []member
}

func appendMembers(b []byte, ms []member) []byte {
	b = append(b, '{')
	for i, m := range ms {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, m.k)
		b = append(b, ':')
		if m.sub != nil {
			b = appendMembers(b, *m.sub)
		} else {
			b = append(b, m.v...)
		}
	}
	return append(b, '}')
}

func (d *doc) render() []byte { return appendMembers(nil, d.top) }

func (d *doc) find(ms []member, k string) int {
	for i, m := range ms {
		if m.k == k {
			return i
		}
	}
	return -1
}

func (d *doc) set(k string, v []byte) { d.top[d.find(d.top, k)].v = v }

func quoted(s string) []byte { return strconv.AppendQuote(nil, s) }

// malformedDoc turns the draw into an editable document. Rendered
// unchanged it is a valid inference.
func (g *Generator) malformedDoc(dr *draw, id string, t time.Time) *doc {
	d := &doc{}
	for i, x := range dr.num {
		v := []byte("null")
		if !dr.numNull[i] {
			v = strconv.AppendFloat(nil, x, 'g', -1, 64)
		}
		d.feats = append(d.feats, member{k: "f" + strconv.Itoa(i), v: v})
	}
	for j, c := range dr.cat {
		v := []byte("null")
		if !dr.catNull[j] {
			v = quoted(c)
		}
		d.feats = append(d.feats, member{k: "c" + strconv.Itoa(j), v: v})
	}
	if g.cfg.Task == Binary {
		d.pred = []member{{k: "label", v: quoted(string(dr.label))}, {k: "score", v: strconv.AppendFloat(nil, dr.score, 'g', -1, 64)}}
	} else {
		d.pred = []member{{k: "value", v: strconv.AppendFloat(nil, dr.value, 'g', -1, 64)}}
	}
	d.seg = []member{{k: "region", v: quoted(SegmentValues[dr.region])}}
	d.top = []member{
		{k: "event_id", v: quoted(id)},
		{k: "model_id", v: quoted(dr.m.id)},
		{k: "model_version", v: quoted("1")},
		{k: "prediction_id", v: quoted(strings.Replace(id, "-m", "-q", 1))},
		{k: "timestamp", v: appendTime(nil, t)},
		{k: "features", sub: &d.feats},
		{k: "prediction", sub: &d.pred},
		{k: "segment", sub: &d.seg},
		{k: "latency_ms", v: strconv.AppendFloat(nil, dr.latency, 'f', -1, 64)},
	}
	return d
}

// defectsByReason lists the ways each reason is produced. A malformed event
// picks a reason uniformly, then one of its defects (or, with
// Config.MalformedInTurn, the next defect of Defects).
var defectsByReason = []struct {
	reason  schemas.Reason
	defects []string
}{
	{schemas.ReasonInvalidJSON, []string{"truncated", "missing_comma", "trailing_garbage", "single_quotes"}},
	{schemas.ReasonInvalidUTF8, []string{"invalid_utf8"}},
	{schemas.ReasonTooLarge, []string{"oversized"}},
	{schemas.ReasonTooManyFeatures, []string{"too_many_features"}},
	{schemas.ReasonUnsupportedSchema, []string{"schema_version_v2", "schema_of_other_topic"}},
	{schemas.ReasonMissingField, []string{"missing_field", "null_required_field"}},
	{schemas.ReasonInvalidField, []string{"not_an_object", "wrong_type_model_version", "wrong_type_event_id", "wrong_type_prediction", "wrong_type_score", "wrong_type_latency", "wrong_type_segment", "negative_latency", "empty_prediction", "empty_event_id"}},
	{schemas.ReasonDuplicateKey, []string{"duplicate_feature", "duplicate_event_id"}},
	{schemas.ReasonInvalidModelID, []string{"bad_model_id"}},
	{schemas.ReasonInvalidTimestamp, []string{"unparseable_timestamp", "boolean_timestamp"}},
	{schemas.ReasonTimestampOutOfRange, []string{"epoch_seconds", "far_future_timestamp", "timestamp_before_2000"}},
	{schemas.ReasonInvalidFeature, []string{"array_feature", "object_feature", "empty_feature_name"}},
	{schemas.ReasonNonFiniteNumber, []string{"nan_feature", "infinity_feature", "negative_infinity_feature", "huge_number"}},
}

// Defect is one way a malformed event is broken, with the reason a
// decoder rejects it with.
type Defect struct {
	Name   string // as in Event.Defect: "truncated", "nan_feature", …
	Reason schemas.Reason
}

// Defects returns every defect a malformed event can have, grouped by
// reason in the order of schemas.Reasons.
func Defects() []Defect {
	var out []Defect
	for _, rd := range defectsByReason {
		for _, d := range rd.defects {
			out = append(out, Defect{Name: d, Reason: rd.reason})
		}
	}
	return out
}

var requiredInference = []string{"event_id", "model_id", "model_version", "prediction_id", "timestamp", "features", "prediction"}

var badModelIDs = []string{"model 0", "", "model/0", "modèle-0", strings.Repeat("m", schemas.MaxModelIDLen+1), "model-0!"}

var badTimestamps = []string{"yesterday", "2024-13-01T00:00:00Z", "2024-01-01 00:00:00", "17/03/2024 10:00", "2024-01-01T00:00:00", ""}

// malformed builds a broken inference at tick time t.
func (g *Generator) malformed(t time.Time) Event {
	rng := g.rng
	dr := g.drawInference()
	n := g.malN
	g.malN++
	id := g.seedTag + "-m" + strconv.FormatInt(n, 10)
	d := g.malformedDoc(dr, id, t)
	var defect string
	var reason schemas.Reason
	if g.cfg.MalformedInTurn {
		all := Defects()
		defect = all[n%int64(len(all))].Name
		reason = all[n%int64(len(all))].Reason
	} else {
		pick := defectsByReason[rng.IntN(len(defectsByReason))]
		defect, reason = pick.defects[rng.IntN(len(pick.defects))], pick.reason
	}
	key := dr.m.key
	headers := g.headers[schemas.KindInference]
	eventID := id
	var value []byte

	// numericFeature returns the index in d.feats of a random numeric
	// feature, or -1 when there is none.
	numericFeature := func() int {
		if g.cfg.NumericFeatures == 0 {
			return -1
		}
		return rng.IntN(g.cfg.NumericFeatures)
	}
	nonFinite := func(tok string) {
		if i := numericFeature(); i >= 0 {
			d.feats[i].v = []byte(tok)
		} else {
			d.set("latency_ms", []byte(tok))
		}
	}

	switch defect {
	case "truncated":
		full := d.render()
		value = full[:1+rng.IntN(len(full)-2)]
		// The schemas decoder reports a features member cut right after
		// its colon as invalid_feature ("got end of input"), not as
		// invalid_json; cut one byte earlier so the label is unambiguous.
		if value[len(value)-1] == ':' {
			value = value[:len(value)-1]
		}
	case "missing_comma":
		full := d.render()
		i := bytes.IndexByte(full, ',')
		value = append(full[:i:i], full[i+1:]...)
	case "trailing_garbage":
		value = append(d.render(), "}x"...)
	case "single_quotes":
		d.set("model_version", []byte("'1'"))
	case "invalid_utf8":
		bad := []byte{'"', 'v', 0xff, 0xfe, '"'}
		if c := g.cfg.CategoricalFeatures; c > 0 {
			d.feats[g.cfg.NumericFeatures+rng.IntN(c)].v = bad
		} else {
			d.seg[0].v = bad
		}
	case "oversized":
		d.top = append(d.top, member{k: "padding", v: quoted(strings.Repeat("x", g.cfg.MaxBytes))})
	case "too_many_features":
		for i := len(d.feats); i <= g.cfg.MaxFeatures; i++ {
			d.feats = append(d.feats, member{k: "x" + strconv.Itoa(i), v: []byte("0")})
		}
	case "schema_version_v2":
		headers = []Header{{Key: schemas.SchemaHeader, Value: []byte("driftwatch.inference.v2")}}
	case "schema_of_other_topic":
		headers = g.headers[schemas.KindOutcome]
	case "missing_field":
		k := requiredInference[rng.IntN(len(requiredInference))]
		i := d.find(d.top, k)
		d.top = append(d.top[:i], d.top[i+1:]...)
		if k == "event_id" {
			eventID = ""
		}
	case "null_required_field":
		k := requiredInference[rng.IntN(len(requiredInference))]
		i := d.find(d.top, k)
		d.top[i] = member{k: k, v: []byte("null")}
		if k == "event_id" {
			eventID = ""
		}
	case "not_an_object":
		value = []byte(`[` + strconv.Quote(id) + `,1,2]`)
		eventID = ""
	case "wrong_type_model_version":
		d.set("model_version", []byte("1"))
	case "wrong_type_event_id":
		d.set("event_id", strconv.AppendInt(nil, n, 10))
		eventID = ""
	case "wrong_type_prediction":
		d.top[d.find(d.top, "prediction")] = member{k: "prediction", v: quoted("yes")}
	case "wrong_type_score":
		d.pred[len(d.pred)-1].v = quoted(string(d.pred[len(d.pred)-1].v))
	case "wrong_type_latency":
		d.set("latency_ms", quoted("fast"))
	case "wrong_type_segment":
		d.seg[0].v = []byte("42")
	case "negative_latency":
		d.set("latency_ms", []byte("-3.5"))
	case "empty_prediction":
		d.pred = d.pred[:0]
	case "empty_event_id":
		d.set("event_id", []byte(`""`))
		eventID = ""
	case "duplicate_feature":
		d.feats = append(d.feats, d.feats[rng.IntN(len(d.feats))])
	case "duplicate_event_id":
		d.top = append(d.top, d.top[0])
	case "bad_model_id":
		bad := badModelIDs[rng.IntN(len(badModelIDs))]
		d.set("model_id", quoted(bad))
		key = []byte(bad)
	case "unparseable_timestamp":
		d.set("timestamp", quoted(badTimestamps[rng.IntN(len(badTimestamps))]))
	case "boolean_timestamp":
		d.set("timestamp", []byte("true"))
	case "epoch_seconds":
		d.set("timestamp", strconv.AppendInt(nil, t.Unix(), 10))
	case "far_future_timestamp":
		d.set("timestamp", quoted("9999-12-31T23:59:59Z"))
	case "timestamp_before_2000":
		d.set("timestamp", quoted("1999-12-31T23:59:59Z"))
	case "array_feature":
		d.feats[rng.IntN(len(d.feats))].v = []byte("[1,2]")
	case "object_feature":
		d.feats[rng.IntN(len(d.feats))].v = []byte(`{"a":1}`)
	case "empty_feature_name":
		d.feats = append(d.feats, member{k: "", v: []byte("1")})
	case "nan_feature":
		nonFinite("NaN")
	case "infinity_feature":
		nonFinite("Infinity")
	case "negative_infinity_feature":
		nonFinite("-Infinity")
	case "huge_number":
		nonFinite("1e999")
	default:
		panic("BUG: loadgen: unknown defect " + defect)
	}
	if value == nil {
		value = d.render()
	}
	return Event{
		Kind: schemas.KindInference, Topic: schemas.KindInference.Topic(), Key: key, Value: value,
		Headers: headers, EventID: eventID, Time: t, Malformed: reason, Defect: defect,
	}
}

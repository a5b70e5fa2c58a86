package loadgen

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/driftwatch/driftwatch/schemas"
)

// Task is what the simulated models predict.
type Task string

// The tasks a Generator simulates.
const (
	// Binary classification: predictions carry label "0"/"1" and score,
	// outcomes a label.
	Binary Task = "binary"
	// Regression: predictions and outcomes carry a value.
	Regression Task = "regression"
)

// DelayDist is the distribution of the delay between an inference and its
// outcome.
type DelayDist string

// Label delay distributions.
const (
	// Exponential delays with mean Outcomes.Delay.
	Exponential DelayDist = "exponential"
	// Fixed delays of exactly Outcomes.Delay.
	Fixed DelayDist = "fixed"
)

// Outcomes says which inferences get ground truth, and when.
type Outcomes struct {
	// Share of valid inferences that get an outcome, in [0, 1].
	Share float64
	// Delay is the mean (Exponential) or exact (Fixed) label delay.
	Delay time.Duration
	// Dist is the delay distribution; empty means Exponential.
	Dist DelayDist
}

// BusinessMetrics configures the per-model KPI (see the package doc).
type BusinessMetrics struct {
	Enabled bool
	// Metric is the KPI name, for example "conversion_rate".
	Metric string
	// Bucket is the event-time length of one KPI observation; at least
	// Config.Step.
	Bucket time.Duration
	// Lag is how many buckets the KPI trails model quality.
	Lag int
	// Base, Slope and Noise shape the value: Base + Slope·quality +
	// Noise·N(0,1).
	Base, Slope, Noise float64
}

// ChangeKind names one kind of scheduled drift.
type ChangeKind string

// The drift changes a schedule can hold. Value means, per kind:
const (
	// MeanShift adds Value standard deviations to a numeric feature's mean
	// (cumulative over changes).
	MeanShift ChangeKind = "mean_shift"
	// VarianceChange multiplies a numeric feature's standard deviation by
	// Value (> 0; cumulative).
	VarianceChange ChangeKind = "variance"
	// NewCategories makes a categorical feature take a value the model has
	// never seen (new_0, new_1, new_2) with probability Value.
	NewCategories ChangeKind = "new_categories"
	// Missingness makes a feature null with probability Value.
	Missingness ChangeKind = "missing"
	// ConceptDrift moves the true model's weights a fraction Value (0 to 1;
	// 1 = a weight vector orthogonal to the original) away from the
	// production model's, without changing any feature distribution.
	ConceptDrift ChangeKind = "concept_drift"
	// SegmentShift adds Value standard deviations to a numeric feature's
	// mean inside one slice (Segment, for example region=eu) only
	// (cumulative over changes).
	SegmentShift ChangeKind = "segment_shift"
	// SegmentMix makes one slice (Segment) take a share Value of the
	// traffic (0 to 1); the other values of its key keep their relative
	// shares and split the rest.
	SegmentMix ChangeKind = "segment_mix"
	// SegmentConcept changes the label relationship inside one slice
	// (Segment) only: a binary truth is flipped with probability Value
	// (0 to 1), a regression truth moves by 10·Value; the features and
	// the predictions do not change.
	SegmentConcept ChangeKind = "segment_concept"
	// Correlation sets the correlation of two numeric features (Feature and
	// Other) to Value (−1 to 1; replacing an earlier one of the pair) while
	// each keeps its distribution: Other's standardised value becomes
	// Value·z + √(1−Value²)·e, z Feature's and e its own standard normal.
	// correlation:f1:f2:0.8 and later correlation:f1:f2:-0.8 flip the
	// sign: drift no single feature shows.
	Correlation ChangeKind = "correlation"
	// Association ties a categorical feature (Feature) to a numeric one
	// (Other) with strength Value (−1 to 1; replacing an earlier one of
	// the feature): with probability |Value| the uniform that picks the
	// category is Φ(e) (Value > 0) or Φ(−e) (Value < 0), e the numeric
	// feature's own standard normal draw, so its first categories go
	// with its low values (or high); otherwise its own. Both marginals
	// stay: association:c0:f1:1 and later association:c0:f1:-1 swap
	// which categories get the high values.
	Association ChangeKind = "association"
)

var changeKinds = []ChangeKind{MeanShift, VarianceChange, NewCategories, Missingness, ConceptDrift, SegmentShift, SegmentMix, SegmentConcept, Correlation, Association}

// SegmentKey is the one segment key the generated inferences carry, and
// SegmentValues its values, drawn uniformly until a SegmentMix change.
const SegmentKey = "region"

// SegmentValues are SegmentKey's values.
var SegmentValues = []string{"us", "eu", "apac"}

// Change is one entry of the drift schedule. It applies from tick AtEvent
// (the AtEvent-th inference tick, from 0), or from the first tick at or after
// AtTime when AtTime is set, and stays in force; later changes of the same
// kind and feature add up (MeanShift, VarianceChange) or replace it.
type Change struct {
	Kind ChangeKind
	// Model is the model id the change applies to; empty means every model.
	Model string
	// Feature is the feature name (f0…, c0…); empty for ConceptDrift.
	Feature string
	// Other is Correlation's second feature; empty for every other kind.
	Other string
	// Segment is the slice KEY=VALUE of SegmentShift and SegmentMix
	// (region=eu); empty for every other kind.
	Segment string
	Value   float64
	AtEvent int64
	AtTime  time.Time
}

// String renders c in the syntax ParseChange reads.
func (c Change) String() string {
	var b strings.Builder
	if c.Model != "" {
		b.WriteString(c.Model + "/")
	}
	b.WriteString(string(c.Kind))
	if c.Segment != "" {
		b.WriteString(":" + c.Segment)
	}
	if c.Feature != "" {
		b.WriteString(":" + c.Feature)
	}
	if c.Other != "" {
		b.WriteString(":" + c.Other)
	}
	b.WriteString(":" + strconv.FormatFloat(c.Value, 'g', -1, 64))
	if !c.AtTime.IsZero() {
		b.WriteString("@" + c.AtTime.UTC().Format(time.RFC3339Nano))
	} else {
		b.WriteString("@" + strconv.FormatInt(c.AtEvent, 10))
	}
	return b.String()
}

// ChangeSyntax documents what ParseChange reads, for help texts.
const ChangeSyntax = `[MODEL/]KIND[:FEATURE][:VALUE][@WHEN], KIND one of
  mean_shift:FEATURE:DELTA        shift a numeric feature's mean by DELTA standard deviations
  variance:FEATURE:FACTOR         multiply a numeric feature's standard deviation by FACTOR
  new_categories:FEATURE:SHARE    unseen categories (new_0..new_2) in SHARE of a categorical feature's values
  missing:FEATURE:SHARE           null values in SHARE of a feature's values
  concept_drift[:STRENGTH]        the true label follows other weights (STRENGTH 0..1, default 1)
  segment_shift:KEY=VALUE:FEATURE:DELTA  shift a numeric feature's mean by DELTA standard deviations inside one slice (region=eu)
  segment_mix:KEY=VALUE:SHARE     one slice takes SHARE of the traffic, the others keep their relative shares
  segment_concept:KEY=VALUE:FLIP  inside one slice the true label flips with probability FLIP (regression: truth + 10·FLIP)
  correlation:FEATURE:OTHER:RHO   two numeric features correlate with RHO (-1..1), each keeping its distribution
  association:CATEGORICAL:NUMERIC:STRENGTH  a categorical feature's first categories go with the numeric's low values (STRENGTH -1..1, negative: high), each keeping its distribution
WHEN is an inference index (50000), an offset from -start (+10m) or an RFC 3339 time (default 0);
MODEL limits it to one model (model-1/…). Example: mean_shift:f0:2.0@50000,concept_drift@100000`

// ParseChange parses one schedule entry (see ChangeSyntax). start is the
// stream's Start, which "+duration" offsets are relative to.
func ParseChange(s string, start time.Time) (Change, error) {
	var c Change
	spec := strings.TrimSpace(s)
	if spec == "" {
		return c, errors.New("empty change")
	}
	if at := strings.LastIndexByte(spec, '@'); at >= 0 {
		when := spec[at+1:]
		spec = spec[:at]
		switch {
		case strings.HasPrefix(when, "+"):
			d, err := time.ParseDuration(when[1:])
			if err != nil || d < 0 {
				return c, fmt.Errorf("change %q: %q is not a non-negative offset such as +10m", s, when)
			}
			c.AtTime = start.Add(d)
		case strings.Contains(when, "T"):
			t, err := time.Parse(time.RFC3339Nano, when)
			if err != nil {
				return c, fmt.Errorf("change %q: %q is not an RFC 3339 time", s, when)
			}
			c.AtTime = t
		default:
			n, err := strconv.ParseInt(when, 10, 64)
			if err != nil || n < 0 {
				return c, fmt.Errorf("change %q: %q is not an inference index, +offset or RFC 3339 time", s, when)
			}
			c.AtEvent = n
		}
	}
	if slash := strings.IndexByte(spec, '/'); slash >= 0 {
		c.Model, spec = spec[:slash], spec[slash+1:]
		if c.Model == "" {
			return c, fmt.Errorf("change %q: empty model before '/'", s)
		}
	}
	parts := strings.Split(spec, ":")
	c.Kind = ChangeKind(parts[0])
	args := parts[1:]
	switch c.Kind {
	case ConceptDrift:
		c.Value = 1
		if len(args) > 1 {
			return c, fmt.Errorf("change %q: concept_drift takes at most a strength", s)
		}
		if len(args) == 1 {
			v, err := strconv.ParseFloat(args[0], 64)
			if err != nil {
				return c, fmt.Errorf("change %q: strength %q is not a number", s, args[0])
			}
			c.Value = v
		}
	case MeanShift, VarianceChange, NewCategories, Missingness:
		if len(args) != 2 || args[0] == "" {
			return c, fmt.Errorf("change %q: %s needs FEATURE:VALUE", s, c.Kind)
		}
		c.Feature = args[0]
		v, err := strconv.ParseFloat(args[1], 64)
		if err != nil {
			return c, fmt.Errorf("change %q: value %q is not a number", s, args[1])
		}
		c.Value = v
	case Correlation, Association:
		if len(args) != 3 || args[0] == "" || args[1] == "" {
			if c.Kind == Association {
				return c, fmt.Errorf("change %q: association needs CATEGORICAL:NUMERIC:STRENGTH", s)
			}
			return c, fmt.Errorf("change %q: correlation needs FEATURE:OTHER:RHO", s)
		}
		c.Feature, c.Other = args[0], args[1]
		v, err := strconv.ParseFloat(args[2], 64)
		if err != nil {
			return c, fmt.Errorf("change %q: %s %q is not a number", s, c.Kind, args[2])
		}
		c.Value = v
	case SegmentShift, SegmentMix, SegmentConcept:
		want, need := "KEY=VALUE:FEATURE:DELTA", 3
		if c.Kind != SegmentShift {
			want, need = "KEY=VALUE:SHARE", 2
		}
		if len(args) != need || !strings.Contains(args[0], "=") || (need == 3 && args[1] == "") {
			return c, fmt.Errorf("change %q: %s needs %s", s, c.Kind, want)
		}
		c.Segment = args[0]
		if need == 3 {
			c.Feature = args[1]
		}
		v, err := strconv.ParseFloat(args[need-1], 64)
		if err != nil {
			return c, fmt.Errorf("change %q: value %q is not a number", s, args[need-1])
		}
		c.Value = v
	default:
		return c, fmt.Errorf("change %q: unknown kind %q (want one of %v)", s, parts[0], changeKinds)
	}
	return c, nil
}

// Config describes a stream. Start from DefaultConfig.
type Config struct {
	// Seed makes the stream reproducible; it is also part of every event
	// id, so streams of different seeds never share ids.
	Seed uint64
	// Models is the number of models, with ids model-0, model-1, …
	Models int
	// NumericFeatures (f0…) and CategoricalFeatures (c0…) per model.
	NumericFeatures     int
	CategoricalFeatures int
	Task                Task
	// RegressionTolerance is the absolute error within which a regression
	// prediction counts as correct for the business KPI; default 2.
	RegressionTolerance float64

	// Start is the event time of the first inference; Step the event time
	// between two inference ticks. Defaults 2024-01-01T00:00:00Z and 10ms.
	Start time.Time
	Step  time.Duration

	// DuplicateShare and MalformedShare are the shares of inference ticks
	// that re-emit an earlier inference or carry a malformed one (see the
	// package doc). Together at most 1.
	DuplicateShare float64
	MalformedShare float64
	// MalformedInTurn makes malformed events take the defects (Defects)
	// in turn, so any len(Defects()) consecutive malformed events hold
	// each once; the seed still draws everything else about them. False
	// (the default) draws a reason uniformly, then one of its defects: a
	// test that must see every defect sets it.
	MalformedInTurn bool
	// MaxBytes and MaxFeatures are the decoder limits malformed events
	// break (too_large, too_many_features); defaults are the schemas
	// defaults. Valid events stay well within them.
	MaxBytes    int
	MaxFeatures int

	Outcomes        Outcomes
	BusinessMetrics BusinessMetrics
	Changes         []Change

	// RecordIDs keeps the event id of every valid inference, for
	// Generator.InferenceIDs.
	RecordIDs bool
}

// DefaultStart is Config.Start's default.
var DefaultStart = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// DefaultConfig returns a binary task with one model, 20 numeric and 5
// categorical features, every inference labelled after an exponential delay
// of mean 1m, and a conversion_rate KPI per model and minute that trails
// accuracy by 2 buckets.
func DefaultConfig() Config {
	return Config{
		Seed:                1,
		Models:              1,
		NumericFeatures:     20,
		CategoricalFeatures: 5,
		Task:                Binary,
		RegressionTolerance: 2,
		Start:               DefaultStart,
		Step:                10 * time.Millisecond,
		MaxBytes:            schemas.DefaultMaxBytes,
		MaxFeatures:         schemas.DefaultMaxFeatures,
		Outcomes:            Outcomes{Share: 1, Delay: time.Minute, Dist: Exponential},
		BusinessMetrics: BusinessMetrics{
			Enabled: true, Metric: "conversion_rate", Bucket: time.Minute, Lag: 2,
			Base: 0.02, Slope: 0.05, Noise: 0.0005,
		},
	}
}

// withDefaults fills zero values that have no meaning of their own.
func (c Config) withDefaults() Config {
	if c.Task == "" {
		c.Task = Binary
	}
	if c.RegressionTolerance == 0 {
		c.RegressionTolerance = 2
	}
	if c.Start.IsZero() {
		c.Start = DefaultStart
	}
	if c.Step == 0 {
		c.Step = 10 * time.Millisecond
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = schemas.DefaultMaxBytes
	}
	if c.MaxFeatures == 0 {
		c.MaxFeatures = schemas.DefaultMaxFeatures
	}
	if c.Outcomes.Dist == "" {
		c.Outcomes.Dist = Exponential
	}
	if c.BusinessMetrics.Metric == "" {
		c.BusinessMetrics.Metric = "conversion_rate"
	}
	c.Start = c.Start.UTC()
	return c
}

// share01 reports whether x is a share.
func share01(x float64) bool { return x >= 0 && x <= 1 }

// Validate reports every problem with c at once, each naming its field,
// after filling in the defaults New fills in.
func (c Config) Validate() error { return c.withDefaults().validate() }

// validate is Validate for a c that has its defaults.
func (c Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Models < 1 || c.Models > 100000 {
		bad("models: must be from 1 to 100000, got %d", c.Models)
	}
	if c.NumericFeatures < 0 || c.CategoricalFeatures < 0 || c.NumericFeatures+c.CategoricalFeatures < 1 {
		bad("features: need at least one numeric or categorical feature and no negative counts, got %d numeric and %d categorical", c.NumericFeatures, c.CategoricalFeatures)
	}
	nf := c.NumericFeatures + c.CategoricalFeatures
	if c.MaxFeatures < 1 || nf > c.MaxFeatures {
		bad("max_features: %d is fewer than the %d features of a valid event", c.MaxFeatures, nf)
	}
	// Valid events are about 32 bytes per feature plus 400; too_many_features
	// events (MaxFeatures+1 features) must not be too_large as well.
	if need := (nf+1)*40 + 1024; c.MaxBytes < need {
		bad("max_bytes: %d is too small for valid events of %d features (need at least %d)", c.MaxBytes, nf, need)
	}
	if c.MalformedShare > 0 {
		if need := (c.MaxFeatures+1)*24 + 2048; c.MaxBytes < need {
			bad("max_bytes: %d is too small for too_many_features events of %d features (need at least %d, or lower max_features)", c.MaxBytes, c.MaxFeatures+1, need)
		}
	}
	if c.Task != Binary && c.Task != Regression {
		bad("task: %q is neither %s nor %s", c.Task, Binary, Regression)
	}
	if !(c.RegressionTolerance > 0) {
		bad("regression_tolerance: must be positive, got %g", c.RegressionTolerance)
	}
	if c.Start.Before(schemas.DefaultMinTime) || c.Start.Year() > 9000 {
		bad("start: %s is outside 2000-01-01 .. 9000-01-01 (decoders reject it)", c.Start.Format(time.RFC3339))
	}
	if c.Step <= 0 {
		bad("step: must be positive, got %s", c.Step)
	}
	if !share01(c.DuplicateShare) || !share01(c.MalformedShare) || c.DuplicateShare+c.MalformedShare > 1 {
		bad("duplicate_share, malformed_share: must be in [0, 1] and add up to at most 1, got %g and %g", c.DuplicateShare, c.MalformedShare)
	}
	if !share01(c.Outcomes.Share) {
		bad("outcomes.share: must be in [0, 1], got %g", c.Outcomes.Share)
	}
	if c.Outcomes.Delay < 0 {
		bad("outcomes.delay: must not be negative, got %s", c.Outcomes.Delay)
	}
	if c.Outcomes.Dist != Exponential && c.Outcomes.Dist != Fixed {
		bad("outcomes.dist: %q is neither %s nor %s", c.Outcomes.Dist, Exponential, Fixed)
	}
	if bm := c.BusinessMetrics; bm.Enabled {
		if bm.Bucket < c.Step {
			bad("business_metrics.bucket: %s is shorter than the step %s", bm.Bucket, c.Step)
		}
		if bm.Lag < 0 || bm.Lag > 1000 {
			bad("business_metrics.lag: must be from 0 to 1000 buckets, got %d", bm.Lag)
		}
		if len(bm.Metric) > schemas.MaxModelIDLen || !identOK(bm.Metric) {
			bad("business_metrics.metric: %q must be 1-128 letters, digits or ._:-", bm.Metric)
		}
		for _, x := range []float64{bm.Base, bm.Slope, bm.Noise} {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				bad("business_metrics: base, slope and noise must be finite")
				break
			}
		}
		if bm.Noise < 0 {
			bad("business_metrics.noise: must not be negative, got %g", bm.Noise)
		}
	}
	for i, ch := range c.Changes {
		if err := c.checkChange(ch); err != nil {
			bad("changes[%d] %s: %v", i, ch, err)
		}
	}
	return errors.Join(errs...)
}

func (c Config) checkChange(ch Change) error {
	if ch.Model != "" {
		n, ok := modelIndex(ch.Model)
		if !ok || n >= c.Models {
			return fmt.Errorf("model %q is not one of model-0 .. model-%d", ch.Model, c.Models-1)
		}
	}
	if ch.AtEvent < 0 {
		return errors.New("negative inference index")
	}
	if !ch.AtTime.IsZero() && ch.AtTime.Before(c.Start) {
		return fmt.Errorf("time %s is before the start %s", ch.AtTime.Format(time.RFC3339), c.Start.Format(time.RFC3339))
	}
	if math.IsNaN(ch.Value) || math.IsInf(ch.Value, 0) {
		return errors.New("value must be finite")
	}
	num, cat := c.featureKind(ch.Feature)
	if (ch.Kind == SegmentShift || ch.Kind == SegmentMix || ch.Kind == SegmentConcept) && segmentIndex(ch.Segment) < 0 {
		return fmt.Errorf("segment %q is not one of %s=%s", ch.Segment, SegmentKey, strings.Join(SegmentValues, "|"))
	}
	switch ch.Kind {
	case Association:
		other, _ := c.featureKind(ch.Other)
		if !cat || !other {
			return fmt.Errorf("%q and %q are not a categorical feature (c0 .. c%d) and a numeric one (f0 .. f%d)", ch.Feature, ch.Other, c.CategoricalFeatures-1, c.NumericFeatures-1)
		}
		if !(ch.Value >= -1 && ch.Value <= 1) {
			return fmt.Errorf("association strength must be in [-1, 1], got %g", ch.Value)
		}
	case Correlation:
		other, _ := c.featureKind(ch.Other)
		if !num || !other || ch.Feature == ch.Other {
			return fmt.Errorf("%q and %q are not two numeric features (f0 .. f%d)", ch.Feature, ch.Other, c.NumericFeatures-1)
		}
		if !(ch.Value >= -1 && ch.Value <= 1) {
			return fmt.Errorf("correlation must be in [-1, 1], got %g", ch.Value)
		}
	case SegmentShift:
		if !num {
			return fmt.Errorf("%q is not a numeric feature (f0 .. f%d)", ch.Feature, c.NumericFeatures-1)
		}
	case SegmentMix, SegmentConcept:
		if !share01(ch.Value) {
			return fmt.Errorf("share must be in [0, 1], got %g", ch.Value)
		}
	case MeanShift:
		if !num {
			return fmt.Errorf("%q is not a numeric feature (f0 .. f%d)", ch.Feature, c.NumericFeatures-1)
		}
	case VarianceChange:
		if !num {
			return fmt.Errorf("%q is not a numeric feature (f0 .. f%d)", ch.Feature, c.NumericFeatures-1)
		}
		if ch.Value <= 0 {
			return fmt.Errorf("factor must be positive, got %g", ch.Value)
		}
	case NewCategories:
		if !cat {
			return fmt.Errorf("%q is not a categorical feature (c0 .. c%d)", ch.Feature, c.CategoricalFeatures-1)
		}
		if !share01(ch.Value) {
			return fmt.Errorf("share must be in [0, 1], got %g", ch.Value)
		}
	case Missingness:
		if !num && !cat {
			return fmt.Errorf("%q is not a feature", ch.Feature)
		}
		if !share01(ch.Value) {
			return fmt.Errorf("share must be in [0, 1], got %g", ch.Value)
		}
	case ConceptDrift:
		if ch.Feature != "" {
			return errors.New("concept_drift takes no feature")
		}
		if !share01(ch.Value) {
			return fmt.Errorf("strength must be in [0, 1], got %g", ch.Value)
		}
	default:
		return fmt.Errorf("unknown kind %q", ch.Kind)
	}
	return nil
}

// featureKind reports whether name is one of c's numeric or categorical
// features.
func (c Config) featureKind(name string) (numeric, categorical bool) {
	if len(name) < 2 {
		return false, false
	}
	n, err := strconv.Atoi(name[1:])
	if err != nil || n < 0 || strconv.Itoa(n) != name[1:] {
		return false, false
	}
	switch name[0] {
	case 'f':
		return n < c.NumericFeatures, false
	case 'c':
		return false, n < c.CategoricalFeatures
	}
	return false, false
}

// segmentIndex is the index in SegmentValues of the slice "KEY=VALUE", or
// -1 when it is not one the generator draws.
func segmentIndex(seg string) int {
	k, v, ok := strings.Cut(seg, "=")
	if !ok || k != SegmentKey {
		return -1
	}
	for i, x := range SegmentValues {
		if x == v {
			return i
		}
	}
	return -1
}

func modelID(i int) string { return "model-" + strconv.Itoa(i) }

func modelIndex(id string) (int, bool) {
	s, ok := strings.CutPrefix(id, "model-")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || strconv.Itoa(n) != s {
		return 0, false
	}
	return n, true
}

func identOK(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

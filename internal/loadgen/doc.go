// Package loadgen generates a seeded, reproducible stream of driftwatch
// events (inferences, their late outcomes and business KPIs) with scheduled
// drift, producer duplicates and malformed events, for tests, benchmarks
// and the demo (`driftwatch gen`).
//
// It is pure: it imports no Kafka client. A Generator returns Events
// (topic short name, key, value, schema header); the caller decides where
// they go and how fast.
//
// # The world it simulates
//
// Every model has NumericFeatures numeric features f0, f1, … (each normal
// with its own mean and standard deviation) and CategoricalFeatures
// categorical ones c0, c1, … (each with a small vocabulary v0, v1, … of
// skewed frequencies). A hidden true model decides the ground truth: for a
// binary task the true label is Bernoulli(sigmoid(k·z_true)), where z is a
// linear function of the standardised numeric features plus an effect per
// category; for a regression task the true value is 50 + 10·z_true plus
// noise. The "production model" whose predictions the inference events
// carry uses the original weights (its score is sigmoid(k·z), calibrated
// before any drift). So a mean shift moves feature and prediction
// distributions, while a concept drift moves the true weights towards a
// vector orthogonal to the original ones: accuracy falls while every feature
// distribution stays as it was.
//
// # Time and order
//
// Events carry event time, never wall-clock time, so a run is reproducible:
// inference number k (a "tick") is stamped Start + k·Step. An outcome is
// stamped at its label time (inference time plus a delay, exponential or
// fixed) and comes out of Next just before the first tick after that time,
// so the stream is in event-time order (duplicates re-emit an older event,
// and a business metric is stamped at the start of the bucket it sums up
// but is emitted when the bucket closes). The same Config, Seed included,
// yields a byte-identical stream from the same build.
//
// # Business metrics
//
// With BusinessMetrics enabled, every model gets one KPI event per bucket
// of event time: Base + Slope·q(b−Lag) + Noise·N(0,1), where q(b) is the
// production model's quality in bucket b (accuracy for a binary task, the
// share of predictions within RegressionTolerance for regression),
// measured on the valid inferences of that bucket. The KPI therefore
// follows model quality Lag buckets later.
//
// # Duplicates and malformed events
//
// DuplicateShare of the inference ticks re-emit a recent valid inference
// byte for byte (same key, same headers), and the same share of outcome
// emissions re-emit a recent outcome, as a producer retry does.
// MalformedShare of the ticks are broken inferences, each labelled with the
// schemas.Reason a decoder (schemas.NewDecoder with Limits{MaxBytes:
// Config.MaxBytes, MaxFeatures: Config.MaxFeatures} and a clock at or after
// the event time), or for a bad schema header schemas.KindForMessage, must
// give it: broken JSON, wrong types, NaN/Infinity as Python writes them,
// missing required fields, oversized events, unparseable and out-of-range
// timestamps, invalid UTF-8, too many features, bad model ids, duplicate
// keys, object- or array-valued features, and unsupported schema headers.
// Each malformed event has one of the defects Defects lists (its
// Event.Defect); MalformedInTurn takes them in turn rather than drawing
// them, so a test sees every one. Oversized events are Config.MaxBytes
// long: keep MaxBytes modest when MalformedShare is high and the rate
// matters.
package loadgen

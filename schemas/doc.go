// Package schemas holds driftwatch's event contracts, version 1: the Go
// types of the events producers send (Inference, Outcome, BusinessMetric)
// and driftwatch publishes (RetrainTrigger, ModelEvent), a validating
// decoder for producer events, the schema-header rules (KindForMessage), and
// JSON Schemas for producers in jsonschema/. Arrow schemas and record
// builders for the ClickHouse tables are in the sub-package arrowschema.
//
// It imports no Kafka, ClickHouse or Prometheus client (house style rule 4).
//
// # Schema header
//
// Kafka header "schema" names contract and version:
// driftwatch.inference.v1, driftwatch.outcome.v1,
// driftwatch.business-metric.v1, driftwatch.retrain-trigger.v1,
// driftwatch.model-event.v1. An empty header means the current version of
// the topic's kind; any other version is rejected (unsupported_schema).
//
// # Decoding
//
// Decoder is a purpose-built, single-pass JSON scanner, not encoding/json
// and not a third-party JSON library. Why: ingest decodes every event, and
// the scanner validates while it reads (one pass, no map[string]any tree,
// no reflection), splits features straight into the numeric and categorical
// maps ClickHouse wants, reuses those maps across events and interns
// repeating strings (feature names, model ids, categorical values) in a
// bounded table, so a reused Inference decodes with a handful of
// allocations. It is about 4× faster than encoding/json plus the same
// checks (BenchmarkDecodeInference), and it can do what a generic library
// cannot without a second pass: reject duplicate keys, report NaN and
// Infinity tokens by feature name, count unknown fields and give exact byte
// offsets. It adds no dependency. The grammar is RFC 8259: strings with all
// escapes (a lone UTF-16 surrogate becomes U+FFFD, as in encoding/json),
// numbers per the JSON grammar parsed with strconv.ParseFloat (integers of
// up to 15 digits exactly, without it), the four whitespace bytes. The fuzz
// tests check it against encoding/json.
//
// Decisions of the v1 contract that the decoder enforces:
//   - required fields (see the JSON Schemas) must be present and not null;
//     optional ones may be null, which means absent;
//   - model_id (and a business metric's name) match ModelIDPattern;
//     event_id and prediction_id are 1-256 bytes, model_version 1-128;
//   - timestamp is an RFC 3339 string with offset or epoch milliseconds
//     (fractions allowed), not before Limits.MinTime and at most
//     Limits.MaxFutureSkew ahead of the injected clock; stored in UTC;
//   - features values are numbers (finite), booleans (stored as 0/1 in
//     Numeric), strings (Categorical) or null (absent, listed in
//     MissingFeatures); objects and arrays are rejected by feature name;
//     names are 1-256 bytes; at most Limits.MaxFeatures entries;
//   - prediction has at least one of label, score, value, probabilities;
//     probabilities are within [0, 1]; outcome.actual has a label or value;
//     latency_ms is not negative; segment values are strings; shadow is a
//     boolean or null (Inference.Shadow, false when absent);
//   - duplicate keys are rejected in every object, because JSON readers
//     disagree on which copy wins (encoding/json and ClickHouse take the
//     last, others the first): accepting them would let the validated event
//     differ from the one another reader sees;
//   - unknown members of the event, prediction and actual objects are
//     skipped (forward compatibility) and counted in Info.UnknownFields;
//   - the whole event is at most Limits.MaxBytes; strings are valid UTF-8.
//
// Default limits: MaxFeatures 2000, MaxBytes 1 MiB, MaxFutureSkew 1h,
// MinTime 2000-01-01T00:00:00Z; unknown fields nest at most 64 levels.
//
// # Errors
//
// Every rejection is a *DecodeError: a poison event for the dead-letter
// topic, never worth a retry. Its Reason is one of a closed set (Reasons),
// safe as a metric label:
//
//	invalid_json            not one RFC 8259 JSON value, or nested too deep
//	invalid_utf8            a string is not UTF-8
//	too_large               more than MaxBytes
//	too_many_features       more than MaxFeatures features
//	unsupported_schema      unknown contract or version in the schema header
//	missing_field           a required field is absent or null
//	invalid_field           wrong type, empty, too long, or out of its domain
//	duplicate_key           an object repeats a key
//	invalid_model_id        model_id does not match ModelIDPattern
//	invalid_timestamp       timestamp neither RFC 3339 nor epoch milliseconds
//	timestamp_out_of_range  before MinTime or beyond MaxFutureSkew
//	invalid_feature         a feature is an object/array, or its name is bad
//	non_finite_number       NaN, ±Infinity or beyond float64 (1e999)
//
// Error() reads "path: message", for example
// "features.age: NaN is not a finite number".
package schemas

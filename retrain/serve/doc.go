// Package serve is driftwatch's model server: it serves the champion of
// each model the built-in trainers registered, logs every prediction as an
// inference event, forwards ground truth as outcome events, and follows
// promotions. docs/serve.md is its reference; openapi.yaml describes its
// API.
//
// # Models
//
// Load reads the registry (models, FINAL): for each model the newest
// champion of trainer builtin. Its artifact (artifact_uri file://<dir>)
// is read with retrain.ReadArtifact, which checks model.json against
// model.json.sha256; metadata.json must name the same model and version;
// a new version must have the task and positive class of the one served.
// A version that fails a check is not served (driftwatch_serve_reloads_total
// {outcome="rejected"}) and the model keeps its current one. The served
// set is an immutable map behind an atomic.Pointer: a request reads the
// pointer once, so each response comes from exactly one version, and a
// swap never waits for requests nor they for it.
//
// Reloads happen on every promoted event of the model-events topic (read
// by a consumer group of its own per process that commits nothing, so
// every server sees every event) and every reload_interval, which catches
// up a missed event.
//
// # The event log
//
// Each predicted row becomes one driftwatch.inference.v1 event (features
// and segment as the client sent them), each outcome one
// driftwatch.outcome.v1 event, keyed by model_id. They go into one
// bounded buffer (log_buffer events) that a goroutine writes to Kafka in
// batches; a request waits only for room in the buffer, never for Kafka:
// under log_policy block up to log_wait, then the event is dropped; under
// drop at once. A dropped inference still gets its prediction (the row is
// marked "unlogged": true); a dropped outcome answers 503. On shutdown the
// buffer stops accepting (503) and everything accepted is written, within
// shutdown_timeout.
//
// # Shadow scoring
//
// For a model in shadow_models, Load also loads the model's challenger:
// the newest built-in version registered after the champion with status
// candidate or rejected, checked like a champion and against it (same
// task and positive class); registered and rejected model events reload
// it. After a request is answered, the champion's snapshot (with its
// challenger) and the rows go into a bounded queue (shadowQueue requests)
// without waiting; one goroutine scores them with the challenger and logs
// each row as an inference event with the challenger's model_version, the
// champion's prediction_id and "shadow": true. A full queue drops the
// rows; a row the challenger refuses, a panic or a non-finite score is
// counted and rate-limited in the log, never returned. GET
// /v1/models/{model}/shadow (CompareShadow) compares the two on the
// requests labelled on both sides.
//
// # Metrics
//
//   - driftwatch_serve_requests_total{route,code}
//   - driftwatch_serve_predictions_total{model}
//   - driftwatch_serve_request_duration_seconds{route}
//   - driftwatch_serve_reloads_total{model,outcome} (loaded, rejected, failed)
//   - driftwatch_serve_model_info{model,version}
//   - driftwatch_serve_log_events_total{topic,outcome} (accepted, dropped, written, failed)
//   - driftwatch_serve_log_buffer_events
//   - driftwatch_serve_shadow_predictions_total{model,outcome} (logged, dropped, invalid, failed, unlogged)
//   - driftwatch_serve_shadow_loads_total{model,outcome} (loaded, rejected, failed)
//   - driftwatch_serve_shadow_model_info{model,version}
package serve

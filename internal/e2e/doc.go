// Package e2e holds end-to-end tests that run driftwatch's real processes
// together with the real third-party components around them — a private
// Kafka broker, a private clickhouse-embedded, the ingest and monitor
// binaries, Prometheus and Alertmanager from their Debian packages — and
// check what an operator would see. It has no code outside its tests.
//
// The tests start everything on free ports through internal/teststack, so
// they never touch the shared test stack. A missing prerequisite (Kafka
// jars, libchdb, the prometheus or prometheus-alertmanager binary) skips a
// test outside CI and fails it under CI=true.
package e2e

// Package layering holds no code: its test keeps driftwatch's import
// layers, bottom up
//
//	schemas, deploy  →  internal/*  →  ingest | monitor | retrain  →  services/*
//
// A package may import one from a lower layer, or one of its own group
// (monitor/window from monitor, internal/chclient from internal/service,
// services/driftwatch/gen from services/driftwatch/bench), never one from a
// higher layer or a sibling (ingest, monitor and retrain never import each
// other). deploy holds the embedded DDL and the deployment files, beside
// schemas at the bottom. Only the packages' own imports count: an
// integration test may drive a sibling (monitor's tests run ingest to load
// their data).
package layering

// Package admin holds the driftwatch tool's administrative commands:
// migrate (the ClickHouse schema), retrain (a manual retrain trigger) and
// models (the registry's versions), reference set and reference show (a
// model's persisted drift reference), forget (erase a subject's rows from
// every table), label-queue (a model's unlabelled inferences handed out
// for labelling, through the monitor's API).
package admin

// Command monitor evaluates every model's rolling windows for drift and
// data quality, writes the results to ClickHouse, exports them to
// Prometheus and publishes retrain triggers; see package monitor.
package main

import (
	"context"
	"os"

	"github.com/driftwatch/driftwatch/internal/service"
	"github.com/driftwatch/driftwatch/monitor"
)

const usage = `monitor computes, for every model with recent inferences, drift (PSI, KS,
Wasserstein, Jensen-Shannon, … per feature, and of the prediction) and data
quality between a reference window and the current window, in ClickHouse.
Results go to the drift_results table and to /metrics; sustained drift
publishes a retrain trigger. The JSON API is under /api/v1 (monitor/openapi.yaml).
Thresholds, methods and per-model references are set in the -config file.`

func main() {
	cfg := monitor.DefaultConfig()
	os.Exit(service.Main(cfg, service.MainOptions{Name: "monitor", Usage: usage, Args: os.Args[1:], Exit: os.Exit},
		func(ctx context.Context) error { return monitor.RunService(ctx, cfg) }))
}

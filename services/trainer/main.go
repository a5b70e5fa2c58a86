// Command trainer consumes retrain triggers, retrains the model on its
// label-matured data, evaluates champion against challenger and registers
// the result; see package retrain.
package main

import (
	"context"
	"os"

	"github.com/driftwatch/driftwatch/internal/service"
	"github.com/driftwatch/driftwatch/retrain"
)

const usage = `trainer consumes <prefix>retrain-triggers. For each trigger it builds the
model's dataset (inferences joined with matured outcomes) from ClickHouse,
trains a challenger (built-in logistic or ridge regression, or the external
command configured per model), compares it with the champion's recorded
predictions on the same evaluation window, and promotes it only when it is
better by the margin with a bootstrap interval that excludes zero. Versions go
to the models table and the artifact directory, runs to training_runs, and
events to <prefix>model-events. Per-model settings are in the -config file.`

func main() {
	cfg := retrain.DefaultConfig()
	os.Exit(service.Main(cfg, service.MainOptions{Name: "trainer", Usage: usage, Args: os.Args[1:], Exit: os.Exit},
		func(ctx context.Context) error { return retrain.RunService(ctx, cfg) }))
}

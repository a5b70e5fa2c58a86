// Command serve serves the champion of each model driftwatch's built-in
// trainers registered, logs every prediction to the inferences topic and
// follows promotions; see package retrain/serve and docs/serve.md.
package main

import (
	"context"
	"os"

	"github.com/driftwatch/driftwatch/internal/service"
	"github.com/driftwatch/driftwatch/retrain/serve"
)

const usage = `serve answers POST /v1/models/{model}/predict with the registry's champion
of each built-in model, logs every prediction as an inference event to
<prefix>inferences through a bounded buffer (a prediction never waits on
Kafka), forwards POST /v1/models/{model}/outcomes to <prefix>outcomes, and
swaps in a new champion on each promoted event of <prefix>model-events.`

func main() {
	cfg := serve.DefaultConfig()
	os.Exit(service.Main(cfg, service.MainOptions{Name: "serve", Usage: usage, Args: os.Args[1:], Exit: os.Exit},
		func(ctx context.Context) error { return serve.RunService(ctx, cfg) }))
}

// Command ingest moves inference, outcome and business-metric events from
// Kafka into ClickHouse; see package ingest and the README.
package main

import (
	"context"
	"os"

	"github.com/driftwatch/driftwatch/ingest"
	"github.com/driftwatch/driftwatch/internal/service"
)

const usage = `ingest reads driftwatch's event topics (inferences, outcomes, business-metrics),
validates every event, writes valid ones to ClickHouse in batches and sends
invalid ones to the dead-letter topic with the reason. Offsets are committed
only after ClickHouse acknowledged the batch.`

func main() {
	cfg := ingest.DefaultConfig()
	os.Exit(service.Main(cfg, service.MainOptions{Name: "ingest", Usage: usage, Args: os.Args[1:], Exit: os.Exit},
		func(ctx context.Context) error { return ingest.RunService(ctx, cfg) }))
}

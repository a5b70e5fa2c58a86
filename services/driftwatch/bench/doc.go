// Package bench holds the driftwatch tool's benchmark commands (bench
// ingest, bench monitor, bench retrain). Each runs against the real Kafka
// and ClickHouse it is pointed at and prints its figures next to the
// targets; nothing is asserted. Processes, free ports and readiness polling
// come from internal/teststack, as in the integration tests.
package bench

import "github.com/driftwatch/driftwatch/services/driftwatch/command"

// Commands returns the benchmark commands.
func Commands() []command.Command {
	return []command.Command{ingestCommand(), monitorCommand(), retrainCommand(), serveCommand()}
}

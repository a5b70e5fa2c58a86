// Package bench holds the driftwatch tool's benchmark commands (bench
// fleet, bench ingest, bench monitor, bench retrain, bench serve). Each runs against the real Kafka
// and ClickHouse it is pointed at and prints its figures next to the
// targets; nothing is asserted. Processes, free ports and readiness polling
// come from internal/teststack, as in the integration tests.
package bench

import "github.com/driftwatch/driftwatch/services/driftwatch/command"

// Commands returns the benchmark commands.
func Commands() []command.Command {
	return []command.Command{fleetCommand(), ingestCommand(), monitorCommand(), retrainCommand(), serveCommand()}
}

// Command driftwatch is the all-in-one command-line tool: it applies the
// ClickHouse schema (migrate) and, as later parts land, generates load,
// runs benchmarks and drives retraining. Run `driftwatch help`.
package main

import (
	"os"

	"github.com/driftwatch/driftwatch/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], cli.Env{Stdout: os.Stdout, Stderr: os.Stderr, Exit: os.Exit}))
}

// Command driftwatch is the all-in-one command-line tool: it applies the
// ClickHouse schema (migrate), generates load (gen), drives retraining
// (retrain, models), backtests drift policies on a model's history
// (backtest), runs the benchmarks (bench …) and shows the whole
// loop (demo). Run `driftwatch help`.
package main

import (
	"os"

	"github.com/driftwatch/driftwatch/services/driftwatch/admin"
	"github.com/driftwatch/driftwatch/services/driftwatch/backtest"
	"github.com/driftwatch/driftwatch/services/driftwatch/bench"
	"github.com/driftwatch/driftwatch/services/driftwatch/command"
	"github.com/driftwatch/driftwatch/services/driftwatch/demo"
	"github.com/driftwatch/driftwatch/services/driftwatch/gen"
	"github.com/driftwatch/driftwatch/services/driftwatch/report"
)

// commands lists every subcommand.
func commands() []command.Command {
	var cmds []command.Command
	cmds = append(cmds, admin.Commands()...)
	cmds = append(cmds, gen.Commands()...)
	cmds = append(cmds, backtest.Commands()...)
	cmds = append(cmds, bench.Commands()...)
	cmds = append(cmds, report.Commands()...)
	cmds = append(cmds, demo.Commands()...)
	return cmds
}

func main() {
	os.Exit(command.Main(os.Args[1:], command.Env{Stdout: os.Stdout, Stderr: os.Stderr, Exit: os.Exit}, commands()))
}

package gen

import "github.com/driftwatch/driftwatch/services/driftwatch/command/commandtest"

// run runs one of this package's commands as the driftwatch tool would.
func run(args []string, env map[string]string) (int, string, string) {
	return commandtest.Run(args, env, Commands())
}

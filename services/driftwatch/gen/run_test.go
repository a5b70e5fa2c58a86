package gen

import (
	"bytes"

	"github.com/driftwatch/driftwatch/services/driftwatch/command"
)

// run runs one of this package's commands as the driftwatch tool would.
func run(args []string, env map[string]string) (int, string, string) {
	var out, errb bytes.Buffer
	code := command.Main(args, command.Env{Stdout: &out, Stderr: &errb, LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}, Commands())
	return code, out.String(), errb.String()
}

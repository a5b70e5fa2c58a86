// Package commandtest runs driftwatch tool commands in tests the way the tool
// would, with the output captured and the environment given as a map.
package commandtest

import (
	"bytes"
	"strings"
	"testing"

	"github.com/driftwatch/driftwatch/services/driftwatch/command"
)

// Run runs args through command.Main with cmds, reading the environment from
// env only (a nil map is an empty environment). It returns the exit code and
// what was written to standard output and standard error.
func Run(args []string, env map[string]string, cmds []command.Command) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	code = command.Main(args, command.Env{Stdout: &out, Stderr: &errb, LookupEnv: lookup}, cmds)
	return code, out.String(), errb.String()
}

// Case is one row of a table test of a command's flags and configuration:
// the arguments, the exit code, a string standard output must contain and
// strings standard error must each contain.
type Case struct {
	Name     string
	Args     []string
	WantCode int
	WantOut  string
	WantErr  []string
}

// RunCases runs each case as a subtest: prefix (the command's words, say
// "bench", "ingest") and then the case's arguments, through cmds with an
// empty environment.
func RunCases(t *testing.T, prefix []string, cmds []command.Command, cases []Case) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.Name, func(t *testing.T) {
			args := append(append([]string(nil), prefix...), tt.Args...)
			code, out, errs := Run(args, nil, cmds)
			if code != tt.WantCode || !strings.Contains(out, tt.WantOut) {
				t.Fatalf("code %d, stdout %q, stderr %q; want code %d, stdout with %q", code, out, errs, tt.WantCode, tt.WantOut)
			}
			for _, w := range tt.WantErr {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr %q does not contain %q", errs, w)
				}
			}
		})
	}
}

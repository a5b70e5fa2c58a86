// Package cli implements the driftwatch command: a dispatcher over
// subcommands, each with its own flags and the shared configuration
// (defaults → -config file → DRIFTWATCH_* environment → flags).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"text/tabwriter"

	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/service"
)

// Env is the process state the commands use, injected for tests.
type Env struct {
	Stdout, Stderr io.Writer
	// LookupEnv reads the environment; os.LookupEnv when nil.
	LookupEnv func(string) (string, bool)
	// Exit is called on a second interrupt; nil disables the hard exit.
	Exit func(int)
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	usage   string
	// cfg returns a fresh configuration with its defaults.
	cfg func() config.Validator
	run func(ctx context.Context, cfg config.Validator, env Env) error
}

var commands = map[string]command{}

func register(c command) { commands[c.name] = c }

// Main runs the subcommand named by args[0] and returns the exit code.
func Main(args []string, env Env) int {
	if env.LookupEnv == nil {
		env.LookupEnv = os.LookupEnv
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		if len(args) > 1 {
			name := args[1]
			if len(args) > 2 {
				if _, ok := commands[name+" "+args[2]]; ok {
					name += " " + args[2]
				}
			}
			if c, ok := commands[name]; ok {
				return Main([]string{c.name, "-help"}, env)
			}
		}
		printHelp(env.Stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	// A command named by two words ("bench ingest") takes both.
	if len(args) > 1 {
		if c2, ok2 := commands[args[0]+" "+args[1]]; ok2 {
			c, ok, args = c2, true, append([]string{c2.name}, args[2:]...)
		}
	}
	if !ok {
		fmt.Fprintf(env.Stderr, "driftwatch: unknown command %q\n\n", args[0])
		printHelp(env.Stderr)
		return 2
	}
	cfg := c.cfg()
	return service.Main(cfg, service.MainOptions{
		Name: "driftwatch " + c.name, Usage: c.usage, Args: args[1:],
		Stdout: env.Stdout, Stderr: env.Stderr, LookupEnv: env.LookupEnv, Exit: env.Exit,
	}, func(ctx context.Context) error { return c.run(ctx, cfg, env) })
}

func printHelp(w io.Writer) {
	fmt.Fprintln(w, "driftwatch watches ML models in production and retrains them when they decay.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: driftwatch <command> [flags]     (driftwatch help <command> for its flags)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, n := range names {
		fmt.Fprintf(tw, "  %s\t%s\n", n, commands[n].summary)
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Every command reads -config FILE (or DRIFTWATCH_CONFIG), DRIFTWATCH_* variables and flags, in that order.")
}

// joinErrs is errors.Join that ignores nils, for Validate methods.
func joinErrs(errs ...error) error { return errors.Join(errs...) }

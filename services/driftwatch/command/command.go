// Package command is the driftwatch tool's dispatcher: a list of
// subcommands, each with its own configuration (defaults → -config file →
// DRIFTWATCH_* environment → flags, through service.Main) and a run
// function. The subcommands live in the packages beside it (admin, gen,
// bench); services/driftwatch's main lists them.
package command

import (
	"context"
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

// Command is one subcommand.
type Command struct {
	// Name is one word ("migrate") or two ("bench ingest").
	Name    string
	Summary string
	Usage   string
	// Config returns a fresh configuration with its defaults.
	Config func() config.Validator
	// Run runs the command with the loaded, validated configuration.
	Run func(ctx context.Context, cfg config.Validator, env Env) error
}

// Main runs the subcommand of cmds named by args[0] (and args[1] for a
// two-word name) and returns the exit code: 0 on success, 1 when the
// command failed, 2 for a usage or configuration error.
func Main(args []string, env Env, cmds []Command) int {
	if env.LookupEnv == nil {
		env.LookupEnv = os.LookupEnv
	}
	byName := make(map[string]Command, len(cmds))
	for _, c := range cmds {
		if _, dup := byName[c.Name]; dup {
			panic("BUG: two driftwatch commands named " + c.Name)
		}
		byName[c.Name] = c
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		if len(args) > 1 {
			name := args[1]
			if len(args) > 2 {
				if _, ok := byName[name+" "+args[2]]; ok {
					name += " " + args[2]
				}
			}
			if c, ok := byName[name]; ok {
				return Main([]string{c.Name, "-help"}, env, cmds)
			}
		}
		printHelp(env.Stdout, byName)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := byName[args[0]]
	// A command named by two words ("bench ingest") takes both.
	if len(args) > 1 {
		if c2, ok2 := byName[args[0]+" "+args[1]]; ok2 {
			c, ok, args = c2, true, append([]string{c2.Name}, args[2:]...)
		}
	}
	if !ok {
		fmt.Fprintf(env.Stderr, "driftwatch: unknown command %q\n\n", args[0])
		printHelp(env.Stderr, byName)
		return 2
	}
	cfg := c.Config()
	return service.Main(cfg, service.MainOptions{
		Name: "driftwatch " + c.Name, Usage: c.Usage, Args: args[1:],
		Stdout: env.Stdout, Stderr: env.Stderr, LookupEnv: env.LookupEnv, Exit: env.Exit,
	}, func(ctx context.Context) error { return c.Run(ctx, cfg, env) })
}

func printHelp(w io.Writer, byName map[string]Command) {
	fmt.Fprintln(w, "driftwatch watches ML models in production and retrains them when they decay.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: driftwatch <command> [flags]     (driftwatch help <command> for its flags)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, n := range names {
		fmt.Fprintf(tw, "  %s\t%s\n", n, byName[n].Summary)
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Every command reads -config FILE (or DRIFTWATCH_CONFIG), DRIFTWATCH_* variables and flags, in that order.")
}

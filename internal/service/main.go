package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/driftwatch/driftwatch/internal/config"
)

// MainOptions are what a service's main hands to Main; everything that is
// process state is injected so Main can be tested.
type MainOptions struct {
	Name   string
	Usage  string
	Args   []string
	Stdout io.Writer
	Stderr io.Writer
	// LookupEnv reads the environment; os.LookupEnv when nil.
	LookupEnv func(string) (string, bool)
	// Exit is called with 1 when a second signal arrives during shutdown;
	// main passes os.Exit. Nil disables the hard exit.
	Exit func(int)
	// Signals to stop on; SIGINT and SIGTERM when nil.
	Signals []os.Signal
}

// Main loads cfg (defaults already set) from the command line, environment
// and file, handles -check-config and -help, and runs run with a context
// that ends on the first SIGINT or SIGTERM; a second signal calls Exit(1)
// at once. It returns the process exit code: 0 on success, 2 for a bad
// configuration, 1 when run fails.
func Main(cfg config.Validator, opts MainOptions, run func(ctx context.Context) error) int {
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	if opts.Signals == nil {
		opts.Signals = []os.Signal{os.Interrupt, syscall.SIGTERM}
	}
	loaded, err := config.Load(cfg, config.LoadOptions{Name: opts.Name, Args: opts.Args, LookupEnv: opts.LookupEnv, Output: opts.Stderr, Usage: opts.Usage})
	if errors.Is(err, config.ErrHelp) {
		return 0
	}
	// Every message printed below names no secret the configuration
	// holds (a YAML or environment error may quote a value).
	red := config.NewRedactor(cfg)
	if err != nil {
		fmt.Fprintf(opts.Stderr, "%s: %v\n", opts.Name, red.Error(err))
		return 2
	}
	if loaded.CheckOnly {
		src := "defaults, environment and flags"
		if loaded.File != "" {
			src = loaded.File + ", environment and flags"
		}
		fmt.Fprintf(opts.Stdout, "# %s: configuration is valid (from %s)\n", opts.Name, src)
		if err := config.Dump(opts.Stdout, cfg); err != nil {
			fmt.Fprintf(opts.Stderr, "%s: %v\n", opts.Name, red.Error(err))
			return 1
		}
		return 0
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigc := make(chan os.Signal, 2)
	signal.Notify(sigc, opts.Signals...)
	defer signal.Stop(sigc)
	go func() {
		select {
		case sig := <-sigc:
			fmt.Fprintf(opts.Stderr, "%s: received %s, shutting down (send it again to exit at once)\n", opts.Name, sig)
			cancel()
		case <-ctx.Done():
			return
		}
		if sig, ok := <-sigc; ok && opts.Exit != nil {
			fmt.Fprintf(opts.Stderr, "%s: received %s again, exiting now\n", opts.Name, sig)
			opts.Exit(1)
		}
	}()
	if err := run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(opts.Stderr, "%s: %v\n", opts.Name, red.Error(err))
		return 1
	}
	return 0
}

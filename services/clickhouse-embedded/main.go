// Command clickhouse-embedded runs the ClickHouse engine in-process through
// libchdb and serves the ClickHouse HTTP interface, so clickhouse-go/v2
// (Protocol HTTP), curl and other HTTP clients use it like a ClickHouse
// server. See package internal/chserver.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/driftwatch/driftwatch/internal/chserver"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "clickhouse-embedded:", err)
		os.Exit(1)
	}
}

func run() error {
	defLib := os.Getenv("CHDB_LIB_PATH")
	if defLib == "" {
		defLib = ".deps/chdb/libchdb.so"
	}
	fs := flag.NewFlagSet("clickhouse-embedded", flag.ContinueOnError)
	addr := fs.String("http", "127.0.0.1:8123", "HTTP listen address")
	path := fs.String("path", ".data/clickhouse", "data directory (persists across restarts)")
	lib := fs.String("lib", defLib, "path of libchdb.so (env CHDB_LIB_PATH; `make deps` fetches it)")
	user := fs.String("user", "default", "user name clients authenticate as")
	password := fs.String("password", os.Getenv("CLICKHOUSE_PASSWORD"), "password of -user (env CLICKHOUSE_PASSWORD)")
	maxBody := fs.Int64("max-body-bytes", chserver.DefaultMaxBodyBytes, "largest accepted request body in bytes")
	sessions := fs.Int("sessions", 4, "engine sessions, i.e. queries run in parallel")
	checkConfig := fs.Bool("check-config", false, "validate the configuration and exit")
	debug := fs.Bool("debug", false, "log at debug level")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}

	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	opts := chserver.Options{
		Addr:         *addr,
		LibPath:      *lib,
		DataPath:     *path,
		Sessions:     *sessions,
		User:         *user,
		Password:     *password,
		MaxBodyBytes: *maxBody,
		Logger:       logger,
		Registerer:   reg,
		Gatherer:     reg,
		OnListen: func(a net.Addr) {
			fmt.Printf("clickhouse-embedded listening on http://%s (data %s)\n", a, *path)
		},
	}
	if *checkConfig {
		if err := opts.Validate(); err != nil {
			return fmt.Errorf("check config: %w", err)
		}
		if _, err := os.Stat(*lib); err != nil {
			return fmt.Errorf("check config: libchdb not found at %s (run `make deps`, or set -lib / CHDB_LIB_PATH): %w", *lib, err)
		}
		fmt.Println("config ok")
		return nil
	}
	srv, err := chserver.New(opts)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// A second signal exits at once.
		<-ctx.Done()
		stop()
		c := make(chan os.Signal, 1)
		signal.Notify(c, os.Interrupt, syscall.SIGTERM)
		<-c
		fmt.Fprintln(os.Stderr, "clickhouse-embedded: second signal, exiting now")
		os.Exit(2)
	}()
	return srv.Run(ctx)
}

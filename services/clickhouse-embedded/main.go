// Command clickhouse-embedded runs the ClickHouse engine in-process through
// libchdb and serves the ClickHouse HTTP interface, so clickhouse-go/v2
// (Protocol HTTP), curl and other HTTP clients use it like a ClickHouse
// server. See package internal/chserver.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/driftwatch/driftwatch/internal/chserver"
	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/service"
)

const usage = `clickhouse-embedded serves the ClickHouse HTTP interface over the ClickHouse
engine loaded from libchdb (make deps fetches it), with one account and its
data under -path. It is the ClickHouse of make run and make test; point
driftwatch at a ClickHouse server of your own in production.

It is safe to leave running: a GET only reads, a request from a web page
(an Origin header not on -allowed-origins) is refused, a non-loopback
-http needs -password, and table functions, engines and clauses that reach
the file system or the network (url, s3, remote, INTO OUTFILE, …) are
refused; file() only reaches -path and -user-files. -tls-cert and -tls-key
serve HTTPS; -tls-client-ca also requires client certificates.`

// Config is clickhouse-embedded's configuration. Its flags are the ones
// scripts/stack.sh passes; CHDB_LIB_PATH and CLICKHOUSE_PASSWORD, read by
// earlier versions, still set the defaults of lib and password.
type Config struct {
	HTTP         string        `yaml:"http" env:"DRIFTWATCH_CLICKHOUSE_EMBEDDED_HTTP" flag:"http" help:"HTTP listen address"`
	Path         string        `yaml:"path" env:"DRIFTWATCH_CLICKHOUSE_EMBEDDED_PATH" flag:"path" help:"data directory (persists across restarts)"`
	Lib          string        `yaml:"lib" env:"DRIFTWATCH_CLICKHOUSE_EMBEDDED_LIB" flag:"lib" help:"path of libchdb.so (default from CHDB_LIB_PATH; make deps fetches it)"`
	User         string        `yaml:"user" env:"DRIFTWATCH_CLICKHOUSE_EMBEDDED_USER" flag:"user" help:"user name clients authenticate as"`
	Password     config.Secret `yaml:"password" env:"DRIFTWATCH_CLICKHOUSE_EMBEDDED_PASSWORD" flag:"password" help:"password of user (default from CLICKHOUSE_PASSWORD; prefer the environment, flags show in ps)"`
	MaxBodyBytes int64         `yaml:"max_body_bytes" env:"DRIFTWATCH_CLICKHOUSE_EMBEDDED_MAX_BODY_BYTES" flag:"max-body-bytes" help:"largest accepted request body in bytes"`
	Sessions     int           `yaml:"sessions" env:"DRIFTWATCH_CLICKHOUSE_EMBEDDED_SESSIONS" flag:"sessions" help:"engine sessions, i.e. queries run in parallel"`
	Debug        bool          `yaml:"debug" env:"DRIFTWATCH_CLICKHOUSE_EMBEDDED_DEBUG" flag:"debug" help:"log at debug level"`
	// Safety and TLS: see docs/operations.md, "The embedded server's safety".
	AllowedOrigins []string `yaml:"allowed_origins" env:"DRIFTWATCH_CLICKHOUSE_EMBEDDED_ALLOWED_ORIGINS" flag:"allowed-origins" help:"Origin header values (scheme://host[:port], comma-separated) whose requests are served; requests from any other web page are refused (default none)"`
	TLSCert        string   `yaml:"tls_cert" env:"DRIFTWATCH_CLICKHOUSE_EMBEDDED_TLS_CERT" flag:"tls-cert" help:"PEM certificate: serve HTTPS instead of HTTP (with -tls-key)"`
	TLSKey         string   `yaml:"tls_key" env:"DRIFTWATCH_CLICKHOUSE_EMBEDDED_TLS_KEY" flag:"tls-key" help:"PEM private key of -tls-cert"`
	UserFiles      []string `yaml:"user_files" env:"DRIFTWATCH_CLICKHOUSE_EMBEDDED_USER_FILES" flag:"user-files" help:"directories besides -path that file() may read and write, comma-separated (default none); other paths and the other file, network and program table functions are refused"`
	TLSClientCA    string   `yaml:"tls_client_ca" env:"DRIFTWATCH_CLICKHOUSE_EMBEDDED_TLS_CLIENT_CA" flag:"tls-client-ca" help:"PEM CA: require every client to present a certificate it signed (needs -tls-cert)"`
}

func defaultConfig() *Config {
	lib := os.Getenv("CHDB_LIB_PATH")
	if lib == "" {
		lib = ".deps/chdb/libchdb.so"
	}
	return &Config{HTTP: "127.0.0.1:8123", Path: ".data/clickhouse", Lib: lib, User: "default",
		Password: config.Secret(os.Getenv("CLICKHOUSE_PASSWORD")), MaxBodyBytes: chserver.DefaultMaxBodyBytes, Sessions: 4}
}

func (c *Config) options() chserver.Options {
	return chserver.Options{Addr: c.HTTP, LibPath: c.Lib, DataPath: c.Path, Sessions: c.Sessions, User: c.User,
		Password: c.Password.Reveal(), MaxBodyBytes: c.MaxBodyBytes, AllowedOrigins: c.AllowedOrigins,
		TLSCertFile: c.TLSCert, TLSKeyFile: c.TLSKey, TLSClientCAFile: c.TLSClientCA, FileDirs: c.UserFiles}
}

// enterDataDir makes the paths of c absolute and changes the working
// directory to the data directory: the engine (clickhouse-local) reads a
// table name it does not know as a file relative to the working
// directory, which is thereby confined to the server's own data.
func enterDataDir(c *Config) error {
	paths := []*string{&c.Path, &c.Lib, &c.TLSCert, &c.TLSKey, &c.TLSClientCA}
	for i := range c.UserFiles {
		paths = append(paths, &c.UserFiles[i])
	}
	for _, p := range paths {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return fmt.Errorf("resolve %s: %w", *p, err)
		}
		*p = abs
	}
	if err := os.MkdirAll(c.Path, 0o755); err != nil {
		return fmt.Errorf("create data directory %s: %w", c.Path, err)
	}
	if err := os.Chdir(c.Path); err != nil {
		return fmt.Errorf("enter data directory %s: %w", c.Path, err)
	}
	return nil
}

// Validate reports every invalid setting. A missing libchdb is reported
// when the server starts, after it bound its address (so a port in use is
// named first), with what to do about it.
func (c *Config) Validate() error { return c.options().Validate() }

func run(ctx context.Context, c *Config) error {
	lg := config.Logging{LogLevel: "info", LogFormat: "text"}
	if c.Debug {
		lg.LogLevel = "debug"
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := enterDataDir(c); err != nil {
		return err
	}
	opts := c.options()
	opts.Logger, opts.Registerer, opts.Gatherer = lg.Logger("clickhouse-embedded"), reg, reg
	opts.OnListen = func(a net.Addr) {
		scheme := "http"
		if c.TLSCert != "" {
			scheme = "https"
		}
		fmt.Printf("clickhouse-embedded listening on %s://%s (data %s)\n", scheme, a, c.Path)
	}
	srv, err := chserver.New(opts)
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}

func main() {
	cfg := defaultConfig()
	os.Exit(service.Main(cfg, service.MainOptions{Name: "clickhouse-embedded", Usage: usage, Args: os.Args[1:], Exit: os.Exit},
		func(ctx context.Context) error { return run(ctx, cfg) }))
}

package service

import (
	"context"
	"errors"
	"log/slog"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/migration"
	"github.com/driftwatch/driftwatch/schemas"
)

// Spec is what one service's start-up has of its own; Run does the rest.
type Spec struct {
	// Name is the service name: logs, metric labels, the Kafka client id
	// (driftwatch-<name>).
	Name      string
	Common    config.Common
	Migration migration.Config
	// OwnsRetention is set by the one service that applies the tables'
	// TTLs at start (ingest; `driftwatch migrate` is the other owner).
	// The others create what is missing, leave the TTLs alone, and check
	// them against Migration: a log line and
	// driftwatch_retention_ttl_mismatch when they differ.
	OwnsRetention bool
	// Topics are created, when missing, before Setup (readers created
	// before their topic exists log errors until it does).
	Topics []schemas.Topic
	// Setup builds the service's work once the HTTP server is listening,
	// ClickHouse is migrated and the topics exist. It may mount handlers
	// on rt.Server and register what to close with rt.OnClose. It returns
	// the work, which runs until ctx ends and drains.
	Setup func(ctx context.Context, rt *Runtime) (run func(ctx context.Context) error, err error)
	// Secrets are the service's own secrets beyond Common's
	// (config.SecretValues of its whole configuration), hidden from its
	// logs as Common's are.
	Secrets []string
}

// Runtime is what Run hands to a service's Setup.
type Runtime struct {
	Server *Server
	Conn   driver.Conn
	// Kafka has the brokers, topic prefix, client id and logger.
	Kafka  kafkaio.Options
	Log    *slog.Logger
	closes []func() error
}

// OnClose registers close to run after the work ended, in reverse order
// of registration, before the ClickHouse connection closes.
func (rt *Runtime) OnClose(close func() error) { rt.closes = append(rt.closes, close) }

// AddDependencyChecks adds the readiness checks every service has: a
// ClickHouse ping on conn and a metadata request to the Kafka brokers, with
// kopts' SASL and TLS (so a refused password shows in /readyz).
func AddDependencyChecks(srv *Server, conn driver.Conn, kopts kafkaio.Options) {
	srv.AddCheck("clickhouse", func(ctx context.Context) error { return conn.Ping(ctx) })
	srv.AddCheck("kafka", func(ctx context.Context) error { return kafkaio.Ping(ctx, kopts) })
}

type registryKey struct{}

// WithRegistry returns ctx carrying reg, the registry Run's HTTP server
// serves on /metrics and the service registers its metrics with (a new
// one without it): a test hands one in to list every metric a service
// registers (reg.Describe), whether or not it has a series yet.
func WithRegistry(ctx context.Context, reg *prometheus.Registry) context.Context {
	return context.WithValue(ctx, registryKey{}, reg)
}

// Run is every service's start-up and shutdown: the HTTP server (health,
// readiness, metrics) first, so a port in use is reported at once;
// ClickHouse, waited for and migrated; the topics; the service's Setup;
// readiness checks of ClickHouse and Kafka; ready; the work until ctx
// ends; not ready; what Setup registered closed; the HTTP server last, so
// /metrics stays up while the service drains.
func Run(ctx context.Context, spec Spec) (err error) {
	if spec.Setup == nil {
		return errors.New("BUG: service.Run without Setup")
	}
	// Every log line of the service, whatever logs it, has the secrets of
	// its configuration (Common's Secret fields, passwords inside its
	// URLs, Spec.Secrets) replaced.
	red := config.RedactorOf(append(config.SecretValues(spec.Common), spec.Secrets...))
	log := slog.New(red.Handler(spec.Common.Logger(spec.Name).Handler()))
	reg, _ := ctx.Value(registryKey{}).(*prometheus.Registry)
	srv, stopHTTP, err := Start(ctx, Options{Name: spec.Name, Addr: spec.Common.HTTPAddr, Logger: log, ShutdownTimeout: spec.Common.ShutdownTimeout, HTTP: spec.Common.HTTP, Auth: spec.Common.APIAuth, Registry: reg})
	if err != nil {
		return err
	}
	defer stopHTTP()

	conn, err := OpenClickHouse(ctx, log, spec.Common.ClickHouse, spec.Migration, spec.OwnsRetention)
	if err != nil {
		return err
	}
	defer conn.Close()
	if !spec.OwnsRetention {
		ttl := newTTLCheck(srv.Registry(), spec.Name, log, conn, spec.Migration)
		ttl.check(ctx)
		ttlCtx, stopTTL := context.WithCancel(ctx)
		ttlDone := make(chan struct{})
		go func() { defer close(ttlDone); ttl.run(ttlCtx) }()
		defer func() { stopTTL(); <-ttlDone }()
	}

	kopts, err := kafkaio.FromConfig(spec.Common.Kafka, "driftwatch-"+spec.Name, log)
	if err != nil {
		return err
	}
	rt := &Runtime{Server: srv, Conn: conn, Log: log, Kafka: kopts}
	defer func() {
		for i := len(rt.closes) - 1; i >= 0; i-- {
			if cerr := rt.closes[i](); cerr != nil {
				log.Warn("close", "err", cerr)
			}
		}
	}()
	if len(spec.Topics) > 0 {
		if err := WaitFor(ctx, log, "create Kafka topics", func(ctx context.Context) error {
			err := kafkaio.EnsureTopics(ctx, rt.Kafka, kafkaio.Specs(rt.Kafka, spec.Topics...))
			if errors.Is(err, kafkaio.ErrRefused) {
				// A wrong password or an untrusted certificate: exit
				// with it now rather than wait as for an outage.
				return Permanent(err)
			}
			return err
		}); err != nil {
			return err
		}
	}
	work, err := spec.Setup(ctx, rt)
	if err != nil {
		return err
	}
	AddDependencyChecks(srv, conn, rt.Kafka)
	srv.SetReady(true)
	log.Info("started", "clickhouse", chclient.Redact(spec.Common.ClickHouseURL), "kafka", spec.Common.KafkaBrokers, "http", srv.Addr())
	err = work(ctx)
	srv.SetReady(false)
	return err
}

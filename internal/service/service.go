// Package service is the runtime every driftwatch service shares: an HTTP
// server with /healthz, /readyz and /metrics (from a registry of the
// service's own), readiness checks, and a graceful shutdown bounded by a
// timeout. It holds no globals, so a test can start two services in one
// process.
//
// The server closes connections that hold it up: a request whose headers
// take longer than HTTPReadHeaderTimeout, or whose body takes longer than
// HTTPReadTimeout, an answer not written within HTTPWriteTimeout, a
// keep-alive connection idle for HTTPIdleTimeout (config.HTTP). /readyz
// runs its checks at most once per ReadyCacheTTL (1 s): probes within it
// share the last result, and probes that arrive while the checks run wait
// for that run instead of starting their own, so a burst of probes costs
// one ClickHouse ping and one Kafka dial.
//
// Metrics registered by the runtime itself (besides the Go and process
// collectors):
//
//	driftwatch_build_info{service,version,goversion}  gauge, always 1
//	driftwatch_service_ready{service}                 gauge, 1 while /readyz answers 200
//	driftwatch_readyz_checks_total{service,check,outcome}  counter, readiness checks run
//	    (outcome ok or error); probes answered from the cache do not count
//	driftwatch_api_requests_denied_total{service,reason}  counter, API requests refused
//	    before their handler: no_token, bad_token, read_scope, unconfigured
//	    (a write without api_tokens_file), content_type (a write not JSON),
//	    host (api_auth none and a Host that is not loopback)
//	driftwatch_retention_ttl_mismatch{service,table}  gauge, in a service that does not
//	    own the retention (the monitor, the trainer): 1 while the table's TTL
//	    keeps other days than the service's retention settings, 0 when they
//	    agree; checked at start and every 10 minutes (ingest and driftwatch
//	    migrate set the TTLs, see internal/migration)
//
// Every route mounted with Handle is behind the API's authentication
// (api_auth, api_tokens_file; see auth): bearer tokens of scope read or
// write, JSON bodies only for writes. /healthz, /readyz and /metrics are
// always open.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/driftwatch/driftwatch/internal/config"
)

// Check is a readiness check; it returns nil when the dependency it checks
// is usable. It must return promptly when ctx ends.
type Check func(ctx context.Context) error

// Options configure a Server.
type Options struct {
	// Name is the service name, used in logs and metric labels.
	Name string
	// Addr is the listen address, such as 127.0.0.1:9101.
	Addr string
	// Logger receives the runtime's log lines; slog.Default when nil.
	Logger *slog.Logger
	// Registry holds the service's metrics; a new one when nil. It is
	// served on /metrics.
	Registry *prometheus.Registry
	// ShutdownTimeout bounds the HTTP server's graceful shutdown.
	ShutdownTimeout time.Duration
	// CheckTimeout bounds each readiness check; 2s when zero.
	CheckTimeout time.Duration
	// HTTP holds the server's timeouts; a zero field is its default
	// (config.DefaultHTTP).
	HTTP config.HTTP
	// ReadyCacheTTL is how long a readiness result is reused; 1s when
	// zero.
	ReadyCacheTTL time.Duration
	// Now is the clock of the readiness cache; time.Now when nil.
	Now func() time.Time
	// Auth guards the routes mounted with Handle (see auth); its zero
	// value is api_auth tokens without tokens: reads open, writes
	// refused.
	Auth config.APIAuth
}

// Server is the service's HTTP front: health, readiness, metrics and
// whatever API handlers the service mounts.
type Server struct {
	opts      Options
	log       *slog.Logger
	mux       *http.ServeMux
	ready     atomic.Bool
	readyG    prometheus.Gauge
	checksRun *prometheus.CounterVec
	mu        sync.Mutex
	checks    map[string]Check
	cache     readyCache
	listener  net.Listener
	auth      *auth
}

// readyCache is the last readiness result and the evaluation under way,
// guarded by Server.mu.
type readyCache struct {
	err   error
	at    time.Time
	valid bool
	// gen changes with the set of checks: a result of the old set is
	// not cached.
	gen uint64
	// running is closed when the evaluation under way ends; nil when
	// none runs.
	running chan struct{}
}

// New validates opts and builds a Server; it does not listen yet.
func New(opts Options) (*Server, error) {
	if opts.Name == "" {
		return nil, errors.New("service: Name is required")
	}
	if opts.Addr == "" {
		return nil, errors.New("service: Addr is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 30 * time.Second
	}
	if opts.CheckTimeout <= 0 {
		opts.CheckTimeout = 2 * time.Second
	}
	opts.HTTP = withDefaults(opts.HTTP)
	if opts.ReadyCacheTTL <= 0 {
		opts.ReadyCacheTTL = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{opts: opts, log: opts.Logger, mux: http.NewServeMux(), checks: map[string]Check{}}
	reg := opts.Registry
	var err error
	if err = registerDefaultCollectors(reg); err != nil {
		return nil, err
	}
	f := promauto.With(reg)
	version, goversion := buildVersion()
	f.NewGauge(prometheus.GaugeOpts{
		Name: "driftwatch_build_info", Help: "Build information of the running service; always 1.",
		ConstLabels: prometheus.Labels{"service": opts.Name, "version": version, "goversion": goversion},
	}).Set(1)
	s.readyG = f.NewGauge(prometheus.GaugeOpts{
		Name: "driftwatch_service_ready", Help: "1 while the service reports ready on /readyz.",
		ConstLabels: prometheus.Labels{"service": opts.Name},
	})
	s.checksRun = f.NewCounterVec(prometheus.CounterOpts{
		Name: "driftwatch_readyz_checks_total", Help: "Readiness checks run, by check and outcome (ok, error); probes answered from the cache do not count.",
		ConstLabels: prometheus.Labels{"service": opts.Name},
	}, []string{"check", "outcome"})
	denied := f.NewCounterVec(prometheus.CounterOpts{
		Name: "driftwatch_api_requests_denied_total", Help: "API requests refused before their handler, by reason (no_token, bad_token, read_scope, unconfigured, content_type, host).",
		ConstLabels: prometheus.Labels{"service": opts.Name},
	}, []string{"reason"})
	if s.auth, err = newAuth(opts.Auth, opts.Addr, denied); err != nil {
		return nil, err
	}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	s.mux.HandleFunc("GET /readyz", s.serveReady)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, EnableOpenMetrics: true}))
	return s, nil
}

// withDefaults fills the zero timeouts of h with config.DefaultHTTP's.
func withDefaults(h config.HTTP) config.HTTP {
	d := config.DefaultHTTP()
	for _, f := range []struct{ v, def *time.Duration }{
		{&h.HTTPReadHeaderTimeout, &d.HTTPReadHeaderTimeout}, {&h.HTTPReadTimeout, &d.HTTPReadTimeout},
		{&h.HTTPWriteTimeout, &d.HTTPWriteTimeout}, {&h.HTTPIdleTimeout, &d.HTTPIdleTimeout},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	return h
}

func registerDefaultCollectors(reg *prometheus.Registry) error {
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return fmt.Errorf("register runtime collectors: %w", err)
			}
		}
	}
	return nil
}

func buildVersion() (version, goversion string) {
	version, goversion = "devel", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goversion = bi.GoVersion
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 && version == "devel" {
				version = "devel-" + s.Value[:12]
			}
		}
	}
	return version, goversion
}

// Registry returns the registry served on /metrics.
func (s *Server) Registry() *prometheus.Registry { return s.opts.Registry }

// Logger returns the service's logger.
func (s *Server) Logger() *slog.Logger { return s.log }

// Handle mounts an API handler behind the API's authentication
// (Options.Auth); patterns follow net/http.ServeMux.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, s.auth.wrap(h, false)) }

// HandleWrite mounts an API handler whose every request is a write for
// the authentication, whatever its method: a GET that changes state (the
// labeling queue's, which records what it hands out) needs a write token
// and Content-Type application/json as a POST does.
func (s *Server) HandleWrite(pattern string, h http.Handler) {
	s.mux.Handle(pattern, s.auth.wrap(h, true))
}

// AddCheck adds a named readiness check, evaluated by /readyz (at most
// once per ReadyCacheTTL). A cached result is dropped, so the new check
// counts from the next probe.
func (s *Server) AddCheck(name string, c Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks[name] = c
	s.cache.gen++
	s.cache.valid = false
}

// SetReady marks the service ready (it has started its work) or not ready
// (it is starting or shutting down). /readyz is 503 until SetReady(true)
// and while any check fails.
func (s *Server) SetReady(ready bool) {
	s.ready.Store(ready)
	if !ready {
		s.readyG.Set(0)
	}
}

// Ready evaluates readiness as /readyz does and returns the failures. The
// checks' result is reused for ReadyCacheTTL; a caller that comes while
// they run waits for that run (or for its own ctx to end). Not being
// started, or shutting down, is never cached.
func (s *Server) Ready(ctx context.Context) error {
	if !s.ready.Load() {
		return errors.New("not started or shutting down")
	}
	for {
		s.mu.Lock()
		if s.cache.valid && s.opts.Now().Sub(s.cache.at) < s.opts.ReadyCacheTTL {
			err := s.cache.err
			s.mu.Unlock()
			return err
		}
		if wait := s.cache.running; wait != nil {
			s.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return fmt.Errorf("wait for the readiness checks: %w", ctx.Err())
			}
		}
		done := make(chan struct{})
		s.cache.running = done
		gen := s.cache.gen
		checks := make(map[string]Check, len(s.checks))
		for n, c := range s.checks {
			checks[n] = c
		}
		s.mu.Unlock()

		// The run is shared: one prober going away must not fail the
		// others', so only CheckTimeout bounds it.
		err := s.runChecks(context.WithoutCancel(ctx), checks)

		s.mu.Lock()
		if gen == s.cache.gen {
			s.cache.err, s.cache.at, s.cache.valid = err, s.opts.Now(), true
		}
		s.cache.running = nil
		close(done)
		s.mu.Unlock()
		return err
	}
}

// runChecks runs every check in name order, each within CheckTimeout.
func (s *Server) runChecks(ctx context.Context, checks map[string]Check) error {
	names := make([]string, 0, len(checks))
	for n := range checks {
		names = append(names, n)
	}
	sort.Strings(names)
	var errs []error
	for _, n := range names {
		cctx, cancel := context.WithTimeout(ctx, s.opts.CheckTimeout)
		err := checks[n](cctx)
		cancel()
		outcome := "ok"
		if err != nil {
			outcome = "error"
			errs = append(errs, fmt.Errorf("%s: %w", n, err))
		}
		s.checksRun.WithLabelValues(n, outcome).Inc()
	}
	return errors.Join(errs...)
}

func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.Ready(r.Context()); err != nil {
		s.readyG.Set(0)
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready:\n%v\n", err)
		return
	}
	s.readyG.Set(1)
	fmt.Fprintln(w, "ready")
}

// Listen binds the address now, so that a port already in use is reported
// before the service starts its work. Run calls it if it was not called.
func (s *Server) Listen() error {
	if s.listener != nil {
		return nil
	}
	l, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("listen for HTTP on %s: %w", s.opts.Addr, err)
	}
	s.listener = l
	return nil
}

// Addr returns the bound address (useful with port 0), or "" before Listen.
func (s *Server) Addr() string {
	if s.listener == nil {
		return ""
	}
	return s.listener.Addr().String()
}

// Run serves until ctx ends, then marks the service not ready and shuts
// the HTTP server down within ShutdownTimeout.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	h := s.opts.HTTP
	srv := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: h.HTTPReadHeaderTimeout,
		ReadTimeout:       h.HTTPReadTimeout,
		WriteTimeout:      h.HTTPWriteTimeout,
		IdleTimeout:       h.HTTPIdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(s.listener) }()
	s.log.Info("http server listening", "addr", s.Addr())
	select {
	case err := <-errc:
		return fmt.Errorf("serve HTTP on %s: %w", s.Addr(), err)
	case <-ctx.Done():
	}
	s.SetReady(false)
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down HTTP server: %w", err)
	}
	return nil
}

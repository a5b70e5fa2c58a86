// Package service is the runtime every driftwatch service shares: an HTTP
// server with /healthz, /readyz and /metrics (from a registry of the
// service's own), readiness checks, and a graceful shutdown bounded by a
// timeout. It holds no globals, so a test can start two services in one
// process.
//
// Metrics registered by the runtime itself (besides the Go and process
// collectors):
//
//	driftwatch_build_info{service,version,goversion}  gauge, always 1
//	driftwatch_service_ready{service}                 gauge, 1 while /readyz answers 200
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
}

// Server is the service's HTTP front: health, readiness, metrics and
// whatever API handlers the service mounts.
type Server struct {
	opts     Options
	log      *slog.Logger
	mux      *http.ServeMux
	ready    atomic.Bool
	readyG   prometheus.Gauge
	mu       sync.Mutex
	checks   map[string]Check
	listener net.Listener
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
	s := &Server{opts: opts, log: opts.Logger, mux: http.NewServeMux(), checks: map[string]Check{}}
	reg := opts.Registry
	if err := registerDefaultCollectors(reg); err != nil {
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
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	s.mux.HandleFunc("GET /readyz", s.serveReady)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, EnableOpenMetrics: true}))
	return s, nil
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

// Handle mounts an API handler; patterns follow net/http.ServeMux.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// AddCheck adds a named readiness check, evaluated on every /readyz.
func (s *Server) AddCheck(name string, c Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks[name] = c
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

// Ready evaluates readiness as /readyz does and returns the failures.
func (s *Server) Ready(ctx context.Context) error {
	if !s.ready.Load() {
		return errors.New("not started or shutting down")
	}
	s.mu.Lock()
	names := make([]string, 0, len(s.checks))
	for n := range s.checks {
		names = append(names, n)
	}
	checks := make(map[string]Check, len(s.checks))
	for n, c := range s.checks {
		checks[n] = c
	}
	s.mu.Unlock()
	sort.Strings(names)
	var errs []error
	for _, n := range names {
		cctx, cancel := context.WithTimeout(ctx, s.opts.CheckTimeout)
		err := checks[n](cctx)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n, err))
		}
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
	srv := &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
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

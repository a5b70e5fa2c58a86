// Package chserver serves the ClickHouse HTTP interface over the ClickHouse
// engine embedded through libchdb (package chdb), so clickhouse-go/v2 with
// Protocol HTTP, curl and other HTTP clients work against it as against a
// ClickHouse server.
//
// Requests follow ClickHouse's HTTP semantics: the query comes from the
// `query` URL parameter and/or the body (concatenated; for an INSERT the
// body is the data), `database`, `default_format`, `query_id`,
// `client_protocol_version`, `param_<name>` query parameters and any
// ClickHouse setting are taken from URL parameters. Native output is
// re-encoded for the client's protocol revision. INSERT data is streamed
// into the engine chunk by chunk, never held whole in memory.
//
// A client cannot hold the server up: its headers must arrive within
// ReadHeaderTimeout (10 s), each read of its body within ReceiveTimeout
// and each MiB of its answer be taken within SendTimeout (30 s each, as
// ClickHouse's http_receive_timeout and http_send_timeout), and an idle
// keep-alive connection is closed after IdleTimeout (120 s). A SELECT sent
// with cancel_http_readonly_queries_on_client_close=1 is stopped (KILL
// QUERY) when its client closes the connection, as ClickHouse does.
//
// The server is safe to leave running on a developer's machine (see
// guard.go): a request from a web page whose Origin is not allowed is
// refused, a GET only reads, table functions and engines that reach the
// file system or the network are refused (file() reaches only DataPath and
// FileDirs), and a non-loopback address needs a password. With
// TLSCertFile and TLSKeyFile it serves HTTPS, and with TLSClientCAFile
// requires client certificates.
//
// Metrics (registered on Options.Registerer):
//
//	driftwatch_clickhouse_embedded_requests_total{kind,outcome}   requests by statement kind
//	    (select, insert, other, ping) and outcome (ok, error, unauthorized, forbidden,
//	    too_large, bad_request, panic)
//	driftwatch_clickhouse_embedded_request_duration_seconds{kind} request latency
//	driftwatch_clickhouse_embedded_inserted_rows_total            rows written by INSERTs
//	driftwatch_clickhouse_embedded_cancelled_queries_total        queries stopped because their client went away
package chserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/driftwatch/driftwatch/internal/chdb"
)

// DefaultMaxBodyBytes is the request body limit when Options.MaxBodyBytes
// is zero.
const DefaultMaxBodyBytes int64 = 4 << 30

// Options configures a Server.
type Options struct {
	// Addr is the HTTP listen address, e.g. 127.0.0.1:8123.
	Addr string
	// LibPath is the path of libchdb.so; DataPath the engine's data
	// directory. Both are ignored when Engine is set.
	LibPath, DataPath string
	// Sessions is the number of engine sessions (parallel queries); 0
	// means 4.
	Sessions int
	// User and Password are the one account the server accepts. A
	// password is required when Addr is not a loopback address.
	User, Password string
	// AllowedOrigins are the values of the Origin header a request may
	// carry (e.g. https://grafana.example:3000); a request with any other
	// Origin is refused with 403. Empty: only requests without Origin,
	// i.e. not sent by a web page.
	AllowedOrigins []string
	// TLSCertFile and TLSKeyFile, set together, make the server speak
	// HTTPS only; TLSClientCAFile then requires every client to present a
	// certificate that CA signed.
	TLSCertFile, TLSKeyFile, TLSClientCAFile string
	// FileDirs are directories besides DataPath that file() may read and
	// write (the engine's user_files_path, which clickhouse-local does not
	// enforce); every other path, and every other table function that
	// reaches outside the engine, is refused.
	FileDirs []string
	// MaxBodyBytes limits request bodies; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Logger receives the server's logs; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the server's metrics; nil means none.
	Registerer prometheus.Registerer
	// Gatherer, when set, is served on /metrics.
	Gatherer prometheus.Gatherer
	// OnListen, when set, is called with the bound address once the
	// server accepts connections.
	OnListen func(addr net.Addr)
	// Engine replaces libchdb, for tests of the HTTP layer.
	Engine Engine
	// ShutdownTimeout bounds the drain of in-flight requests; 0 means 30s.
	ShutdownTimeout time.Duration
	// ReadHeaderTimeout bounds the reading of a request's headers;
	// ReceiveTimeout each read of its body, SendTimeout each MiB of its
	// answer, IdleTimeout the wait of a keep-alive connection for its
	// next request. 0 means the Default… constant.
	ReadHeaderTimeout, ReceiveTimeout, SendTimeout, IdleTimeout time.Duration
}

// Validate reports every problem with the options at once.
func (o Options) Validate() error {
	var errs []error
	if o.Addr == "" {
		errs = append(errs, errors.New("listen address (Addr) is empty"))
	}
	if o.Engine == nil && o.LibPath == "" {
		errs = append(errs, errors.New("libchdb path (LibPath) is empty: run `make deps`, or set -lib / CHDB_LIB_PATH"))
	}
	if o.User == "" {
		errs = append(errs, errors.New("user name (User) is empty"))
	}
	if o.Addr != "" && !loopback(o.Addr) && o.Password == "" {
		errs = append(errs, fmt.Errorf("listen address %s is not a loopback address and no password is set: set -password (or DRIFTWATCH_CLICKHOUSE_EMBEDDED_PASSWORD), or listen on 127.0.0.1", o.Addr))
	}
	for _, origin := range o.AllowedOrigins {
		if u, err := url.Parse(origin); err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			errs = append(errs, fmt.Errorf("allowed origin %q is not scheme://host[:port]", origin))
		}
	}
	if (o.TLSCertFile == "") != (o.TLSKeyFile == "") {
		errs = append(errs, errors.New("TLS certificate (TLSCertFile) and key (TLSKeyFile) go together: set both or neither"))
	}
	if o.TLSClientCAFile != "" && o.TLSCertFile == "" {
		errs = append(errs, errors.New("a client CA (TLSClientCAFile) needs HTTPS: set TLSCertFile and TLSKeyFile too"))
	}
	if o.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("body limit (MaxBodyBytes) %d is negative", o.MaxBodyBytes))
	}
	if o.Sessions < 0 {
		errs = append(errs, fmt.Errorf("session count (Sessions) %d is negative", o.Sessions))
	}
	if o.ReadHeaderTimeout < 0 || o.ReceiveTimeout < 0 || o.SendTimeout < 0 || o.IdleTimeout < 0 {
		errs = append(errs, fmt.Errorf("a timeout is negative: read header %s, receive %s, send %s, idle %s", o.ReadHeaderTimeout, o.ReceiveTimeout, o.SendTimeout, o.IdleTimeout))
	}
	return errors.Join(errs...)
}

// Engine runs SQL for the server: libchdb in production, a fake in tests.
type Engine interface {
	// Acquire takes a session for one request; Release hands it back,
	// broken when its state could not be restored.
	Acquire(ctx context.Context) (Session, error)
	Release(s Session, broken bool)
	Close() error
}

// Session is one engine session: it runs one statement at a time and
// keeps its current database and settings between statements.
type Session interface {
	Query(sql, format string, params map[string]string) (*chdb.Result, error)
	StreamInsert(insert, format string) (Inserter, error)
}

// Inserter receives the data of a streaming INSERT.
type Inserter interface {
	io.Writer
	Done() (*chdb.Result, error)
	Cancel()
}

// Server is the embedded ClickHouse HTTP server.
type Server struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics

	mu       sync.Mutex
	engine   Engine
	settings map[string]bool    // valid setting names; nil accepts all
	sessDB   map[Session]string // current database of each session
	timezone string
	// httpCompression is the engine's value of enable_http_compression,
	// what a request that does not set it gets: chDB's default is 1
	// (ClickHouse server's is 0), and clients such as clickhouse-connect
	// read it from system.settings and then only send Accept-Encoding.
	httpCompression bool
	fileDirs        []string // absolute: DataPath, then Options.FileDirs
}

// New validates opts and returns a server; the engine is loaded by Run.
func New(opts Options) (*Server, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("clickhouse-embedded options: %w", err)
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.Sessions == 0 {
		opts.Sessions = 4
	}
	if opts.ShutdownTimeout == 0 {
		opts.ShutdownTimeout = 30 * time.Second
	}
	for _, t := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&opts.ReadHeaderTimeout, DefaultReadHeaderTimeout}, {&opts.ReceiveTimeout, DefaultReceiveTimeout},
		{&opts.SendTimeout, DefaultSendTimeout}, {&opts.IdleTimeout, DefaultIdleTimeout},
	} {
		if *t.v == 0 {
			*t.v = t.def
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	var fileDirs []string
	for _, d := range append([]string{opts.DataPath}, opts.FileDirs...) {
		if d == "" {
			continue
		}
		abs, err := filepath.Abs(d)
		if err != nil {
			return nil, fmt.Errorf("clickhouse-embedded options: resolve directory %s: %w", d, err)
		}
		fileDirs = append(fileDirs, abs)
	}
	s := &Server{
		fileDirs: fileDirs,
		opts:     opts,
		log:      log,
		metrics:  newMetrics(opts.Registerer),
		engine:   opts.Engine,
		sessDB:   map[Session]string{},
		timezone: "UTC",
	}
	return s, nil
}

// Run listens on Options.Addr, loads the engine, and serves until ctx ends;
// then it drains in-flight requests and closes the engine, which flushes
// its data to Options.DataPath.
func (s *Server) Run(ctx context.Context) error {
	// Listen before loading the engine: a taken port fails in
	// milliseconds instead of after booting ClickHouse.
	tc, err := s.tlsConfig()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s (is another server using that address? choose one with -http): %w", s.opts.Addr, err)
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	defer ln.Close()

	if s.engine == nil {
		// One session more than Sessions: the killer's, outside the pool.
		conn, err := chdb.Open(chdb.Options{LibPath: s.opts.LibPath, DataPath: s.opts.DataPath, Sessions: s.opts.Sessions + 1})
		if err != nil {
			return fmt.Errorf("start embedded ClickHouse: %w", err)
		}
		ctl, err := conn.Session(ctx)
		if err != nil {
			_ = conn.Close()
			return fmt.Errorf("start embedded ClickHouse: take the session for KILL QUERY: %w", err)
		}
		s.engine = &chdbEngine{conn: conn, ctl: ctl, chdbKiller: chdbKiller{sess: chdbSession{ctl}}}
	}
	defer func() {
		if err := s.engine.Close(); err != nil {
			s.log.Error("close engine", "err", err)
		}
	}()
	if err := s.loadServerInfo(ctx); err != nil {
		return err
	}

	// No ReadTimeout or WriteTimeout for the whole request: Handler
	// bounds each read and write instead (see withDeadlines).
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
		IdleTimeout:       s.opts.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("clickhouse-embedded listening", "http", ln.Addr().String(), "tls", tc != nil,
		"client_certificates", s.opts.TLSClientCAFile != "", "path", s.opts.DataPath)
	if s.opts.OnListen != nil {
		s.opts.OnListen(ln.Addr())
	}

	select {
	case err := <-errc:
		return fmt.Errorf("serve HTTP on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	s.log.Info("clickhouse-embedded shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("drain HTTP requests: %w", err)
	}
	return nil
}

// tlsConfig loads the server's certificate and client CA; nil without
// TLS.
func (s *Server) tlsConfig() (*tls.Config, error) {
	if s.opts.TLSCertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(s.opts.TLSCertFile, s.opts.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate %s and key %s (-tls-cert, -tls-key): %w", s.opts.TLSCertFile, s.opts.TLSKeyFile, err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if s.opts.TLSClientCAFile != "" {
		pem, err := os.ReadFile(s.opts.TLSClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("read TLS client CA (-tls-client-ca): %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS client CA %s (-tls-client-ca) holds no PEM certificate", s.opts.TLSClientCAFile)
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// loadServerInfo asks the engine which settings exist, so URL parameters
// can be told apart from settings, and for its time zone.
func (s *Server) loadServerInfo(ctx context.Context) error {
	sess, err := s.engine.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire engine session: %w", err)
	}
	defer s.engine.Release(sess, false)
	res, err := sess.Query("SELECT name FROM system.settings", "TabSeparated", nil)
	if err != nil {
		return fmt.Errorf("list engine settings: %w", err)
	}
	names := map[string]bool{}
	for _, line := range splitLines(string(res.Data)) {
		names[line] = true
	}
	tz, err := sess.Query("SELECT timezone()", "TabSeparated", nil)
	if err != nil {
		return fmt.Errorf("query engine time zone: %w", err)
	}
	comp, err := sess.Query("SELECT value FROM system.settings WHERE name = 'enable_http_compression'", "TabSeparated", nil)
	if err != nil {
		return fmt.Errorf("query engine enable_http_compression: %w", err)
	}
	s.mu.Lock()
	if len(names) > 0 {
		s.settings = names
	}
	if lines := splitLines(string(tz.Data)); len(lines) == 1 {
		s.timezone = lines[0]
	}
	s.httpCompression = truthy(strings.TrimSpace(string(comp.Data)))
	s.mu.Unlock()
	return nil
}

// Handler returns the HTTP handler; Run serves it. It needs the engine, so
// outside Run it works only with Options.Engine set.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/ping", s.ping)
	if s.opts.Gatherer != nil {
		mux.Handle("/metrics", promhttp.HandlerFor(s.opts.Gatherer, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("/", s.serveQuery)
	return s.withDeadlines(s.checkOrigin(mux))
}

// checkOrigin refuses, before anything else, a request sent by a web page
// whose origin is not allowed.
func (s *Server) checkOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.originAllowed(r) {
			s.metrics.requests.WithLabelValues("other", "forbidden").Inc()
			s.log.Warn("refused a request from a web page", "origin", r.Header.Get("Origin"), "method", r.Method)
			writeError(w, errorf(http.StatusForbidden, codeAccessDenied,
				"requests from origin %q are refused (not on -allowed-origins). (ACCESS_DENIED)", r.Header.Get("Origin")))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) ping(w http.ResponseWriter, _ *http.Request) {
	s.metrics.requests.WithLabelValues("ping", "ok").Inc()
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	_, _ = io.WriteString(w, "Ok.\n")
}

// chdbEngine adapts *chdb.Conn to Engine; its killer runs on ctl, a
// session taken out of the pool for good.
type chdbEngine struct {
	conn *chdb.Conn
	ctl  *chdb.Session
	chdbKiller
}

func (e *chdbEngine) Acquire(ctx context.Context) (Session, error) {
	s, err := e.conn.Session(ctx)
	if err != nil {
		return nil, err
	}
	return chdbSession{s}, nil
}

func (e *chdbEngine) Release(s Session, broken bool) { e.conn.Release(s.(chdbSession).s, broken) }
func (e *chdbEngine) Close() error {
	// A request still running after the shutdown's drain may yet try a
	// kill: it must not reach a closed session.
	e.chdbKiller.mu.Lock()
	e.closed = true
	e.chdbKiller.mu.Unlock()
	e.conn.Release(e.ctl, false) // Close waits for every session taken
	return e.conn.Close()
}

type chdbSession struct{ s *chdb.Session }

func (c chdbSession) Query(sql, format string, params map[string]string) (*chdb.Result, error) {
	return c.s.QueryParams(sql, format, params)
}

func (c chdbSession) StreamInsert(insert, format string) (Inserter, error) {
	return c.s.StreamInsert(insert, format)
}

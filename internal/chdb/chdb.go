// Package chdb is a thin binding over libchdb, the ClickHouse engine built as
// a shared library, loaded at run time with purego so that binaries built
// with this package start (and report a clear error) on machines without the
// library. Nothing is loaded until Open is called.
//
// libchdb runs one engine per process with one storage path. Open may be
// called once per process for a given path; a second Open with a different
// path fails. A Conn holds a small pool of engine sessions (chdb
// connections), so independent queries run in parallel; every session runs
// one statement at a time.
package chdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// ErrLibraryNotFound is returned by Open when libchdb.so does not exist at
// the given path.
var ErrLibraryNotFound = errors.New("libchdb not found")

// ErrClosed is returned by Query after Close.
var ErrClosed = errors.New("chdb connection is closed")

// Error is a ClickHouse exception reported by the engine.
type Error struct {
	// Code is the ClickHouse error code parsed from "Code: N." in the
	// message, or 0 when the message carries none.
	Code int
	// Message is the engine's message, unchanged.
	Message string
}

func (e *Error) Error() string { return e.Message }

var codeRe = regexp.MustCompile(`Code: (\d+)\.`)

// parseError builds an *Error from an engine message.
func parseError(msg string) *Error {
	e := &Error{Message: msg}
	if m := codeRe.FindStringSubmatch(msg); m != nil {
		e.Code, _ = strconv.Atoi(m[1])
	}
	return e
}

// lib holds the resolved libchdb entry points.
type lib struct {
	handle                uintptr
	version               func() string
	setSignalHandlers     func(enabled int32)
	connect               func(argc int32, argv **byte) unsafe.Pointer
	closeConn             func(conn unsafe.Pointer)
	queryN                func(conn, q unsafe.Pointer, qlen uintptr, f unsafe.Pointer, flen uintptr) unsafe.Pointer
	resultBuffer          func(res unsafe.Pointer) unsafe.Pointer
	resultLength          func(res unsafe.Pointer) uintptr
	resultError           func(res unsafe.Pointer) unsafe.Pointer
	resultRowsRead        func(res unsafe.Pointer) uint64
	resultRowsWritten     func(res unsafe.Pointer) uint64
	destroyQueryResult    func(res unsafe.Pointer)
	queryParamsN          func(conn, q unsafe.Pointer, qlen uintptr, f unsafe.Pointer, flen uintptr, names, nameLens, values, valueLens unsafe.Pointer, count uintptr) unsafe.Pointer
	streamInsertN         func(conn, q unsafe.Pointer, qlen uintptr, f unsafe.Pointer, flen uintptr) unsafe.Pointer
	streamInsertError     func(st unsafe.Pointer) unsafe.Pointer
	streamAppend          func(st, data unsafe.Pointer, n uintptr) int32
	streamDone            func(st unsafe.Pointer) unsafe.Pointer
	streamCancelInsert    func(st unsafe.Pointer)
	destroyInsertStream   func(st unsafe.Pointer)
	mu                    sync.Mutex
	openPath              string
	openCount             int
	signalHandlersDisable sync.Once
}

var (
	libsMu sync.Mutex
	// libs caches loaded libraries by path: dlopen of the same file returns
	// the same handle, and the engine inside is per process, so the binding
	// must be too. This is process state by nature, not configuration.
	libs = map[string]*lib{}
)

func loadLib(path string) (*lib, error) {
	libsMu.Lock()
	defer libsMu.Unlock()
	if l, ok := libs[path]; ok {
		return l, nil
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("load libchdb from %s: %w (run `make deps`, or point -lib / CHDB_LIB_PATH at libchdb.so): %v", path, ErrLibraryNotFound, err)
	}
	h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return nil, fmt.Errorf("dlopen libchdb %s: %w", path, err)
	}
	l := &lib{handle: h}
	syms := []struct {
		fn   any
		name string
	}{
		{&l.version, "chdb_version"},
		{&l.setSignalHandlers, "chdb_set_signal_handlers_enabled"},
		{&l.connect, "chdb_connect"},
		{&l.closeConn, "chdb_close_conn"},
		{&l.queryN, "chdb_query_n"},
		{&l.resultBuffer, "chdb_result_buffer"},
		{&l.resultLength, "chdb_result_length"},
		{&l.resultError, "chdb_result_error"},
		{&l.resultRowsRead, "chdb_result_rows_read"},
		{&l.resultRowsWritten, "chdb_result_rows_written"},
		{&l.destroyQueryResult, "chdb_destroy_query_result"},
		{&l.queryParamsN, "chdb_query_with_params_n"},
		{&l.streamInsertN, "chdb_stream_insert_n"},
		{&l.streamInsertError, "chdb_stream_insert_error"},
		{&l.streamAppend, "chdb_stream_append"},
		{&l.streamDone, "chdb_stream_done"},
		{&l.streamCancelInsert, "chdb_stream_cancel_insert"},
		{&l.destroyInsertStream, "chdb_destroy_insert_stream"},
	}
	for _, s := range syms {
		if _, err := purego.Dlsym(h, s.name); err != nil {
			return nil, fmt.Errorf("resolve %s in %s (libchdb too old? run `make deps`): %w", s.name, path, err)
		}
		purego.RegisterLibFunc(s.fn, h, s.name)
	}
	libs[path] = l
	return l, nil
}

// Options configures Open.
type Options struct {
	// LibPath is the path of libchdb.so.
	LibPath string
	// DataPath is the engine's data directory; created if missing. Empty
	// means in memory.
	DataPath string
	// Sessions is the number of engine sessions queries run on in
	// parallel; 0 means 4.
	Sessions int
}

// Conn is an open engine with a pool of sessions. It is safe for concurrent
// use.
type Conn struct {
	lib      *lib
	pool     chan *Session
	allMu    sync.Mutex
	all      []*Session
	closeMu  sync.RWMutex
	closed   bool
	dataPath string
	args     []string
}

// Session is one libchdb connection. Session state (current database,
// SET settings) persists between statements, so callers that change it
// must reset it before returning the session (see Conn.Session).
type Session struct {
	lib *lib
	ptr unsafe.Pointer // chdb_connection* as returned by chdb_connect
}

// Open loads libchdb from libPath and boots the engine on dataPath.
func Open(opts Options) (*Conn, error) {
	if opts.LibPath == "" {
		return nil, fmt.Errorf("open chdb: library path is empty (run `make deps`, or set -lib / CHDB_LIB_PATH)")
	}
	l, err := loadLib(opts.LibPath)
	if err != nil {
		return nil, err
	}
	if opts.Sessions <= 0 {
		opts.Sessions = 4
	}
	args := []string{"clickhouse"}
	if opts.DataPath != "" {
		if err := os.MkdirAll(opts.DataPath, 0o755); err != nil {
			return nil, fmt.Errorf("create chdb data directory %s: %w", opts.DataPath, err)
		}
		args = append(args, "--path="+opts.DataPath)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.openCount > 0 && l.openPath != opts.DataPath {
		return nil, fmt.Errorf("open chdb on %s: engine already open on %s in this process", opts.DataPath, l.openPath)
	}
	// The Go runtime owns SIGSEGV, SIGURG and friends; the engine's own
	// handlers would break goroutine preemption and nil-pointer panics.
	l.signalHandlersDisable.Do(func() { l.setSignalHandlers(0) })

	c := &Conn{lib: l, pool: make(chan *Session, opts.Sessions), dataPath: opts.DataPath, args: args}
	for i := 0; i < opts.Sessions; i++ {
		s, err := l.newSession(args)
		if err != nil {
			for _, s := range c.all {
				l.closeConn(s.ptr)
			}
			return nil, fmt.Errorf("open chdb on %q: %w", opts.DataPath, err)
		}
		c.all = append(c.all, s)
		c.pool <- s
	}
	l.openCount++
	l.openPath = opts.DataPath
	return c, nil
}

func (l *lib) newSession(args []string) (*Session, error) {
	cargs := make([][]byte, len(args))
	argv := make([]*byte, len(args)+1)
	for i, a := range args {
		cargs[i] = append([]byte(a), 0)
		argv[i] = &cargs[i][0]
	}
	ptr := l.connect(int32(len(args)), &argv[0])
	if ptr == nil || *(*unsafe.Pointer)(ptr) == nil {
		return nil, errors.New("chdb_connect returned no connection (is the data directory locked by another process?)")
	}
	return &Session{lib: l, ptr: ptr}, nil
}

// Version reports the engine's version string.
func (c *Conn) Version() string { return c.lib.version() }

// Result is the output of one query.
type Result struct {
	// Data is the formatted output.
	Data []byte
	// RowsRead and RowsWritten are the engine's progress counters.
	RowsRead, RowsWritten uint64
}

// Query runs sql (one or more statements separated by ';') on a free
// session and returns its output in format (the default output format; a
// FORMAT clause in sql wins). The engine cannot be interrupted mid-query:
// ctx bounds only the wait for a free session.
func (c *Conn) Query(ctx context.Context, sql, format string) (*Result, error) {
	s, err := c.Session(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Release(s, false)
	return s.Query(sql, format)
}

// Session takes a session out of the pool for a sequence of statements that
// share session state. The caller must hand it back with Release.
func (c *Conn) Session(ctx context.Context) (*Session, error) {
	c.closeMu.RLock()
	if c.closed {
		c.closeMu.RUnlock()
		return nil, ErrClosed
	}
	select {
	case s := <-c.pool:
		return s, nil
	case <-ctx.Done():
		c.closeMu.RUnlock()
		return nil, fmt.Errorf("wait for a free chdb session: %w", ctx.Err())
	}
}

// Release returns a session taken with Session. A caller that could not
// restore the session's state (database, settings) passes broken, and the
// session is replaced by a fresh one.
func (c *Conn) Release(s *Session, broken bool) {
	defer c.closeMu.RUnlock()
	if broken {
		if fresh, err := c.lib.newSession(c.args); err == nil {
			c.lib.closeConn(s.ptr)
			c.allMu.Lock()
			for i := range c.all {
				if c.all[i] == s {
					c.all[i] = fresh
				}
			}
			c.allMu.Unlock()
			s = fresh
		}
	}
	c.pool <- s
}

// Query runs sql on this session.
func (s *Session) Query(sql, format string) (*Result, error) {
	return s.QueryParams(sql, format, nil)
}

// bytesPtr returns a pointer to b's first byte, or to a zero byte when b is
// empty, so the engine never sees a nil buffer.
func bytesPtr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return unsafe.Pointer(new(byte))
	}
	return unsafe.Pointer(&b[0])
}

// QueryParams runs sql on this session with server-side bound query
// parameters: {name:Type} placeholders take their values from params.
func (s *Session) QueryParams(sql, format string, params map[string]string) (*Result, error) {
	l := s.lib
	conn := *(*unsafe.Pointer)(s.ptr)
	q := []byte(sql)
	f := []byte(format)
	var res unsafe.Pointer
	if len(params) == 0 {
		res = l.queryN(conn, bytesPtr(q), uintptr(len(q)), bytesPtr(f), uintptr(len(f)))
	} else {
		// The engine reads these arrays during the call only; the Go
		// slices stay reachable until it returns.
		keep := make([][]byte, 0, 2*len(params))
		names := make([]unsafe.Pointer, 0, len(params))
		values := make([]unsafe.Pointer, 0, len(params))
		nameLens := make([]uintptr, 0, len(params))
		valueLens := make([]uintptr, 0, len(params))
		for k, v := range params {
			kb, vb := []byte(k), []byte(v)
			keep = append(keep, kb, vb)
			names = append(names, bytesPtr(kb))
			nameLens = append(nameLens, uintptr(len(kb)))
			values = append(values, bytesPtr(vb))
			valueLens = append(valueLens, uintptr(len(vb)))
		}
		res = l.queryParamsN(conn, bytesPtr(q), uintptr(len(q)), bytesPtr(f), uintptr(len(f)),
			unsafe.Pointer(&names[0]), unsafe.Pointer(&nameLens[0]),
			unsafe.Pointer(&values[0]), unsafe.Pointer(&valueLens[0]), uintptr(len(params)))
		runtime.KeepAlive(keep)
	}
	runtime.KeepAlive(q)
	runtime.KeepAlive(f)
	return l.takeResult(res, "chdb_query_n")
}

// takeResult converts and frees an engine result.
func (l *lib) takeResult(res unsafe.Pointer, what string) (*Result, error) {
	if res == nil {
		return nil, fmt.Errorf("%s returned no result", what)
	}
	defer l.destroyQueryResult(res)
	if e := l.resultError(res); e != nil {
		return nil, parseError(goString(e))
	}
	out := &Result{RowsRead: l.resultRowsRead(res), RowsWritten: l.resultRowsWritten(res)}
	if n := l.resultLength(res); n > 0 {
		buf := l.resultBuffer(res)
		out.Data = make([]byte, n)
		copy(out.Data, unsafe.Slice((*byte)(buf), n))
	}
	return out, nil
}

// InsertStream is a streaming INSERT: data written to it is parsed in the
// stream's format and inserted when Done is called. The session accepts no
// other statement until Done or Cancel.
type InsertStream struct {
	lib *lib
	st  unsafe.Pointer
}

// StreamInsert begins an INSERT (a statement without FORMAT clause or data,
// e.g. "INSERT INTO t (a, b)") whose data arrives through Write in format.
func (s *Session) StreamInsert(insert, format string) (*InsertStream, error) {
	l := s.lib
	conn := *(*unsafe.Pointer)(s.ptr)
	q := []byte(insert)
	f := []byte(format)
	st := l.streamInsertN(conn, bytesPtr(q), uintptr(len(q)), bytesPtr(f), uintptr(len(f)))
	runtime.KeepAlive(q)
	runtime.KeepAlive(f)
	if st == nil {
		return nil, errors.New("chdb_stream_insert_n returned no stream")
	}
	if e := l.streamInsertError(st); e != nil {
		msg := goString(e)
		l.destroyInsertStream(st)
		return nil, parseError(msg)
	}
	return &InsertStream{lib: l, st: st}, nil
}

// Write appends one chunk of format-encoded data.
func (w *InsertStream) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	state := w.lib.streamAppend(w.st, unsafe.Pointer(&p[0]), uintptr(len(p)))
	runtime.KeepAlive(p)
	if state != 0 {
		if e := w.lib.streamInsertError(w.st); e != nil {
			return 0, parseError(goString(e))
		}
		return 0, errors.New("chdb_stream_append failed")
	}
	return len(p), nil
}

// Done ends the input, commits the insert and frees the stream.
func (w *InsertStream) Done() (*Result, error) {
	defer w.lib.destroyInsertStream(w.st)
	return w.lib.takeResult(w.lib.streamDone(w.st), "chdb_stream_done")
}

// Cancel aborts the insert and frees the stream.
func (w *InsertStream) Cancel() {
	w.lib.streamCancelInsert(w.st)
	w.lib.destroyInsertStream(w.st)
}

func goString(p unsafe.Pointer) string {
	if p == nil {
		return ""
	}
	n := 0
	for *(*byte)(unsafe.Add(p, n)) != 0 {
		n++
	}
	return string(unsafe.Slice((*byte)(p), n))
}

// Close waits for running queries and closes every session, which shuts the
// engine down and flushes its data. The engine can then be reopened on the
// same path only.
func (c *Conn) Close() error {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	for _, s := range c.all {
		c.lib.closeConn(s.ptr)
	}
	c.lib.mu.Lock()
	c.lib.openCount--
	c.lib.mu.Unlock()
	return nil
}

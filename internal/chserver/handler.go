package chserver

import (
	"bufio"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	chcompress "github.com/ClickHouse/ch-go/compress"

	"github.com/driftwatch/driftwatch/internal/chdb"
)

// maxQueryBytes bounds the query text read from a body before its data
// begins (ClickHouse's max_query_size is 256 KiB).
const maxQueryBytes = 1 << 20

// insertChunk is how much INSERT data is handed to the engine per call.
const insertChunk = 1 << 20

// ClickHouse error codes the HTTP layer reports itself.
const (
	codeSyntaxError          = 62
	codeUnknownFormat        = 73
	codeQueryTooLarge        = 369 // TOO_LARGE_STRING_SIZE stands in; ClickHouse has no exact code
	codeCannotParseInput     = 27
	codeUnknownCompression   = 438
	codeCannotDecompress     = 271
	codeAuthenticationFailed = 516
	codeStdException         = 1001
)

// httpError is a failure with the HTTP status and ClickHouse code to send.
type httpError struct {
	status int
	code   int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errorf(status, code int, format string, args ...any) *httpError {
	return &httpError{status: status, code: code, msg: fmt.Sprintf("Code: %d. DB::Exception: "+format, append([]any{code}, args...)...)}
}

// httpOnlyParams are URL parameters of the HTTP interface (and of
// clickhouse-go) that are not settings.
var httpOnlyParams = map[string]bool{
	"query": true, "database": true, "default_format": true, "query_id": true,
	"client_protocol_version": true, "quota_key": true, "user": true, "password": true,
	"compress": true, "decompress": true, "session_id": true, "session_timeout": true,
	"session_check": true, "buffer_size": true, "wait_end_of_query": true,
	"stacktrace": true, "role": true, "http_response_headers": true,
}

var settingNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)

// request is a parsed HTTP query request.
type request struct {
	query      string            // statement text (without INSERT data)
	stmt       statement         // what query is
	data       io.Reader         // INSERT data, nil otherwise
	database   string            // database to run in
	format     string            // default output format
	queryID    string            // X-ClickHouse-Query-Id
	clientRev  uint64            // client_protocol_version
	settings   [][2]string       // settings to SET for this request
	params     map[string]string // param_<name> query parameters
	compress   bool              // compress=1: ClickHouse-compressed response
	compMethod chcompress.Method // its method
	encoding   string            // HTTP Content-Encoding for the response
}

func (s *Server) serveQuery(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	kind := "other"
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("request panicked", "panic", p)
			s.metrics.requests.WithLabelValues(kind, "panic").Inc()
			writeError(w, errorf(http.StatusInternalServerError, codeStdException, "internal error in clickhouse-embedded: %v", p))
		}
		s.metrics.duration.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	}()

	q := r.URL.Query()
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.URL.Path == "/" && !q.Has("query") {
		s.metrics.requests.WithLabelValues("ping", "ok").Inc()
		_, _ = io.WriteString(w, "Ok.\n")
		return
	}
	if r.URL.Path != "/" {
		s.metrics.requests.WithLabelValues(kind, "bad_request").Inc()
		writeError(w, errorf(http.StatusNotFound, codeStdException, "there is no handler for %s", r.URL.Path))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		s.metrics.requests.WithLabelValues(kind, "bad_request").Inc()
		writeError(w, errorf(http.StatusMethodNotAllowed, codeStdException, "method %s is not supported", r.Method))
		return
	}
	if !s.authenticate(r, q) {
		s.metrics.requests.WithLabelValues(kind, "unauthorized").Inc()
		writeError(w, errorf(http.StatusUnauthorized, codeAuthenticationFailed,
			"%s: Authentication failed: password is incorrect, or there is no user with such name. (AUTHENTICATION_FAILED)", userOf(r, q)))
		return
	}

	req, err := s.parseRequest(r, q)
	if err == nil {
		kind = kindLabel(req.stmt.kind)
		err = s.guard(r, req)
	}
	if err == nil {
		err = s.execute(w, r, req)
	}
	if err != nil {
		outcome := "error"
		var he *httpError
		var mbe *http.MaxBytesError
		var ce *chdb.Error
		switch {
		case errors.As(err, &mbe):
			outcome = "too_large"
			he = errorf(http.StatusRequestEntityTooLarge, codeQueryTooLarge, "request body is larger than %d bytes (-max-body-bytes)", mbe.Limit)
		case errors.As(err, &he):
			switch he.status {
			case http.StatusInternalServerError:
			case http.StatusForbidden:
				outcome = "forbidden"
			default:
				outcome = "bad_request"
			}
		case errors.As(err, &ce):
			code := ce.Code
			if code == 0 {
				code = codeStdException
			}
			he = &httpError{status: http.StatusInternalServerError, code: code, msg: ce.Message}
		default:
			he = &httpError{status: http.StatusInternalServerError, code: codeStdException, msg: fmt.Sprintf("Code: %d. DB::Exception: %v", codeStdException, err)}
		}
		s.metrics.requests.WithLabelValues(kind, outcome).Inc()
		s.log.Debug("query failed", "code", he.code, "err", he.msg)
		w.Header().Set("X-ClickHouse-Query-Id", req.queryID)
		writeError(w, he)
		return
	}
	s.metrics.requests.WithLabelValues(kind, "ok").Inc()
}

func kindLabel(k stmtKind) string {
	switch k {
	case kindSelect:
		return "select"
	case kindInsert, kindInsertSelect:
		return "insert"
	}
	return "other"
}

func writeError(w http.ResponseWriter, e *httpError) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=UTF-8")
	h.Set("X-ClickHouse-Exception-Code", strconv.Itoa(e.code))
	h.Del("Content-Encoding")
	w.WriteHeader(e.status)
	_, _ = io.WriteString(w, strings.TrimRight(e.msg, "\n")+"\n")
}

func userOf(r *http.Request, q url.Values) string {
	if u := r.Header.Get("X-ClickHouse-User"); u != "" {
		return u
	}
	if u, _, ok := r.BasicAuth(); ok {
		return u
	}
	if u := q.Get("user"); u != "" {
		return u
	}
	return "default"
}

// authenticate checks credentials from the X-ClickHouse-User/Key headers,
// basic auth or the user/password parameters, defaulting like ClickHouse
// to user "default" with an empty password.
func (s *Server) authenticate(r *http.Request, q url.Values) bool {
	user, pass := "default", ""
	switch {
	case r.Header.Get("X-ClickHouse-User") != "":
		user, pass = r.Header.Get("X-ClickHouse-User"), r.Header.Get("X-ClickHouse-Key")
	case r.Header.Get("Authorization") != "":
		u, p, ok := r.BasicAuth()
		if !ok {
			return false
		}
		user, pass = u, p
	case q.Has("user") || q.Has("password"):
		if q.Get("user") != "" {
			user = q.Get("user")
		}
		pass = q.Get("password")
	}
	okUser := subtle.ConstantTimeCompare([]byte(user), []byte(s.opts.User)) == 1
	okPass := subtle.ConstantTimeCompare([]byte(pass), []byte(s.opts.Password)) == 1
	return okUser && okPass
}

// parseRequest reads the statement and settings of r; for an INSERT, the
// body past the statement stays unread in req.data.
func (s *Server) parseRequest(r *http.Request, q url.Values) (*request, error) {
	req := &request{
		database: q.Get("database"),
		format:   q.Get("default_format"),
		queryID:  q.Get("query_id"),
		params:   map[string]string{},
	}
	if req.queryID == "" {
		req.queryID = newQueryID()
	}
	if req.database == "" {
		req.database = r.Header.Get("X-ClickHouse-Database")
	}
	if req.database == "" {
		req.database = "default"
	}
	if req.format == "" {
		req.format = r.Header.Get("X-ClickHouse-Format")
	}
	if req.format == "" {
		req.format = "TabSeparated"
	}
	if v := q.Get("client_protocol_version"); v != "" {
		rev, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return req, errorf(http.StatusBadRequest, codeCannotParseInput, "client_protocol_version %q is not a number", v)
		}
		req.clientRev = rev
	}
	if truthy(q.Get("compress")) {
		req.compress = true
		req.compMethod = chcompress.LZ4
		if m := q.Get("network_compression_method"); m != "" {
			method, err := chcompress.MethodString(strings.ToUpper(m))
			if err != nil || method == chcompress.None {
				return req, errorf(http.StatusBadRequest, codeUnknownCompression, "unknown network_compression_method %q (LZ4, LZ4HC and ZSTD are supported)", m)
			}
			req.compMethod = method
		}
	}
	s.mu.Lock()
	known, compressByDefault := s.settings, s.httpCompression
	s.mu.Unlock()
	// As in ClickHouse, the response is compressed when the effective
	// enable_http_compression is on and Accept-Encoding names an encoding.
	if q.Has("enable_http_compression") && truthy(q.Get("enable_http_compression")) ||
		!q.Has("enable_http_compression") && compressByDefault {
		req.encoding = pickEncoding(r.Header.Get("Accept-Encoding"))
	}
	for name, vals := range q {
		if len(vals) == 0 {
			continue
		}
		v := vals[len(vals)-1]
		switch {
		case strings.HasPrefix(name, "param_"):
			req.params[strings.TrimPrefix(name, "param_")] = v
		case httpOnlyParams[name]:
		case !settingNameRe.MatchString(name):
		case known != nil && !known[name]:
			// Not a setting this engine knows, e.g. an external table's
			// <name>_structure: ignored rather than failing the request.
			s.log.Debug("ignoring unknown URL parameter", "name", name)
		default:
			req.settings = append(req.settings, [2]string{name, v})
		}
	}

	body, err := decodeBody(r, q, s.opts.MaxBodyBytes)
	if err != nil {
		return req, err
	}
	if err := splitQuery(req, q.Get("query"), body); err != nil {
		return req, err
	}
	return req, nil
}

// splitQuery applies ClickHouse's rule: the query is the `query` parameter
// followed by the body; an INSERT's data starts after its FORMAT name (or
// VALUES) and runs to the end of the body.
func splitQuery(req *request, param string, body io.Reader) error {
	if param != "" {
		st := parseStatement(param)
		if st.kind == kindInsert && st.format != "" {
			req.query, req.stmt = param, st
			req.data = io.MultiReader(strings.NewReader(param[st.dataStart:]), body)
			return nil
		}
		if st.kind != kindInsert {
			rest, err := readAllLimited(body, maxQueryBytes)
			if err != nil {
				return err
			}
			req.query = param + rest
			req.stmt = parseStatement(req.query)
			return nil
		}
	}
	// The statement (or its end) is in the body: look at its beginning.
	br := bufio.NewReaderSize(body, maxQueryBytes)
	head, err := br.Peek(maxQueryBytes)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return fmt.Errorf("read request body: %w", err)
	}
	text := param + string(head)
	st := parseStatement(text)
	if st.kind == kindInsert {
		if st.format == "" {
			return errorf(http.StatusInternalServerError, codeSyntaxError, "INSERT has no FORMAT or VALUES clause before its data (or its statement is longer than %d bytes). (SYNTAX_ERROR)", maxQueryBytes)
		}
		if _, err := br.Discard(st.dataStart - len(param)); err != nil {
			return fmt.Errorf("skip INSERT statement in body: %w", err)
		}
		req.query, req.stmt, req.data = text[:st.dataStart], st, br
		return nil
	}
	if len(head) == maxQueryBytes {
		return errorf(http.StatusInternalServerError, codeQueryTooLarge, "query is longer than %d bytes. (QUERY_IS_TOO_LARGE)", maxQueryBytes)
	}
	req.query, req.stmt = text, st
	return nil
}

func readAllLimited(r io.Reader, limit int64) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return "", fmt.Errorf("read request body: %w", err)
	}
	if int64(len(b)) > limit {
		return "", errorf(http.StatusInternalServerError, codeQueryTooLarge, "query is longer than %d bytes. (QUERY_IS_TOO_LARGE)", limit)
	}
	return string(b), nil
}

// decodeBody limits the body and undoes its Content-Encoding and, with
// decompress=1, ClickHouse's own block compression.
func decodeBody(r *http.Request, q url.Values, limit int64) (io.Reader, error) {
	if r.ContentLength > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	var body io.Reader = http.MaxBytesReader(nil, r.Body, limit)
	body, err := decodeContent(body, r.Header.Get("Content-Encoding"), limit)
	if err != nil {
		return nil, err
	}
	if truthy(q.Get("decompress")) {
		body = chcompress.NewReader(body)
	}
	body = &endReader{r: body}
	// A decompression bomb must hit the limit too.
	return &limitedBody{r: body, left: limit, limit: limit}, nil
}

// endReader makes the end of a decoded body final: ch-go's block reader
// reports it as a wrapped io.EOF ("read next block: header: EOF") and, read
// again, serves its last block a second time, which bufio.Reader does
// after a Peek that met the end (the JDBC driver's decompress=1 INSERT was
// inserted twice).
type endReader struct {
	r   io.Reader
	err error
}

func (e *endReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.r.Read(p)
	if err != nil {
		if errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			err = io.EOF
		}
		e.err = err
	}
	return n, err
}

type limitedBody struct {
	r     io.Reader
	left  int64
	limit int64
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left <= 0 {
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n > 0 {
			return 0, &http.MaxBytesError{Limit: l.limit}
		}
		if err == nil {
			err = io.EOF
		}
		return 0, err
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

func truthy(v string) bool {
	switch strings.ToLower(v) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

func newQueryID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func splitLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// guard refuses a write sent with GET and a statement that reaches
// outside the engine's tables (see guard.go).
func (s *Server) guard(r *http.Request, req *request) error {
	if r.Method == http.MethodGet {
		if !readOnly(req.stmt) {
			return errorf(http.StatusForbidden, codeReadonly, "Cannot execute query in readonly mode: a GET request may only read; send writes with POST. (READONLY)")
		}
		// And the engine enforces it too, as ClickHouse does for GET:
		// readonly 2 (settings may change, data may not), or 1 when
		// asked; never 0.
		level := "2"
		kept := req.settings[:0]
		for _, kv := range req.settings {
			if kv[0] == "readonly" {
				if kv[1] == "1" {
					level = "1"
				}
				continue
			}
			kept = append(kept, kv)
		}
		req.settings = append(kept, [2]string{"readonly", level})
	}
	for _, kv := range req.settings {
		if fileSettings[kv[0]] {
			return errorf(http.StatusForbidden, codeAccessDenied, "the setting %s names a file, which the engine would read: clickhouse-embedded refuses it. (ACCESS_DENIED)", kv[0])
		}
	}
	if why := forbiddenSource(req.query, s.fileDirs); why != "" {
		s.log.Warn("refused a statement that reaches outside the data directory", "why", why)
		return errorf(http.StatusForbidden, codeAccessDenied, "%s: clickhouse-embedded refuses table functions, engines and clauses that reach the file system, the network or a program. (ACCESS_DENIED)", why)
	}
	return nil
}

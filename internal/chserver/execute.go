package chserver

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	chcompress "github.com/ClickHouse/ch-go/compress"

	"github.com/driftwatch/driftwatch/internal/chdb"
	"github.com/driftwatch/driftwatch/internal/chsql"
)

// execute runs req on an engine session and writes the response.
func (s *Server) execute(w http.ResponseWriter, r *http.Request, req *request) error {
	if req.stmt.multi {
		return errorf(http.StatusInternalServerError, codeSyntaxError, "Multi-statements are not allowed. (SYNTAX_ERROR)")
	}
	if req.stmt.kind == kindSessionOnly {
		// Without sessions, SET and USE over HTTP last for their own
		// request only, which is to say they change nothing.
		return s.respond(w, req, nil, "")
	}
	sess, err := s.engine.Acquire(r.Context())
	if err != nil {
		return fmt.Errorf("acquire engine session: %w", err)
	}
	broken := false
	defer func() { s.engine.Release(sess, broken) }()

	if err := s.prepareSession(sess, req); err != nil {
		broken = !s.resetSession(sess, req)
		return err
	}
	defer func() {
		if !s.resetSession(sess, req) {
			broken = true
		}
	}()

	if req.data != nil {
		return s.executeInsert(w, sess, req)
	}
	query, format := req.query, req.format
	if req.stmt.format != "" {
		format = req.stmt.format
	}
	if req.clientRev > 0 && len(req.stmt.revisionCalls) > 0 {
		query = rewriteRevision(query, req.stmt.revisionCalls, req.clientRev)
	}
	if cancelOnClose(req) {
		tag := killTag()
		query = tag + query
		defer s.stopOnClose(r.Context(), tag)()
	}
	res, err := sess.Query(query, req.format, req.params)
	if err != nil {
		return err
	}
	out := res.Data
	if format == "Native" && req.clientRev > 0 {
		if out, err = transcodeNative(out, req.clientRev); err != nil {
			return err
		}
	}
	return s.respond(w, req, res, format, out...)
}

// rewriteRevision replaces revision() calls by the client's protocol
// revision: clickhouse-go decodes Native with the revision its hello query
// reports, and this server encodes for the revision the client asked for.
func rewriteRevision(q string, calls [][2]int, rev uint64) string {
	var b strings.Builder
	last := 0
	for _, c := range calls {
		b.WriteString(q[last:c[0]])
		fmt.Fprintf(&b, "toUInt32(%d)", rev)
		last = c[1]
	}
	b.WriteString(q[last:])
	return b.String()
}

// prepareSession switches the session to the request's database and
// settings.
func (s *Server) prepareSession(sess Session, req *request) error {
	var stmts []string
	s.mu.Lock()
	cur, known := s.sessDB[sess]
	if !known || cur != req.database {
		// Unknown until the USE succeeds.
		delete(s.sessDB, sess)
	}
	s.mu.Unlock()
	if !known || cur != req.database {
		stmts = append(stmts, "USE "+chsql.Ident(req.database))
	}
	if len(req.settings) > 0 {
		parts := make([]string, len(req.settings))
		for i, kv := range req.settings {
			parts[i] = kv[0] + " = " + chsql.String(kv[1])
		}
		stmts = append(stmts, "SET "+strings.Join(parts, ", "))
	}
	if len(stmts) == 0 {
		return nil
	}
	if _, err := sess.Query(strings.Join(stmts, "; "), "TabSeparated", nil); err != nil {
		return err
	}
	s.mu.Lock()
	s.sessDB[sess] = req.database
	s.mu.Unlock()
	return nil
}

// resetSession puts the request's settings back to their defaults; false
// means the session's state is unknown and it must be replaced.
func (s *Server) resetSession(sess Session, req *request) bool {
	if len(req.settings) == 0 {
		return true
	}
	parts := make([]string, len(req.settings))
	for i, kv := range req.settings {
		parts[i] = kv[0] + " = DEFAULT"
	}
	if _, err := sess.Query("SET "+strings.Join(parts, ", "), "TabSeparated", nil); err != nil {
		s.log.Warn("reset session settings; replacing the session", "err", err)
		s.mu.Lock()
		delete(s.sessDB, sess)
		s.mu.Unlock()
		return false
	}
	return true
}

// executeInsert streams req.data into the engine.
func (s *Server) executeInsert(w http.ResponseWriter, sess Session, req *request) error {
	ins, err := sess.StreamInsert(req.stmt.insertHead, req.stmt.format)
	if err != nil {
		return err
	}
	buf := make([]byte, insertChunk)
	for {
		n, rerr := io.ReadFull(req.data, buf)
		if n > 0 {
			if _, err := ins.Write(buf[:n]); err != nil {
				ins.Cancel()
				return err
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			ins.Cancel()
			return fmt.Errorf("read INSERT data: %w", rerr)
		}
	}
	res, err := ins.Done()
	if err != nil {
		return err
	}
	s.metrics.insertedRows.Add(float64(res.RowsWritten))
	return s.respond(w, req, res, "")
}

// respond writes a successful result with ClickHouse's headers.
func (s *Server) respond(w http.ResponseWriter, req *request, res *chdb.Result, format string, out ...byte) error {
	h := w.Header()
	h.Set("X-ClickHouse-Query-Id", req.queryID)
	s.mu.Lock()
	tz := s.timezone
	s.mu.Unlock()
	h.Set("X-ClickHouse-Timezone", tz)
	h.Set("X-ClickHouse-Server-Display-Name", "clickhouse-embedded")
	var rowsRead, rowsWritten uint64
	if res != nil {
		rowsRead, rowsWritten = res.RowsRead, res.RowsWritten
	}
	h.Set("X-ClickHouse-Summary", fmt.Sprintf(`{"read_rows":"%d","read_bytes":"0","written_rows":"%d","written_bytes":"0","total_rows_to_read":"0","result_rows":"0","result_bytes":"0"}`, rowsRead, rowsWritten))
	if format != "" {
		h.Set("X-ClickHouse-Format", format)
		h.Set("Content-Type", contentType(format))
	} else {
		h.Set("Content-Type", "text/plain; charset=UTF-8")
	}
	var err error
	if req.compress && len(out) > 0 {
		if out, err = compressNative(out, req.compMethod); err != nil {
			return err
		}
	}
	if req.encoding != "" && len(out) > 0 {
		if out, err = encodeContent(out, req.encoding); err != nil {
			return err
		}
		h.Set("Content-Encoding", req.encoding)
	}
	h.Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
	return nil
}

func contentType(format string) string {
	switch {
	case strings.HasPrefix(format, "TabSeparated"), strings.HasPrefix(format, "TSV"):
		return "text/tab-separated-values; charset=UTF-8"
	case strings.HasPrefix(format, "CSV"):
		return "text/csv; charset=UTF-8; header=absent"
	case strings.HasPrefix(format, "JSON"):
		return "application/json; charset=UTF-8"
	case strings.HasPrefix(format, "Pretty"), format == "Vertical", format == "Markdown":
		return "text/plain; charset=UTF-8"
	}
	return "application/octet-stream"
}

// compressNative frames out in ClickHouse's block compression (what
// compress=1 asks for), in chunks of at most 1 MiB.
func compressNative(out []byte, m chcompress.Method) ([]byte, error) {
	cw := chcompress.NewWriter(chcompress.LevelZero, m)
	var dst []byte
	for len(out) > 0 {
		n := min(len(out), 1<<20)
		if err := cw.Compress(out[:n]); err != nil {
			return nil, fmt.Errorf("compress response with %s: %w", m, err)
		}
		dst = append(dst, cw.Data...)
		out = out[n:]
	}
	return dst, nil
}

package chserver

import (
	"io"
	"net/http"
	"time"
)

// Timeouts the server applies when Options leaves them zero. They follow
// ClickHouse's: its http_receive_timeout and http_send_timeout (30 s)
// bound each socket read and write, not a whole request, because a
// request may carry gigabytes of INSERT data and an answer may take
// minutes to compute; keep_alive_timeout is longer here (120 s) as for
// every driftwatch server.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReceiveTimeout    = 30 * time.Second
	DefaultSendTimeout       = 30 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
)

// sendChunk is how much of an answer is written under one write deadline.
const sendChunk = 1 << 20

// withDeadlines gives every read of a request body ReceiveTimeout and
// every 1 MiB of an answer SendTimeout: a client that stops sending its
// body, or stops reading the answer, is disconnected, however long the
// query itself runs.
func (s *Server) withDeadlines(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		// A keep-alive connection keeps the deadline of its previous
		// answer; this answer gets its own.
		_ = rc.SetWriteDeadline(time.Time{})
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc, timeout: s.opts.ReceiveTimeout}
		}
		next.ServeHTTP(&deadlineWriter{ResponseWriter: w, rc: rc, timeout: s.opts.SendTimeout}, r)
	})
}

// deadlineBody sets a read deadline before each read of the body, until
// the body ends: net/http then reads the connection in the background to
// notice a client that goes away (which cancels the request's context),
// and a deadline left behind would end that read, and the context, while
// the query runs. A body without data (http.NoBody) is never wrapped, for
// the same reason.
type deadlineBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
	ended   bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	if b.ended {
		return b.ReadCloser.Read(p)
	}
	_ = b.rc.SetReadDeadline(time.Now().Add(b.timeout))
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.ended = true
	}
	return n, err
}

// deadlineWriter writes an answer in chunks, each with a fresh write
// deadline.
type deadlineWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := min(len(p), sendChunk)
		_ = w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
		m, err := w.ResponseWriter.Write(p[:n])
		written += m
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

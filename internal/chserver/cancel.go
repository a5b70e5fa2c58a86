package chserver

import (
	"context"
	"errors"
	"sync"

	"github.com/driftwatch/driftwatch/internal/chsql"
)

// cancelSetting is ClickHouse's setting that stops a read-only HTTP query
// whose client closed the connection (off by default, as in ClickHouse).
const cancelSetting = "cancel_http_readonly_queries_on_client_close"

// killer is an Engine that can stop a query running on another session:
// libchdb cannot interrupt the call that runs it, but the engine honours
// KILL QUERY ... ASYNC from another session (KILL QUERY SYNC waits for
// ever in libchdb).
type killer interface {
	// Kill stops the running queries whose text starts with prefix.
	Kill(prefix string) error
}

// cancelOnClose reports whether req asks for its query to be stopped when
// its client goes away: a SELECT with cancel_http_readonly_queries_on_client_close.
func cancelOnClose(req *request) bool {
	if req.stmt.kind != kindSelect {
		return false
	}
	on := false
	for _, kv := range req.settings {
		if kv[0] == cancelSetting {
			on = truthy(kv[1])
		}
	}
	return on
}

// killTag is the comment a cancellable query is prefixed with, so that
// KILL QUERY can find it in system.processes. The id is the server's own:
// a client's query_id could close the comment.
func killTag() string { return "/* clickhouse-embedded cancel " + newQueryID() + " */ " }

// chdbKiller runs KILL QUERY on a session of its own, kept out of the
// pool so that a kill never waits for the queries it is to stop.
type chdbKiller struct {
	mu     sync.Mutex
	sess   Session
	closed bool // the engine is closed: sess is gone
}

func (k *chdbKiller) Kill(prefix string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return errors.New("the engine is closed")
	}
	_, err := k.sess.Query("KILL QUERY WHERE startsWith(query, "+chsql.String(prefix)+") ASYNC", "TabSeparated", nil)
	return err
}

// stopOnClose runs kill when ctx ends before the returned stop is called.
func (s *Server) stopOnClose(ctx context.Context, prefix string) (stop func() bool) {
	k, ok := s.engine.(killer)
	if !ok {
		return func() bool { return false }
	}
	return context.AfterFunc(ctx, func() {
		if err := k.Kill(prefix); err != nil {
			s.log.Warn("stop the query of a client that went away", "err", err)
			return
		}
		s.metrics.cancelled.Inc()
	})
}

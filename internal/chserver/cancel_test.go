package chserver_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// running counts the queries in system.processes whose text holds marker
// (the count's own query excepted).
func (c chTarget) running(t *testing.T, marker string) int {
	t.Helper()
	_, body := c.post(t, nil, strings.NewReader(fmt.Sprintf(
		"SELECT count() FROM system.processes WHERE position(query, '%s') > 0 AND position(query, 'system.processes') = 0", marker)), nil)
	var n int
	if _, err := fmt.Sscan(body, &n); err != nil {
		t.Fatalf("count running queries: %q: %v", body, err)
	}
	return n
}

// TestClientGoneStopsItsQuery: a SELECT sent with
// cancel_http_readonly_queries_on_client_close=1 whose client closes the
// connection leaves system.processes long before it would have finished
// (it sleeps 60 s); the engine's KILL QUERY stops it, as ClickHouse does.
func TestClientGoneStopsItsQuery(t *testing.T) {
	c := target(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	marker := "gone_" + hex.EncodeToString(b[:])
	q := fmt.Sprintf("SELECT sum(sleepEachRow(1)), '%s' FROM numbers(60) SETTINGS max_block_size = 1", marker)

	u := *c.base
	u.RawQuery = url.Values{"database": {c.database}, "cancel_http_readonly_queries_on_client_close": {"1"}}.Encode()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(q))
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			err = fmt.Errorf("answered %d %q", res.StatusCode, b)
		}
		errc <- err
	}()

	// Polls with generous bounds; no duration is asserted.
	waitFor := func(what string, limit time.Duration, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(limit); !cond(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %s", what, limit)
			}
		}
	}
	waitFor("the query starts", 20*time.Second, func() bool { return c.running(t, marker) == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("the client's request: %v, want it cancelled", err)
	}
	waitFor("the query ends after its client went away (it sleeps 60 s)", 30*time.Second, func() bool { return c.running(t, marker) == 0 })
}

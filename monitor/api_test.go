package monitor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftwatch/driftwatch/internal/testdb"
)

// apiMonitor is a monitor with settings s on conn, for API tests.
func apiMonitor(t *testing.T, conn driver.Conn, s Settings) *Monitor {
	t.Helper()
	m, err := New(Options{Settings: s, Conn: conn, TriggerWriter: &recordingWriter{}, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestAPIAnswersAreLimited: with api_max_rows 3, every list the API
// answers holds at most 3 rows and says "truncated": true when more rows
// exist (5 models; 4 results of one window; 4 windows of history), false
// when they all fit; a smaller limit of the request applies too.
func TestAPIAnswersAreLimited(t *testing.T) {
	conn, _ := testdb.Open(t, "monitor_api")
	ctx := context.Background()
	end := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	var rows []string
	for i := range 5 {
		rows = append(rows, fmt.Sprintf("('model-%d', %s, %s, '__all', 'data_quality', 'verdict', 100)", i, sqlTime(end.Add(-time.Hour)), sqlTime(end)))
	}
	for w := range 4 {
		e := end.Add(-time.Duration(w) * time.Hour)
		for _, f := range []string{"f1", "f2", "f3", "f4"} {
			if w == 0 || f == "f1" {
				rows = append(rows, fmt.Sprintf("('model-0', %s, %s, '%s', 'drift', 'psi', 100)", sqlTime(e.Add(-time.Hour)), sqlTime(e), f))
			}
		}
	}
	if err := conn.Exec(ctx, "INSERT INTO drift_results (model_id, window_start, window_end, feature, kind, method, samples) VALUES "+strings.Join(rows, ", ")); err != nil {
		t.Fatal(err)
	}
	// The windows are older than the clock's lookback: widen it, for the
	// overview reads the windows ending within it.
	s := testSettings(10*365*24*time.Hour, DefaultSettings().Policy, nil)
	s.APIMaxRows = 3
	h := apiMonitor(t, conn, s).API()

	for _, tc := range []struct {
		path, list string
		want       int
		truncated  bool
	}{
		{"/api/v1/models", "models", 3, true},
		{"/api/v1/models/model-0/results", "results", 3, true}, // 4 psi rows + the verdict
		{"/api/v1/models/model-0/features/f1/history", "history", 3, true},
		{"/api/v1/models/model-0/features/f1/history?limit=2", "history", 2, true},
		{"/api/v1/models/model-0/features/f2/history", "history", 1, false},
		{"/api/v1/models/model-0/features/f1/history?limit=10000", "history", 3, true},
		{"/api/v1/triggers", "triggers", 0, false},
		{"/api/v1/models/model-0/drift-matrix", "cells", 3, true}, // 4 psi rows in the window with a verdict
		{"/api/v1/models/model-0/data-quality", "data_quality", 0, false},
		{"/api/v1/models/model-0/versions", "versions", 0, false},
	} {
		t.Run(tc.path, func(t *testing.T) {
			code, out := call(t, h, "GET", tc.path, "")
			list, _ := out[tc.list].([]any)
			if code != http.StatusOK || len(list) != tc.want || out["truncated"] != tc.truncated {
				t.Errorf("%d, %d %s, truncated %v; want 200, %d, truncated %v", code, len(list), tc.list, out["truncated"], tc.want, tc.truncated)
			}
		})
	}
}

func sqlTime(t time.Time) string {
	return "toDateTime64('" + t.Format("2006-01-02 15:04:05") + "', 3, 'UTC')"
}

// slowConn runs, in place of each query of the API's tables, one that
// sleeps 60 s without using the CPU and carries marker, so a test can find
// it in system.processes. Everything else of the request is the API's own:
// its handler, context, settings and clickhouse-go.
type slowConn struct {
	driver.Conn
	marker string
}

func (c slowConn) Query(ctx context.Context, q string, args ...any) (driver.Rows, error) {
	return c.Conn.Query(ctx, fmt.Sprintf("SELECT sum(sleepEachRow(1)), '%s' FROM numbers(60) SETTINGS max_block_size = 1", c.marker))
}

// running counts the queries in system.processes that carry marker.
func running(t *testing.T, conn driver.Conn, marker string) uint64 {
	t.Helper()
	var n uint64
	q := "SELECT count() FROM system.processes WHERE position(query, '" + marker + "') > 0 AND position(query, 'system.processes') = 0"
	if err := conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// waitFor polls cond until it holds, failing the test after limit (a
// generous bound, not a measured duration).
func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, limit)
		}
	}
}

// TestAPIRequestGoneCancelsItsQuery: when the client of GET /api/v1/models
// goes away while its ClickHouse queries run (each would sleep 60 s),
// they leave system.processes well before they would have ended; and a
// query longer than api_query_timeout is stopped by ClickHouse
// (max_execution_time) and answered 504.
func TestAPIRequestGoneCancelsItsQuery(t *testing.T) {
	conn, _ := testdb.Open(t, "monitor_api")
	marker := "api_gone_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	s := testSettings(48*time.Hour, DefaultSettings().Policy, nil)
	s.APIQueryTimeout = 5 * time.Minute
	srv := httptest.NewServer(apiMonitor(t, slowConn{conn, marker}, s).API())
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/models", nil)
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
	// The overview runs two of its queries at a time.
	waitFor(t, "the API's queries start", 20*time.Second, func() bool { return running(t, conn, marker) == overviewParallel })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("the client's request: %v, want it cancelled", err)
	}
	waitFor(t, "the query ends once its client went away (it sleeps 60 s)", 30*time.Second, func() bool { return running(t, conn, marker) == 0 })

	t.Run("api_query_timeout", func(t *testing.T) {
		s.APIQueryTimeout = time.Second
		code, out := call(t, apiMonitor(t, slowConn{conn, marker + "_t"}, s).API(), "GET", "/api/v1/models", "")
		if msg, _ := out["error"].(string); code != http.StatusGatewayTimeout || !strings.Contains(msg, "api_query_timeout (1s)") {
			t.Errorf("a query longer than api_query_timeout: %d %v, want 504 naming api_query_timeout", code, out)
		}
		waitFor(t, "the timed-out query ends", 30*time.Second, func() bool { return running(t, conn, marker+"_t") == 0 })
	})
}

// TestAPIQueryTimeoutShorterThanWriteTimeout: the configuration names
// http_write_timeout when an answer could be cut off before its query's
// time is up.
func TestAPIQueryTimeoutShorterThanWriteTimeout(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	c.APIQueryTimeout = c.HTTPWriteTimeout
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "http_write_timeout: 1m0s must be longer than api_query_timeout 1m0s") {
		t.Errorf("api_query_timeout = http_write_timeout: %v", err)
	}
}

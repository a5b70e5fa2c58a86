package console_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/service"
	"github.com/driftwatch/driftwatch/internal/testdb"
	"github.com/driftwatch/driftwatch/monitor"
	"github.com/driftwatch/driftwatch/monitor/console"
)

type discard struct{}

func (discard) WriteMessages(context.Context, ...kafka.Message) error { return nil }

// BenchmarkOverview100Models renders /ui/ for 100 models, each with 20
// features over 24 windows of drift_results in the real ClickHouse (the
// monitor's API in-process, as the monitor serves it), and reports the
// server time of one render (ms/render; the target is at most 300 ms).
func BenchmarkOverview100Models(b *testing.B) { benchOverview(b, 100) }

// BenchmarkOverview500Models is the same with 500 models ("hundreds").
func BenchmarkOverview500Models(b *testing.B) { benchOverview(b, 500) }

func benchOverview(b *testing.B, models int) {
	c, m, _ := fleet(b, models)
	render := func() string {
		b.Helper()
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ui/?sort=drift", nil))
		if rec.Code != http.StatusOK {
			b.Fatalf("GET /ui/: %d %s", rec.Code, rec.Body)
		}
		return rec.Body.String()
	}
	if n := strings.Count(render(), `class="model-row"`); n != models {
		b.Fatalf("the overview shows %d models, want %d", n, models)
	}
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		render()
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/render")
	// Of which the API's answer (its queries in ClickHouse) takes:
	b.StopTimer()
	api := m.API()
	start = time.Now()
	for range 5 {
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/models", nil))
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/5, "ms/api-call")
}

// fleet is a console over a monitor whose ClickHouse holds n models
// (model-000 … model-099 for 100), each with 20 features over 24 windows of
// drift_results; f3 of every tenth model (model-000, model-010, …) drifts,
// sustained in its 20 newest windows.
func fleet(tb testing.TB, n int) (*console.Console, *monitor.Monitor, driver.Conn) {
	tb.Helper()
	conn, _ := testdb.Open(tb, "consolefleet")
	err := conn.Exec(context.Background(), `INSERT INTO drift_results (model_id, model_version, window_start, window_end, reference_start, reference_end,
		feature, kind, method, value, p_value, p_value_adjusted, threshold, drifted, sustained, status, samples, reference_samples, computed_at)
		SELECT concat('model-', leftPad(toString(m), 3, '0')), '',
		       end - INTERVAL 1 HOUR AS start, toDateTime64(toStartOfMinute(now()) - toIntervalMinute(w), 3, 'UTC') AS end,
		       toDateTime64('2026-01-01 00:00:00', 3, 'UTC'), toDateTime64('2026-01-01 01:00:00', 3, 'UTC'),
		       concat('f', toString(f)), 'drift', method,
		       if(method = 'psi', if(drift, 0.5, 0.05), 0), NULL, NULL, if(method = 'psi', 0.2, 0),
		       drift, drift AND w < 20, if(drift, 'drifted', 'ok'), 4000, 4000, now64(3)
		FROM (SELECT intDiv(number, 480) AS m, intDiv(number, 20) % 24 AS w, number % 20 AS f, f = 3 AND m % 10 = 0 AS drift
		      FROM numbers({rows:UInt64}))
		ARRAY JOIN ['psi', 'verdict'] AS method`, clickhouse.Named("rows", uint64(n*480)))
	if err != nil {
		tb.Fatal(err)
	}
	m, err := monitor.New(monitor.Options{Settings: monitor.DefaultSettings(), Conn: conn, TriggerWriter: discard{}, Registerer: prometheus.NewRegistry()})
	if err != nil {
		tb.Fatal(err)
	}
	c, err := console.New(console.Options{API: m.API()})
	if err != nil {
		tb.Fatal(err)
	}
	return c, m, conn
}

var modelRow = regexp.MustCompile(`class="model-row" data-model="([^"]+)"`)

// TestOverviewSortAndFilter: ?q= keeps the models whose id contains it,
// ?sort=drift puts the drifted models first; the model page of a drifted
// model marks f3's cells sustained in the newest windows; bad input and
// unknown pages answer 400 and 404, as pages.
func TestOverviewSortAndFilter(t *testing.T) {
	c, _, conn := fleet(t, 100)
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	models := func(body string) []string {
		var out []string
		for _, m := range modelRow.FindAllStringSubmatch(body, -1) {
			out = append(out, m[1])
		}
		return out
	}
	code, body := get("/ui/?q=model-01")
	if got := models(body); code != 200 || len(got) != 10 || got[0] != "model-010" || got[9] != "model-019" {
		t.Errorf("?q=model-01: %d, models %v; want model-010 … model-019", code, got)
	}
	_, body = get("/ui/?sort=drift")
	got := models(body)
	want := []string{"model-000", "model-010", "model-020", "model-030", "model-040", "model-050", "model-060", "model-070", "model-080", "model-090", "model-001"}
	if len(got) != 100 || !slices.Equal(got[:11], want) {
		t.Errorf("?sort=drift: %d models, first %v; want the ten drifted ones first, then model-001", len(got), got[:min(11, len(got))])
	}
	_, body = get("/ui/models/model-010")
	if n := strings.Count(body, `class="cell drifted sustained" `); n != 20 {
		t.Errorf("model-010: %d sustained cells, want f3's 20 newest windows", n)
	}
	if n := strings.Count(body, `class="cell drifted" `); n != 4 {
		t.Errorf("model-010: %d cells drifted but not sustained, want f3's 4 oldest windows", n)
	}
	if n := strings.Count(body, `class="cell" `); n != 19*24 {
		t.Errorf("model-010: %d cells not drifted, want the other 19 features × 24 windows", n)
	}
	// The training page: challenger against champion, the interval and
	// the decision of a run, and the versions with the champion.
	for _, q := range []string{
		`INSERT INTO training_runs (run_id, model_id, version, parent_version, reason, status, decision, decision_reason, metrics, champion_metrics, diff_lo, diff_hi, started_at, updated_at)
		 VALUES ('run-1', 'model-010', 'v2', 'v1', 'feature_drift', 'succeeded', 'promote', 'roc_auc challenger 0.81 vs champion 0.74', {'roc_auc': 0.81}, {'roc_auc': 0.74}, 0.052, 0.088, now64(3), now64(3))`,
		`INSERT INTO models (model_id, version, status, metrics, champion_metrics, run_id, parent_version, reason, created_at, updated_at)
		 VALUES ('model-010', 'v1', 'retired', {'roc_auc': 0.74}, {}, '', '', 'first', now64(3) - INTERVAL 1 DAY, now64(3)),
		        ('model-010', 'v2', 'champion', {'roc_auc': 0.81}, {'roc_auc': 0.74}, 'run-1', 'v1', 'promoted', now64(3), now64(3))`,
	} {
		if err := conn.Exec(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	code, body = get("/ui/models/model-010/training")
	for _, want := range []string{`<strong class="champion">v2</strong>`, "<td>roc_auc 0.81</td><td>roc_auc 0.74</td><td>[0.052, 0.088]</td><td><strong>promote</strong> roc_auc challenger 0.81 vs champion 0.74</td>",
		`<tr class="version retired"><td>v1</td>`, "FROM training_runs"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("training page (%d) lacks %q", code, want)
		}
	}
	for path, want := range map[string]int{"/ui/models/model-010?window_end=yesterday": 400, "/ui/nothing": 404, "/ui/static/console.css": 200} {
		if code, body := get(path); code != want {
			t.Errorf("GET %s: %d, want %d\n%s", path, code, want, body)
		}
	}
}

// TestConsoleNeedsReadToken: mounted as the monitor mounts it, behind
// api_tokens_file, a page without a token is refused (401) like the API,
// and a read token is enough (the console only reads).
func TestConsoleNeedsReadToken(t *testing.T) {
	_, m, _ := fleet(t, 100)
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("read-token-0123456789abcdef read\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := service.New(service.Options{Name: "consoletest", Addr: "127.0.0.1:0", ShutdownTimeout: 5 * time.Second,
		Auth: config.APIAuth{APIAuthMode: config.APIAuthTokens, APITokensFile: tokens}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Mount(s); err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for _, tc := range []struct {
		path, token string
		want        int
	}{
		{"/ui/", "", http.StatusUnauthorized},
		{"/ui/models/model-010", "wrong-token-0123456789abcdef", http.StatusUnauthorized},
		{"/ui/", "read-token-0123456789abcdef", http.StatusOK},
		{"/ui/models/model-010", "read-token-0123456789abcdef", http.StatusOK},
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+s.Addr()+tc.path, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s with token %q: %d, want %d", tc.path, tc.token, resp.StatusCode, tc.want)
		}
	}
}

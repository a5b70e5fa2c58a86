package console_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

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
func BenchmarkOverview100Models(b *testing.B) {
	conn, _ := testdb.Open(b, "consolebench")
	ctx := context.Background()
	// 100 models × 24 windows × 20 features × (psi, verdict); f3 of every
	// tenth model drifts.
	err := conn.Exec(ctx, `INSERT INTO drift_results (model_id, model_version, window_start, window_end, reference_start, reference_end,
		feature, kind, method, value, p_value, p_value_adjusted, threshold, drifted, sustained, status, samples, reference_samples, computed_at)
		SELECT concat('model-', leftPad(toString(m), 3, '0')), '',
		       end - INTERVAL 1 HOUR AS start, toDateTime64(toStartOfMinute(now()) - toIntervalMinute(w), 3, 'UTC') AS end,
		       toDateTime64('2026-01-01 00:00:00', 3, 'UTC'), toDateTime64('2026-01-01 01:00:00', 3, 'UTC'),
		       concat('f', toString(f)), 'drift', method,
		       if(method = 'psi', if(drift, 0.5, 0.05), 0), NULL, NULL, if(method = 'psi', 0.2, 0),
		       drift, drift AND w < 20, if(drift, 'drifted', 'ok'), 4000, 4000, now64(3)
		FROM (SELECT intDiv(number, 480) AS m, intDiv(number, 20) % 24 AS w, number % 20 AS f, f = 3 AND m % 10 = 0 AS drift
		      FROM numbers(48000))
		ARRAY JOIN ['psi', 'verdict'] AS method`)
	if err != nil {
		b.Fatal(err)
	}
	m, err := monitor.New(monitor.Options{Settings: monitor.DefaultSettings(), Conn: conn, TriggerWriter: discard{}, Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	c, err := console.New(console.Options{API: m.API()})
	if err != nil {
		b.Fatal(err)
	}
	render := func() string {
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ui/?sort=drift", nil))
		if rec.Code != http.StatusOK {
			b.Fatalf("GET /ui/: %d %s", rec.Code, rec.Body)
		}
		return rec.Body.String()
	}
	if n := strings.Count(render(), `class="model-row"`); n != 100 {
		b.Fatalf("the overview shows %d models, want 100", n)
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

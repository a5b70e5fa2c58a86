package monitor

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/internal/testdb"
)

// BenchmarkAPIViews times the console's heaviest reads against the real
// ClickHouse with 300 models, each with 24 hourly windows of 20 features
// (a psi and a verdict row each, 288,000 drift_results rows), two
// data-quality checks, a performance window, a trigger, a champion and
// fresh inferences: GET /api/v1/models (the overview: five queries over
// every model) and one model's drift matrix and distribution.
//
//	go test ./monitor/ -run '^$' -bench BenchmarkAPIViews -benchtime 20x
func BenchmarkAPIViews(b *testing.B) {
	const models, windows, features = 300, 24, 20
	conn, _ := testdb.Open(b, "monitor_bench_views")
	ctx := context.Background()
	end := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	e := chsql.Time(end)
	perModel := windows * features * 2
	for _, q := range []string{
		fmt.Sprintf(`INSERT INTO drift_results (model_id, window_start, window_end, feature, kind, method, value, threshold, drifted, sustained, status, samples, computed_at)
			SELECT concat('model-', toString(intDiv(number, %[1]d))), %[2]s - toIntervalHour(w + 1), %[2]s - toIntervalHour(w), concat('f', toString(f)), 'drift',
			       if(number %% 2 = 0, 'psi', 'verdict'), (cityHash64(number) %% 100) / 300, 0.2, f = 3 AND w < 3, f = 3 AND w < 2, 'ok', 1000, %[2]s
			FROM (SELECT number, intDiv(number %% %[1]d, %[3]d) AS w, intDiv(number %% %[3]d, 2) AS f FROM numbers(%[4]d))`, perModel, e, features*2, models*perModel),
		fmt.Sprintf(`INSERT INTO drift_results (model_id, window_start, window_end, feature, kind, method, value, threshold, drifted, status, samples, computed_at)
			SELECT concat('model-', toString(intDiv(number, 2))), %[1]s - toIntervalHour(1), %[1]s, '__all', 'data_quality', if(number %% 2 = 0, 'missing_share', 'volume_ratio'), 0.01, 0.05, false, 'ok', 1000, %[1]s
			FROM numbers(%[2]d)`, e, models*2),
		fmt.Sprintf(`INSERT INTO performance_results (model_id, window_start, window_end, metric, value, samples, label_coverage, computed_at)
			SELECT concat('model-', toString(intDiv(number, 2))), %[1]s - toIntervalHour(2), %[1]s - toIntervalHour(1), if(number %% 2 = 0, 'roc_auc', 'label_coverage'), 0.8, 100, 0.5, %[1]s
			FROM numbers(%[2]d)`, e, models*2),
		fmt.Sprintf(`INSERT INTO retrain_triggers (trigger_id, dedup_key, model_id, reason, policy, created_at)
			SELECT toString(number), toString(number), concat('model-', toString(number)), 'feature_drift', 'p', %[1]s FROM numbers(%[2]d)`, e, models),
		fmt.Sprintf(`INSERT INTO models (model_id, version, status, created_at, updated_at)
			SELECT concat('model-', toString(number)), 'v1', 'champion', %[1]s, %[1]s FROM numbers(%[2]d)`, e, models),
		fmt.Sprintf(`INSERT INTO inferences (event_id, model_id, model_version, prediction_id, timestamp, ingested_at)
			SELECT toString(number), concat('model-', toString(intDiv(number, 60))), 'v1', toString(number), %[1]s - toIntervalMinute(number %% 60 + 1), now64(3) FROM numbers(%[2]d)`, e, models*60),
	} {
		if err := conn.Exec(ctx, q); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	m, err := New(Options{Settings: testSettings(48*time.Hour, DefaultSettings().Policy, nil), Conn: conn, TriggerWriter: &recordingWriter{},
		Registerer: prometheus.NewRegistry(), Now: func() time.Time { return end }})
	if err != nil {
		b.Fatal(err)
	}
	h := m.API()
	for _, path := range []string{"/api/v1/models", "/api/v1/models/model-7/drift-matrix", "/api/v1/models/model-7/data-quality"} {
		b.Run(path, func(b *testing.B) {
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
				if rec.Code != http.StatusOK {
					b.Fatalf("%s: %d %s", path, rec.Code, rec.Body.String())
				}
			}
		})
	}
}

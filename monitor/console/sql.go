package console

import (
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"time"
)

// The SQL an analyst runs for each view's numbers, shown beside the view
// (the monitor's store runs its own copies; these are the readable form,
// with ClickHouse's {name:Type} parameters an analyst's client binds).
const (
	sqlModels = `SELECT model_id, window_start, window_end,
       groupArrayIf(feature, drifted) AS drifted_features,
       groupArrayIf(feature, sustained) AS sustained_features,
       max(samples) AS samples
FROM drift_results FINAL
WHERE method = 'verdict'
  AND (model_id, window_end) IN (SELECT model_id, max(window_end) FROM drift_results WHERE method = 'verdict' GROUP BY model_id)
GROUP BY model_id, window_start, window_end
ORDER BY model_id`
	sqlHeatmap = `SELECT feature, window_end, method, value, threshold, drifted, sustained
FROM drift_results FINAL
WHERE model_id = {model:String} AND kind != 'data_quality'
  AND window_end > now() - INTERVAL 1 DAY
ORDER BY feature, window_end, method`
	sqlHistory = `SELECT window_end, method, value, threshold, drifted
FROM drift_results FINAL
WHERE model_id = {model:String} AND feature = {feature:String} AND method = {method:String}
ORDER BY window_end DESC LIMIT 100`
	sqlDistribution = `SELECT side, bin, lower, upper, category, count
FROM drift_distributions FINAL
WHERE model_id = {model:String} AND feature = {feature:String} AND window_end = {window_end:DateTime64(3, 'UTC')}
ORDER BY side, bin, category`
	sqlQuality = `SELECT feature, method, value, threshold, status
FROM drift_results FINAL
WHERE model_id = {model:String} AND kind = 'data_quality'
  AND window_end = (SELECT max(window_end) FROM drift_results WHERE model_id = {model:String})
ORDER BY feature, method`
	sqlDeadLetters = `-- dead letters are on the Kafka topic driftwatch.dead-letters,
-- header driftwatch-reason; ingest counts them per reason in
-- driftwatch_ingest_dead_letters_total (Prometheus).`
	sqlPerformance = `SELECT window_start, window_end, metric, value, samples, label_coverage
FROM performance_latest
WHERE model_id = {model:String}
ORDER BY window_start DESC, metric LIMIT 500`
	sqlCorrelations = `SELECT model_metric, business_metric, method, lag, value, p_value, samples
FROM business_correlations FINAL
WHERE model_id = {model:String}
  AND window_end = (SELECT max(window_end) FROM business_correlations WHERE model_id = {model:String})
ORDER BY business_metric, model_metric, method, lag`
	sqlTriggers = `SELECT trigger_id, model_id, model_version, reason, policy, window_start, window_end, evidence, created_at
FROM retrain_triggers FINAL
WHERE {model:String} = '' OR model_id = {model:String}
ORDER BY created_at DESC LIMIT 200`
	sqlTrainingRuns = `SELECT run_id, version, parent_version, status, decision, decision_reason,
       metrics, champion_metrics, diff_lo, diff_hi, started_at, finished_at
FROM training_runs FINAL
WHERE model_id = {model:String}
ORDER BY started_at DESC LIMIT 100`
	sqlVersions = `SELECT version, status, metrics, parent_version, reason, created_at
FROM models FINAL
WHERE model_id = {model:String}
ORDER BY created_at DESC`
)

var funcs = template.FuncMap{
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"rfc3339": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"timep": func(t *time.Time) string {
		if t == nil {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04Z")
	},
	"age": func(d time.Duration) string {
		switch {
		case d < time.Minute:
			return "now"
		case d < time.Hour:
			return fmt.Sprintf("%dm ago", int(d.Minutes()))
		case d < 48*time.Hour:
			return fmt.Sprintf("%.1fh ago", d.Hours())
		default:
			return fmt.Sprintf("%.0fd ago", d.Hours()/24)
		}
	},
	"num": func(p *float64) string {
		if p == nil || math.IsNaN(*p) {
			return "—"
		}
		return fmt.Sprintf("%.4g", *p)
	},
	"f": func(v float64) string {
		if math.IsNaN(v) {
			return "—"
		}
		return fmt.Sprintf("%.4g", v)
	},
	"pct": func(v float64) string { return fmt.Sprintf("%.0f%%", v*100) },
	"href": func(model, feature string, end time.Time) string {
		return modelHref(model, feature, end)
	},
	"json": func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			return err.Error()
		}
		return string(b)
	},
	"eqt": func(a, b time.Time) bool { return a.Equal(b) },
}

package serve

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// VersionMetrics are one model version's metrics on the labelled
// predictions of a shadow comparison.
type VersionMetrics struct {
	Version string `json:"version"`
	// Shadow is true for the challenger's (shadow) predictions.
	Shadow bool `json:"shadow"`
	// Labelled is the number of its predictions compared.
	Labelled uint64 `json:"labelled"`
	// Accuracy (predicted label = actual label) and Brier score (mean of
	// (score − [actual = positive class])²) for a classifier; MAE and RMSE
	// for a regression. Absent when not defined.
	Accuracy *float64 `json:"accuracy,omitempty"`
	Brier    *float64 `json:"brier,omitempty"`
	MAE      *float64 `json:"mae,omitempty"`
	RMSE     *float64 `json:"rmse,omitempty"`
}

// ShadowComparison is the answer of GET /v1/models/{model}/shadow.
type ShadowComparison struct {
	ModelID string    `json:"model_id"`
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	// Paired is the number of requests with a labelled champion and a
	// labelled shadow prediction: the only ones compared, so both sides
	// are judged on the same requests and the same labels.
	Paired   uint64           `json:"paired"`
	Versions []VersionMetrics `json:"versions"`
}

// compareQuery reads, per (shadow, model_version), the metrics of the
// labelled predictions of the requests that have both a champion and a
// shadow labelled prediction in [from, to) (inferences_labeled joins each
// prediction_id's newest outcome, so both sides share the label).
const compareQuery = `
WITH paired AS (
    SELECT prediction_id FROM inferences_labeled
    WHERE model_id = {model:String} AND timestamp >= {from:DateTime64(3, 'UTC')} AND timestamp < {to:DateTime64(3, 'UTC')}
    GROUP BY prediction_id HAVING countIf(shadow) > 0 AND countIf(NOT shadow) > 0
)
SELECT shadow, model_version, count(),
    avgOrNull(toFloat64(prediction_label = actual_label)),
    avgOrNull(pow(prediction_score - toFloat64(actual_label = {positive:String}), 2)),
    avgOrNull(abs(prediction_value - actual_value)),
    sqrt(avgOrNull(pow(prediction_value - actual_value, 2))),
    (SELECT count() FROM paired)
FROM inferences_labeled
WHERE model_id = {model:String} AND timestamp >= {from:DateTime64(3, 'UTC')} AND timestamp < {to:DateTime64(3, 'UTC')}
  AND prediction_id IN (SELECT prediction_id FROM paired)
GROUP BY shadow, model_version
ORDER BY shadow, model_version`

// CompareShadow compares a model's champion and shadow predictions on the
// same labelled requests of [from, to). positive is the positive class
// of a classifier (for the Brier score), empty for a regression.
func CompareShadow(ctx context.Context, conn driver.Conn, modelID, positive string, from, to time.Time) (*ShadowComparison, error) {
	ctx = clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters{"model": modelID, "positive": positive,
		"from": from.UTC().Format("2006-01-02 15:04:05.000"), "to": to.UTC().Format("2006-01-02 15:04:05.000")}))
	rows, err := conn.Query(ctx, compareQuery)
	if err != nil {
		return nil, fmt.Errorf("compare the shadow predictions of %s: %w", modelID, err)
	}
	defer rows.Close()
	out := &ShadowComparison{ModelID: modelID, From: from.UTC(), To: to.UTC(), Versions: []VersionMetrics{}}
	for rows.Next() {
		var v VersionMetrics
		if err := rows.Scan(&v.Shadow, &v.Version, &v.Labelled, &v.Accuracy, &v.Brier, &v.MAE, &v.RMSE, &out.Paired); err != nil {
			return nil, fmt.Errorf("read the shadow comparison of %s: %w", modelID, err)
		}
		if positive == "" {
			v.Accuracy, v.Brier = nil, nil
		} else {
			v.MAE, v.RMSE = nil, nil
		}
		out.Versions = append(out.Versions, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the shadow comparison of %s: %w", modelID, err)
	}
	return out, nil
}

// maxCompareWindow bounds the since parameter of the comparison.
const maxCompareWindow = 90 * 24 * time.Hour

const routeShadow = "shadow"

// compare answers GET /v1/models/{model}/shadow?since=24h: the champion
// against the shadow-scored challenger on the same labelled requests of
// the last since (default 24h).
func (s *Server) compare(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("model")
	sv := (*s.models.Load())[id]
	if sv == nil {
		s.fail(w, routeShadow, http.StatusNotFound, "model", fmt.Sprintf("no model %q is served (GET /v1/models lists them)", id))
		return
	}
	since := 24 * time.Hour
	if q := r.URL.Query().Get("since"); q != "" {
		d, err := time.ParseDuration(q)
		if err != nil || d <= 0 || d > maxCompareWindow {
			s.fail(w, routeShadow, http.StatusBadRequest, "since", fmt.Sprintf("%q is not a duration in (0, %s] such as 24h", q, maxCompareWindow))
			return
		}
		since = d
	}
	if s.opts.Conn == nil {
		s.fail(w, routeShadow, http.StatusServiceUnavailable, "", "serve has no ClickHouse connection")
		return
	}
	now := s.opts.Now()
	out, err := CompareShadow(r.Context(), s.opts.Conn, id, sv.m.Target.PositiveClass, now.Add(-since), now)
	if err != nil {
		s.log.Warn("shadow comparison", "model", id, "err", err)
		s.fail(w, routeShadow, http.StatusServiceUnavailable, "", "the comparison could not be read from ClickHouse")
		return
	}
	s.ok(w, routeShadow, http.StatusOK, out)
}

package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/monitor/policy"
	"github.com/driftwatch/driftwatch/schemas"
)

// API serves monitor's JSON API (described in monitor/openapi.yaml):
//
//	GET  /api/v1/models                                   models and their latest window
//	GET  /api/v1/models/{model}/results                   latest results of every feature and method
//	GET  /api/v1/models/{model}/features/{feature}/history?method=psi&limit=100
//	GET  /api/v1/triggers?model=M&limit=100                recent retrain triggers
//	POST /api/v1/models/{model}/triggers                  a manual trigger
//	GET  /api/v1/models/{model}/performance?metric=roc_auc&limit=100  newest value per window
//	GET  /api/v1/models/{model}/correlations              latest business correlations, every lag
//	GET  /api/v1/models/{model}/features/{feature}/distribution?window_end=T  bin or category counts
//	GET  /api/v1/models/{model}/drift-matrix?windows=24&method=psi  features × windows
//	GET  /api/v1/models/{model}/data-quality?limit=100    newest result of each check
//	GET  /api/v1/models/{model}/dead-letters?from=&to=    dead letters per reason
//	GET  /api/v1/models/{model}/training-runs?limit=100   runs, champion against challenger
//	GET  /api/v1/models/{model}/versions                  registered versions, the champion
//	GET  /api/v1/models/{model}/root-cause?feature=f3     slices ranked by contribution to the newest drift
//	     …/root-cause?metric=accuracy                     … to the newest performance drop (metric=* any metric)
//	GET  /api/v1/models/{model}/segments?limit=100        per-slice drift flags of the newest window with slices
//	GET  /api/v1/models/{model}/labeling-queue?limit=100&strategy=uncertainty&assignee=A  rows handed out for labelling (a write)
//
// Every query of the API runs with the request's context, so a client that
// goes away cancels it, within api_query_timeout (the context's deadline
// and ClickHouse's max_execution_time; 504 when it passes), and reads at
// most api_max_rows rows (or the request's smaller limit): an answer cut
// there says "truncated": true.
func (m *Monitor) API() http.Handler {
	mux := http.NewServeMux()
	for _, r := range m.routes() {
		mux.HandleFunc(r.method+" "+r.path, r.h)
	}
	return mux
}

// labelingQueuePath is the labeling queue's route: a GET that hands rows
// out, so Mount guards it as a write.
const labelingQueuePath = "/api/v1/models/{model}/labeling-queue"

type route struct {
	method, path string
	h            http.HandlerFunc
}

// routes is the API; a test keeps monitor/openapi.yaml in step with it.
func (m *Monitor) routes() []route {
	return []route{
		{"GET", "/api/v1/models", m.apiModels},
		{"GET", "/api/v1/models/{model}/results", m.apiResults},
		{"GET", "/api/v1/models/{model}/features/{feature}/history", m.apiHistory},
		{"GET", "/api/v1/triggers", m.apiTriggers},
		{"POST", "/api/v1/models/{model}/triggers", m.apiManual},
		{"GET", "/api/v1/models/{model}/performance", m.apiPerformance},
		{"GET", "/api/v1/models/{model}/correlations", m.apiCorrelations},
		{"GET", "/api/v1/models/{model}/features/{feature}/distribution", m.apiDistribution},
		{"GET", "/api/v1/models/{model}/drift-matrix", m.apiDriftMatrix},
		{"GET", "/api/v1/models/{model}/data-quality", m.apiDataQuality},
		{"GET", "/api/v1/models/{model}/dead-letters", m.apiDeadLetters},
		{"GET", "/api/v1/models/{model}/training-runs", m.apiTrainingRuns},
		{"GET", "/api/v1/models/{model}/versions", m.apiVersions},
		{"GET", "/api/v1/models/{model}/root-cause", m.apiRootCause},
		{"GET", "/api/v1/models/{model}/segments", m.apiSegments},
		{"GET", labelingQueuePath, m.apiLabelingQueue},
	}
}

// PerformanceRow is one window's newest value of a metric.
type PerformanceRow struct {
	WindowStart   time.Time `json:"window_start"`
	WindowEnd     time.Time `json:"window_end"`
	Metric        string    `json:"metric"`
	Value         float64   `json:"value"`
	Samples       uint64    `json:"samples"`
	LabelCoverage float64   `json:"label_coverage"`
	ComputedAt    time.Time `json:"computed_at"`
	Computations  uint64    `json:"computations"`
}

func (m *Monitor) apiPerformance(w http.ResponseWriter, r *http.Request) {
	model := r.PathValue("model")
	if !validModel(w, model) {
		return
	}
	limit, err := limitParam(r)
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	var sql string
	out, truncated, ok := apiQuery(m, w, r, limit, func(ctx context.Context, n int) (rows []PerformanceRow, err error) {
		rows, sql, err = m.store.Performance(ctx, model, r.URL.Query().Get("metric"), r.URL.Query().Get("segment"), n)
		return rows, err
	})
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"model_id": model, "performance": out, "truncated": truncated, "sql": []string{sql}})
}

// CorrelationRow is one lag of a model/business metric correlation.
type CorrelationRow struct {
	ModelMetric    string    `json:"model_metric"`
	BusinessMetric string    `json:"business_metric"`
	Method         string    `json:"method"`
	Lag            uint16    `json:"lag"`
	Value          float64   `json:"value"`
	PValue         float64   `json:"p_value"`
	Samples        uint64    `json:"samples"`
	BucketSeconds  uint32    `json:"bucket_seconds"`
	WindowStart    time.Time `json:"window_start"`
	WindowEnd      time.Time `json:"window_end"`
}

func (m *Monitor) apiCorrelations(w http.ResponseWriter, r *http.Request) {
	model := r.PathValue("model")
	if !validModel(w, model) {
		return
	}
	var sql string
	out, truncated, ok := apiQuery(m, w, r, 0, func(ctx context.Context, n int) (rows []CorrelationRow, err error) {
		rows, sql, err = m.store.Correlations(ctx, model, n)
		return rows, err
	})
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"model_id": model, "correlations": out, "truncated": truncated, "sql": []string{sql}})
}

func (m *Monitor) apiRootCause(w http.ResponseWriter, r *http.Request) {
	model := r.PathValue("model")
	if !validModel(w, model) {
		return
	}
	limit, err := limitParam(r)
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	var sql string
	out, truncated, ok := apiQuery(m, w, r, limit, func(ctx context.Context, n int) (rows []RootCauseRow, err error) {
		rows, sql, err = m.store.RootCauses(ctx, model, r.URL.Query().Get("feature"), r.URL.Query().Get("metric"), n)
		return rows, err
	})
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"model_id": model, "root_causes": out, "truncated": truncated, "sql": []string{sql}})
}

func (m *Monitor) apiSegments(w http.ResponseWriter, r *http.Request) {
	model := r.PathValue("model")
	if !validModel(w, model) {
		return
	}
	limit, err := limitParam(r)
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	var sql string
	out, truncated, ok := apiQuery(m, w, r, limit, func(ctx context.Context, n int) (rows []SegmentFlag, err error) {
		rows, sql, err = m.store.SegmentFlags(ctx, model, n)
		return rows, err
	})
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"model_id": model, "segments": out, "truncated": truncated, "sql": []string{sql}})
}

type apiError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func fail(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, apiError{Error: fmt.Sprintf(format, args...)})
}

func limitParam(r *http.Request) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return 100, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 10000 {
		return 0, fmt.Errorf("limit must be an integer from 1 to 10000, got %q", s)
	}
	return n, nil
}

var modelID = regexp.MustCompile(schemas.ModelIDPattern)

// apiQuery runs q for a handler and reports whether it answered (false:
// it wrote the error). q reads at most n rows; it is given one more than
// the answer holds, min(limit, api_max_rows) (limit 0: api_max_rows), and
// a last row beyond it is dropped and reported as truncated.
//
// The query runs with the request's context: when the client goes away,
// clickhouse-go cancels it over the native protocol, and over HTTP it closes
// the connection, on which ClickHouse stops a read-only query because
// cancel_http_readonly_queries_on_client_close is set. api_query_timeout
// is both the context's deadline and ClickHouse's max_execution_time, so
// the server stops a query the client gave up on (504).
func apiQuery[T any](m *Monitor, w http.ResponseWriter, r *http.Request, limit int, q func(ctx context.Context, n int) ([]T, error)) (rows []T, truncated, ok bool) {
	n := m.opts.APIMaxRows
	if limit > 0 && limit < n {
		n = limit
	}
	if !apiRun(m, w, r, func(ctx context.Context) (err error) {
		rows, err = q(ctx, n+1)
		return err
	}) {
		return nil, false, false
	}
	if len(rows) > n {
		return rows[:n], true, true
	}
	return rows, false, true
}

// apiRun runs a handler's queries, q, within api_query_timeout as apiQuery
// does, and reports whether they succeeded (false: it wrote the error, or
// the client is gone).
func apiRun(m *Monitor, w http.ResponseWriter, r *http.Request, q func(ctx context.Context) error) bool {
	timeout := m.opts.APIQueryTimeout
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{
		"max_execution_time":                           int(math.Ceil(timeout.Seconds())),
		"cancel_http_readonly_queries_on_client_close": 1,
	}))
	err := q(ctx)
	switch {
	case r.Context().Err() != nil:
		// The client is gone; there is nobody to answer.
		return false
	case errors.Is(err, context.DeadlineExceeded) || chclient.Code(err) == codeTimeoutExceeded:
		fail(w, http.StatusGatewayTimeout, "query did not finish within api_query_timeout (%s): %v", timeout, err)
		return false
	case err != nil:
		fail(w, http.StatusBadGateway, "%v", err)
		return false
	}
	return true
}

// codeTimeoutExceeded is ClickHouse's TIMEOUT_EXCEEDED: max_execution_time
// passed.
const codeTimeoutExceeded = 159

func validModel(w http.ResponseWriter, model string) bool {
	if !modelID.MatchString(model) {
		fail(w, http.StatusBadRequest, "model %q: must be 1-128 characters of letters, digits and ._:-", model)
		return false
	}
	return true
}

// ResultRow is one drift_results row in the API.
type ResultRow struct {
	Feature        string    `json:"feature"`
	Kind           string    `json:"kind"`
	Method         string    `json:"method"`
	Value          *float64  `json:"value"`
	PValue         *float64  `json:"p_value"`
	PValueAdjusted *float64  `json:"p_value_adjusted"`
	Threshold      float64   `json:"threshold"`
	Drifted        bool      `json:"drifted"`
	Sustained      bool      `json:"sustained"`
	Status         string    `json:"status"`
	Samples        uint64    `json:"samples"`
	WindowStart    time.Time `json:"window_start"`
	WindowEnd      time.Time `json:"window_end"`
	// Reference is how the window's reference was chosen (growing,
	// pinned, previous or fixed) and ReferenceStart/End its span.
	Reference      string    `json:"reference"`
	ReferenceStart time.Time `json:"reference_start"`
	ReferenceEnd   time.Time `json:"reference_end"`
	// Note says why a method was skipped (status skipped) or why a
	// sustained drift triggers nothing ("below min_importance …"), else
	// empty.
	Note string `json:"note,omitempty"`
	// Importance is the champion's importance share of the feature (input
	// features, when the champion has importance registered).
	Importance *float64 `json:"importance,omitempty"`
}

func (m *Monitor) apiResults(w http.ResponseWriter, r *http.Request) {
	model := r.PathValue("model")
	if !validModel(w, model) {
		return
	}
	var sql string
	var imp Importance
	rows, truncated, ok := apiQuery(m, w, r, 0, func(ctx context.Context, n int) (rows []ResultRow, err error) {
		if rows, sql, err = m.store.LatestResults(ctx, model, n); err != nil {
			return nil, err
		}
		imp, err = m.championImportance(ctx, model)
		return rows, err
	})
	if !ok {
		return
	}
	if len(rows) == 0 {
		fail(w, http.StatusNotFound, "no results for model %q", model)
		return
	}
	for i := range rows {
		if s, has := imp.Shares[rows[i].Feature]; has && rows[i].Kind == policy.KindDrift {
			rows[i].Importance = nullable(s)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"model_id": model, "results": rows, "importance": weightedRanking(rows, imp), "truncated": truncated, "sql": []string{sql}})
}

func (m *Monitor) apiHistory(w http.ResponseWriter, r *http.Request) {
	model, feature := r.PathValue("model"), r.PathValue("feature")
	if !validModel(w, model) {
		return
	}
	limit, err := limitParam(r)
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	var sql string
	rows, truncated, ok := apiQuery(m, w, r, limit, func(ctx context.Context, n int) (rows []ResultRow, err error) {
		rows, sql, err = m.store.History(ctx, model, feature, r.URL.Query().Get("method"), n)
		return rows, err
	})
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"model_id": model, "feature": feature, "history": rows, "truncated": truncated, "sql": []string{sql}})
}

// TriggerRow is one retrain trigger in the API.
type TriggerRow struct {
	TriggerID   string          `json:"trigger_id"`
	ModelID     string          `json:"model_id"`
	Version     string          `json:"model_version"`
	Reason      string          `json:"reason"`
	Policy      string          `json:"policy"`
	WindowStart time.Time       `json:"window_start"`
	WindowEnd   time.Time       `json:"window_end"`
	Evidence    json.RawMessage `json:"evidence"`
	CreatedAt   time.Time       `json:"created_at"`
	DedupKey    string          `json:"dedup_key"`
}

func (m *Monitor) apiTriggers(w http.ResponseWriter, r *http.Request) {
	limit, err := limitParam(r)
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	model := r.URL.Query().Get("model")
	if model != "" && !validModel(w, model) {
		return
	}
	var sql string
	out, truncated, ok := apiQuery(m, w, r, limit, func(ctx context.Context, n int) (rows []TriggerRow, err error) {
		rows, sql, err = m.store.Triggers(ctx, model, n)
		return rows, err
	})
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"triggers": out, "truncated": truncated, "sql": []string{sql}})
}

// ManualRequest is the body of POST /api/v1/models/{model}/triggers.
type ManualRequest struct {
	ModelVersion   string `json:"model_version"`
	Note           string `json:"note"`
	IdempotencyKey string `json:"idempotency_key"`
}

func (m *Monitor) apiManual(w http.ResponseWriter, r *http.Request) {
	model := r.PathValue("model")
	if !validModel(w, model) {
		return
	}
	var req ManualRequest
	if r.ContentLength != 0 {
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			fail(w, http.StatusBadRequest, "request body: %v", err)
			return
		}
	}
	if len(req.Note) > 1024 || len(req.IdempotencyKey) > 256 {
		fail(w, http.StatusBadRequest, "note is limited to 1024 bytes and idempotency_key to 256")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), m.opts.APIQueryTimeout)
	defer cancel()
	d, err := m.Manual(ctx, model, req.ModelVersion, req.IdempotencyKey, req.Note)
	if err != nil {
		fail(w, http.StatusBadGateway, "%v", err)
		return
	}
	status := http.StatusCreated
	switch d.Outcome {
	case OutcomeDuplicate:
		status = http.StatusOK
	case OutcomeDailyMax:
		status = http.StatusTooManyRequests
	}
	writeJSON(w, status, map[string]any{"outcome": d.Outcome, "trigger": d.Trigger})
}

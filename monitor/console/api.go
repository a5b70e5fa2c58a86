package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The answers of the monitor's API the console reads, decoded on its own
// side of the JSON (monitor/openapi.yaml is the contract): the console
// never imports package monitor, so it renders a remote monitor's answers
// exactly as the in-process ones.

type modelSummary struct {
	ModelID         string     `json:"model_id"`
	LastWindowStart time.Time  `json:"last_window_start"`
	LastWindowEnd   time.Time  `json:"last_window_end"`
	DriftedFeatures []string   `json:"drifted_features"`
	SustainedDrift  []string   `json:"sustained_features"`
	Samples         uint64     `json:"samples"`
	LastTriggerAt   *time.Time `json:"last_trigger_at"`
	// Overview fields a newer monitor adds; absent ones show as "—".
	QualityIssues   []string `json:"data_quality_issues"`
	LabelCoverage   *float64 `json:"label_coverage"`
	Performance     *float64 `json:"performance"`
	PerformanceName string   `json:"performance_metric"`
	PerformanceOK   *bool    `json:"performance_ok"`
	ChampionVersion string   `json:"champion_version"`
}

type resultRow struct {
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
	Reference      string    `json:"reference"`
	ReferenceStart time.Time `json:"reference_start"`
	ReferenceEnd   time.Time `json:"reference_end"`
	Note           string    `json:"note"`
}

type performanceRow struct {
	WindowStart   time.Time `json:"window_start"`
	WindowEnd     time.Time `json:"window_end"`
	Metric        string    `json:"metric"`
	Value         float64   `json:"value"`
	Samples       uint64    `json:"samples"`
	LabelCoverage float64   `json:"label_coverage"`
}

type correlationRow struct {
	ModelMetric    string  `json:"model_metric"`
	BusinessMetric string  `json:"business_metric"`
	Method         string  `json:"method"`
	Lag            uint16  `json:"lag"`
	Value          float64 `json:"value"`
	PValue         float64 `json:"p_value"`
	Samples        uint64  `json:"samples"`
	BucketSeconds  uint32  `json:"bucket_seconds"`
}

type triggerRow struct {
	TriggerID   string          `json:"trigger_id"`
	ModelID     string          `json:"model_id"`
	Version     string          `json:"model_version"`
	Reason      string          `json:"reason"`
	Policy      string          `json:"policy"`
	WindowStart time.Time       `json:"window_start"`
	WindowEnd   time.Time       `json:"window_end"`
	Evidence    json.RawMessage `json:"evidence"`
	CreatedAt   time.Time       `json:"created_at"`
}

// errNotFound is an API answer of 404: no such resource, or an endpoint
// this monitor does not serve (an older one), which a view shows as its
// empty state rather than as a failure.
var errNotFound = errors.New("not found")

// apiError is any other unsuccessful API answer.
type apiError struct {
	Path   string
	Status int
	Msg    string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("GET %s: %d %s", e.Path, e.Status, e.Msg)
}

// get issues GET path to the API and decodes its JSON answer into v.
func (c *Console) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, path, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	c.api.ServeHTTP(rec, req)
	body := rec.body.String()
	switch {
	case rec.status == http.StatusNotFound:
		return fmt.Errorf("GET %s: %w", path, errNotFound)
	case rec.status >= 300:
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(body)
		if json.Unmarshal([]byte(body), &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return &apiError{Path: path, Status: rec.status, Msg: msg}
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		return fmt.Errorf("GET %s: decode the answer: %w", path, err)
	}
	return nil
}

// recorder is the http.ResponseWriter an in-process API call writes to.
type recorder struct {
	header http.Header
	status int
	body   strings.Builder
	wrote  bool
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(s int) {
	if !r.wrote {
		r.status, r.wrote = s, true
	}
}
func (r *recorder) Write(p []byte) (int, error) {
	r.wrote = true
	return r.body.Write(p)
}

// RemoteAPI is an http.Handler that forwards each request to the monitor
// at base (for example http://127.0.0.1:9102) with the bearer token when
// one is given: `driftwatch report` renders through it what the monitor's
// /ui/ renders in-process.
func RemoteAPI(base, token string, client *http.Client) (http.Handler, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("monitor URL %q: want http(s)://host:port", base)
	}
	if client == nil {
		client = &http.Client{Timeout: time.Minute}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := http.NewRequestWithContext(r.Context(), r.Method, u.String()+r.URL.RequestURI(), nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		req.Header.Set("Accept", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, io.LimitReader(resp.Body, 256<<20))
	}), nil
}

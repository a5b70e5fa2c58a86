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
	ModelID               string              `json:"model_id"`
	LastWindowStart       *time.Time          `json:"last_window_start"`
	LastWindowEnd         *time.Time          `json:"last_window_end"`
	DriftStatus           string              `json:"drift_status"`
	DriftedFeatures       []string            `json:"drifted_features"`
	SustainedDrift        []string            `json:"sustained_features"`
	Samples               uint64              `json:"samples"`
	QualityStatus         string              `json:"data_quality_status"`
	QualityIssues         []qualityIssue      `json:"data_quality_issues"`
	PerformanceWindowEnd  *time.Time          `json:"performance_window_end"`
	Performance           map[string]*float64 `json:"performance"`
	LabelCoverage         *float64            `json:"label_coverage"`
	NewestInferenceMinute *time.Time          `json:"newest_inference_minute"`
	LastTriggerAt         *time.Time          `json:"last_trigger_at"`
	LastTriggerReason     string              `json:"last_trigger_reason"`
	ChampionVersion       string              `json:"champion_version"`
}

type qualityIssue struct {
	Feature string  `json:"feature"`
	Check   string  `json:"check"`
	Value   float64 `json:"value"`
}

type matrixWindow struct {
	WindowStart time.Time `json:"window_start"`
	WindowEnd   time.Time `json:"window_end"`
}

type matrixFeature struct {
	Feature string `json:"feature"`
	Kind    string `json:"kind"`
}

type matrixCell struct {
	Feature       string    `json:"feature"`
	WindowEnd     time.Time `json:"window_end"`
	Method        string    `json:"method"`
	Value         *float64  `json:"value"`
	PValue        *float64  `json:"p_value"`
	Threshold     *float64  `json:"threshold"`
	MethodDrifted bool      `json:"method_drifted"`
	Drifted       bool      `json:"drifted"`
	Sustained     bool      `json:"sustained"`
	Consecutive   int       `json:"consecutive"`
	Status        string    `json:"status"`
}

type distribution struct {
	Kind           string    `json:"kind"`
	WindowEnd      time.Time `json:"window_end"`
	Reference      string    `json:"reference"`
	ReferenceStart time.Time `json:"reference_start"`
	ReferenceEnd   time.Time `json:"reference_end"`
	ReferenceRows  uint64    `json:"reference_rows"`
	CurrentRows    uint64    `json:"current_rows"`
	Bins           []struct {
		Lower     *float64 `json:"lower"`
		Upper     *float64 `json:"upper"`
		Reference uint64   `json:"reference"`
		Current   uint64   `json:"current"`
	} `json:"bins"`
	Categories []struct {
		Value     string `json:"value"`
		Reference uint64 `json:"reference"`
		Current   uint64 `json:"current"`
		New       bool   `json:"new"`
	} `json:"categories"`
	SQL []string `json:"sql"`
}

type deadLetterRow struct {
	Reason    string `json:"reason"`
	Kind      string `json:"kind"`
	Count     uint64 `json:"count"`
	LastError string `json:"last_error"`
}

type trainingRun struct {
	RunID           string              `json:"run_id"`
	Version         string              `json:"version"`
	ParentVersion   string              `json:"parent_version"`
	Reason          string              `json:"reason"`
	Status          string              `json:"status"`
	Decision        string              `json:"decision"`
	DecisionReason  string              `json:"decision_reason"`
	Metrics         map[string]*float64 `json:"metrics"`
	ChampionMetrics map[string]*float64 `json:"champion_metrics"`
	DiffLo          *float64            `json:"diff_lo"`
	DiffHi          *float64            `json:"diff_hi"`
	RowsTrain       uint64              `json:"rows_train"`
	RowsEval        uint64              `json:"rows_eval"`
	StartedAt       time.Time           `json:"started_at"`
	FinishedAt      *time.Time          `json:"finished_at"`
}

type versionRow struct {
	Version       string              `json:"version"`
	Status        string              `json:"status"`
	Metrics       map[string]*float64 `json:"metrics"`
	ParentVersion string              `json:"parent_version"`
	Reason        string              `json:"reason"`
	CreatedAt     time.Time           `json:"created_at"`
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
	Importance     *float64  `json:"importance"`
}

// importanceView is the results' importance block: the input features
// ranked by drift weighted by the champion's importance.
type importanceView struct {
	ChampionVersion string `json:"champion_version"`
	Weighting       bool   `json:"weighting"`
	Note            string `json:"note"`
	Ranking         []struct {
		Feature            string   `json:"feature"`
		Drift              *float64 `json:"drift"`
		Importance         *float64 `json:"importance"`
		WeightedScore      *float64 `json:"weighted_score"`
		Rank               int      `json:"rank"`
		Drifted            bool     `json:"drifted"`
		BelowMinImportance bool     `json:"below_min_importance"`
	} `json:"ranking"`
}

type rootCauseRow struct {
	WindowStart    time.Time `json:"window_start"`
	WindowEnd      time.Time `json:"window_end"`
	Feature        string    `json:"feature"`
	Metric         string    `json:"metric"`
	SegmentKey     string    `json:"segment_key"`
	Segment        string    `json:"segment"`
	Rank           int       `json:"rank"`
	Kind           string    `json:"kind"`
	Mix            float64   `json:"mix"`
	Within         float64   `json:"within"`
	Total          float64   `json:"total"`
	ReferenceShare float64   `json:"reference_share"`
	CurrentShare   float64   `json:"current_share"`
	PopulationPSI  float64   `json:"population_psi"`
}

type segmentFlag struct {
	WindowEnd time.Time `json:"window_end"`
	Segment   string    `json:"segment"`
	Feature   string    `json:"feature"`
	Kind      string    `json:"kind"`
	Drifted   bool      `json:"drifted"`
	Sustained bool      `json:"sustained"`
	Status    string    `json:"status"`
	Samples   uint64    `json:"samples"`
	Note      string    `json:"note"`
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

package console

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/driftwatch/driftwatch/internal/svgchart"
)

// source is how to get a view's numbers without the console: the API
// call and the SQL an analyst would run against driftwatch's tables
// (with ClickHouse's {name:Type} parameters).
type source struct {
	API string
	SQL string
}

// --- overview ---------------------------------------------------------------

type overviewRow struct {
	modelSummary
	Drift     string // ok, drifted, sustained
	Quality   string // ok, issues, — (unknown)
	Perf      string
	Coverage  string
	Freshness string // fresh, stale, old
	Age       time.Duration
	Href      string
}

type overviewView struct {
	Rows      []overviewRow
	Total     int
	Sort, Q   string
	Sorts     []sortLink
	Truncated bool
	Source    source
}

type sortLink struct {
	Key, Label, Href string
	Active           bool
}

var overviewSorts = []struct{ key, label string }{
	{"model", "model"}, {"drift", "drift"}, {"quality", "data quality"}, {"coverage", "label coverage"},
	{"freshness", "freshness"}, {"trigger", "last trigger"}, {"samples", "samples"},
}

func (c *Console) overviewPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	v, err := c.overview(r.Context(), q.Get("sort"), q.Get("q"))
	if err != nil {
		c.fail(w, r, "Overview", err)
		return
	}
	c.render(w, r, http.StatusOK, "overview", &page{Title: "Models", View: v})
}

func (c *Console) overview(ctx context.Context, sortKey, filter string) (*overviewView, error) {
	var ans struct {
		Models    []modelSummary `json:"models"`
		Truncated bool           `json:"truncated"`
	}
	if err := c.get(ctx, "/api/v1/models", &ans); err != nil {
		return nil, err
	}
	now := c.now()
	v := &overviewView{Total: len(ans.Models), Sort: sortKey, Q: filter, Truncated: ans.Truncated,
		Source: source{API: "GET /api/v1/models", SQL: sqlModels}}
	needle := strings.ToLower(filter)
	for _, m := range ans.Models {
		if needle != "" && !strings.Contains(strings.ToLower(m.ModelID), needle) {
			continue
		}
		row := overviewRow{modelSummary: m, Drift: "ok", Quality: "—", Perf: "—", Coverage: "—", Href: "/ui/models/" + url.PathEscape(m.ModelID)}
		switch {
		case len(m.SustainedDrift) > 0:
			row.Drift = "sustained"
		case len(m.DriftedFeatures) > 0:
			row.Drift = "drifted"
		}
		if m.QualityIssues != nil {
			row.Quality = "ok"
			if len(m.QualityIssues) > 0 {
				row.Quality = "issues"
			}
		}
		if m.LabelCoverage != nil {
			row.Coverage = fmt.Sprintf("%.0f%%", *m.LabelCoverage*100)
		}
		if m.Performance != nil {
			row.Perf = fmt.Sprintf("%s %.3f", m.PerformanceName, *m.Performance)
		}
		row.Age = now.Sub(m.LastWindowEnd)
		switch {
		case row.Age <= 15*time.Minute:
			row.Freshness = "fresh"
		case row.Age <= 2*time.Hour:
			row.Freshness = "stale"
		default:
			row.Freshness = "old"
		}
		v.Rows = append(v.Rows, row)
	}
	rank := map[string]int{"sustained": 0, "drifted": 1, "ok": 2, "issues": 0, "—": 3}
	slices.SortStableFunc(v.Rows, func(a, b overviewRow) int {
		switch sortKey {
		case "drift":
			return cmp.Or(cmp.Compare(rank[a.Drift], rank[b.Drift]), -cmp.Compare(len(a.DriftedFeatures), len(b.DriftedFeatures)), strings.Compare(a.ModelID, b.ModelID))
		case "quality":
			return cmp.Or(cmp.Compare(rank[a.Quality], rank[b.Quality]), strings.Compare(a.ModelID, b.ModelID))
		case "coverage":
			return cmp.Or(cmp.Compare(ptr(a.LabelCoverage), ptr(b.LabelCoverage)), strings.Compare(a.ModelID, b.ModelID))
		case "freshness":
			return cmp.Or(-cmp.Compare(a.Age, b.Age), strings.Compare(a.ModelID, b.ModelID))
		case "trigger":
			return cmp.Or(-cmp.Compare(unix(a.LastTriggerAt), unix(b.LastTriggerAt)), strings.Compare(a.ModelID, b.ModelID))
		case "samples":
			return cmp.Or(-cmp.Compare(a.Samples, b.Samples), strings.Compare(a.ModelID, b.ModelID))
		}
		return strings.Compare(a.ModelID, b.ModelID)
	})
	for _, s := range overviewSorts {
		qs := url.Values{"sort": {s.key}}
		if filter != "" {
			qs.Set("q", filter)
		}
		v.Sorts = append(v.Sorts, sortLink{Key: s.key, Label: s.label, Href: "/ui/?" + qs.Encode(), Active: s.key == sortKey || (sortKey == "" && s.key == "model")})
	}
	return v, nil
}

func ptr(f *float64) float64 {
	if f == nil {
		return math.Inf(1)
	}
	return *f
}

func unix(t *time.Time) int64 {
	if t == nil {
		return 0
	}
	return t.Unix()
}

// --- model page -------------------------------------------------------------

type modelView struct {
	Model   string
	Report  bool
	Feature string
	// Window is the window the page shows (window_end), Latest the newest.
	Window, Latest time.Time
	Windows        []time.Time
	Features       []string

	Heatmap       template.HTML
	HeatmapSource source
	Drifted       []string
	Sustained     []string

	Results       []resultRow // the chosen feature's rows in the window
	ScoreHistory  template.HTML
	ScoreMethod   string
	ScoreSource   source
	Distribution  template.HTML
	DistNote      string
	DistSource    source
	Quality       []resultRow
	QualitySource source
	DeadLetters   []deadLetterRow
	DeadNote      string
	DeadSource    source

	Performance       template.HTML
	PerformanceRows   []performanceRow
	PerformanceSource source
	Correlations      template.HTML
	CorrelationRows   []correlationRow
	CorrelationSource source
}

type deadLetterRow struct {
	Reason string `json:"reason"`
	Count  uint64 `json:"count"`
}

func (c *Console) modelPage(w http.ResponseWriter, r *http.Request) {
	model := r.PathValue("model")
	q := r.URL.Query()
	var at time.Time
	if s := q.Get("window_end"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			c.render(w, r, http.StatusBadRequest, "error", &page{Title: model, Error: fmt.Sprintf("window_end %q: want an RFC 3339 time such as 2026-01-02T15:04:00Z", s)})
			return
		}
		at = t
	}
	v, err := c.model(r.Context(), model, q.Get("feature"), at, false)
	if errors.Is(err, errNotFound) {
		c.render(w, r, http.StatusOK, "model", &page{Title: model, View: &modelView{Model: model}})
		return
	}
	if err != nil {
		c.fail(w, r, model, err)
		return
	}
	c.render(w, r, http.StatusOK, "model", &page{Title: model, View: v})
}

func (c *Console) model(ctx context.Context, model, feature string, at time.Time, report bool) (*modelView, error) {
	pm := url.PathEscape(model)
	var latest struct {
		Results []resultRow `json:"results"`
	}
	if err := c.get(ctx, "/api/v1/models/"+pm+"/results", &latest); err != nil {
		return nil, err
	}
	v := &modelView{Model: model, Feature: feature, Report: report}
	features := map[string]bool{}
	for _, r := range latest.Results {
		if r.Kind == "data_quality" {
			v.Quality = append(v.Quality, r)
			continue
		}
		if !features[r.Feature] {
			features[r.Feature] = true
			v.Features = append(v.Features, r.Feature)
		}
	}
	slices.Sort(v.Features)
	v.QualitySource = source{API: "GET /api/v1/models/" + pm + "/results", SQL: sqlQuality}

	// Every feature's history: the heatmap's rows.
	history := map[string][]resultRow{}
	ends := map[time.Time]bool{}
	for _, f := range v.Features {
		var h struct {
			History []resultRow `json:"history"`
		}
		if err := c.get(ctx, fmt.Sprintf("/api/v1/models/%s/features/%s/history?limit=%d", pm, url.PathEscape(f), c.windows*12), &h); err != nil && !errors.Is(err, errNotFound) {
			return nil, err
		}
		history[f] = h.History
		for _, r := range h.History {
			ends[r.WindowEnd] = true
		}
	}
	for t := range ends {
		v.Windows = append(v.Windows, t)
	}
	slices.SortFunc(v.Windows, func(a, b time.Time) int { return a.Compare(b) })
	if len(v.Windows) > c.windows {
		v.Windows = v.Windows[len(v.Windows)-c.windows:]
	}
	if len(v.Windows) == 0 {
		return v, nil
	}
	v.Latest = v.Windows[len(v.Windows)-1]
	v.Window = v.Latest
	if !at.IsZero() {
		for _, t := range v.Windows {
			if !t.After(at) {
				v.Window = t
			}
		}
	}
	c.heatmap(v, history)
	if v.Feature == "" {
		v.Feature = cmp.Or(first(v.Sustained), first(v.Drifted), v.Features[0])
	}
	c.feature(ctx, v, history[v.Feature])
	if err := c.performance(ctx, v); err != nil {
		return nil, err
	}
	if err := c.correlations(ctx, v); err != nil {
		return nil, err
	}
	c.deadLetters(ctx, v)
	return v, nil
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// score is a window's worst value-against-threshold ratio over the
// methods that decide by value (p-value methods have no ratio).
func score(rows []resultRow) (ratio, value, threshold float64, method string) {
	ratio = math.NaN()
	for _, r := range rows {
		if r.Method == "verdict" || r.Value == nil || r.PValueAdjusted != nil || r.Threshold <= 0 {
			continue
		}
		if q := *r.Value / r.Threshold; math.IsNaN(ratio) || q > ratio {
			ratio, value, threshold, method = q, *r.Value, r.Threshold, r.Method
		}
	}
	return
}

func (c *Console) heatmap(v *modelView, history map[string][]resultRow) {
	cols := make([]string, len(v.Windows))
	for i, t := range v.Windows {
		cols[i] = t.UTC().Format("01-02 15:04")
	}
	cells := make([][]svgchart.Cell, len(v.Features))
	for i, f := range v.Features {
		byEnd := map[time.Time][]resultRow{}
		for _, r := range history[f] {
			byEnd[r.WindowEnd] = append(byEnd[r.WindowEnd], r)
		}
		cells[i] = make([]svgchart.Cell, len(v.Windows))
		for j, t := range v.Windows {
			rows := byEnd[t]
			if len(rows) == 0 {
				cells[i][j] = svgchart.Cell{Missing: true}
				continue
			}
			cell := svgchart.Cell{}
			for _, r := range rows {
				if r.Method == "verdict" {
					cell.Drifted, cell.Sustained = r.Drifted, r.Sustained
				}
			}
			ratio, val, thr, method := score(rows)
			cell.Value, cell.Threshold = val, thr
			if math.IsNaN(ratio) {
				cell.Value, cell.Threshold = 0, 1
				if cell.Drifted {
					cell.Value = 1.5
				}
			}
			state := "not drifted"
			switch {
			case cell.Sustained:
				state = "sustained drift"
			case cell.Drifted:
				state = "drifted"
			}
			cell.Title = fmt.Sprintf("%s, window ending %s: %s", f, t.UTC().Format(time.RFC3339), state)
			if method != "" {
				cell.Title += fmt.Sprintf(" (%s %.4g, threshold %.4g)", method, val, thr)
			}
			if !v.Report {
				cell.Href = modelHref(v.Model, f, t)
			}
			cells[i][j] = cell
			if t.Equal(v.Window) {
				if cell.Drifted {
					v.Drifted = append(v.Drifted, f)
				}
				if cell.Sustained {
					v.Sustained = append(v.Sustained, f)
				}
			}
		}
	}
	v.Heatmap = svgchart.Heatmap(v.Features, cols, cells)
	v.HeatmapSource = source{API: "GET /api/v1/models/" + url.PathEscape(v.Model) + "/features/{feature}/history (each feature)", SQL: sqlHeatmap}
}

func modelHref(model, feature string, end time.Time) string {
	q := url.Values{"feature": {feature}}
	if !end.IsZero() {
		q.Set("window_end", end.UTC().Format(time.RFC3339))
	}
	return "/ui/models/" + url.PathEscape(model) + "?" + q.Encode()
}

// FeatureHref is the console path of a model's feature at a window (the
// zero time: the latest), for links from elsewhere (alerts, Grafana).
func FeatureHref(model, feature string, end time.Time) string { return modelHref(model, feature, end) }

type distribution struct {
	Kind string `json:"kind"`
	// Numeric: bin edges (len(bins)+1) and counts per bin.
	Edges      []float64 `json:"edges"`
	Reference  []float64 `json:"reference"`
	Current    []float64 `json:"current"`
	Categories []string  `json:"categories"`
	New        []bool    `json:"new"`
}

func (c *Console) feature(ctx context.Context, v *modelView, history []resultRow) {
	pm, pf := url.PathEscape(v.Model), url.PathEscape(v.Feature)
	byMethod := map[string][]svgchart.Point{}
	thresholds := map[string]float64{}
	for _, r := range history {
		if r.WindowEnd.Equal(v.Window) {
			v.Results = append(v.Results, r)
		}
		if r.Method == "verdict" || r.Value == nil || r.PValueAdjusted != nil {
			continue
		}
		byMethod[r.Method] = append(byMethod[r.Method], svgchart.Point{T: r.WindowEnd, Y: *r.Value})
		thresholds[r.Method] = r.Threshold
	}
	_, _, _, v.ScoreMethod = score(v.Results)
	if v.ScoreMethod == "" {
		for m := range byMethod {
			v.ScoreMethod = cmp.Or(min(v.ScoreMethod, m), m)
		}
	}
	if pts := byMethod[v.ScoreMethod]; len(pts) > 0 {
		slices.SortFunc(pts, func(a, b svgchart.Point) int { return a.T.Compare(b.T) })
		v.ScoreHistory = svgchart.Line([]svgchart.LineSeries{{Name: v.ScoreMethod, Class: "current", Points: pts}},
			[]svgchart.Guide{{Name: "threshold", Class: "limit", Y: thresholds[v.ScoreMethod]}}, "")
	}
	v.ScoreSource = source{API: fmt.Sprintf("GET /api/v1/models/%s/features/%s/history?method=%s", pm, pf, url.QueryEscape(v.ScoreMethod)), SQL: sqlHistory}

	path := fmt.Sprintf("/api/v1/models/%s/features/%s/distribution?window_end=%s", pm, pf, url.QueryEscape(v.Window.UTC().Format(time.RFC3339)))
	v.DistSource = source{API: "GET " + path, SQL: sqlDistribution}
	var d distribution
	if err := c.get(ctx, path, &d); err != nil {
		v.DistNote = "No stored distribution for this feature and window: " + err.Error() + ". The monitor stores the reference and current bin and category counts of every window it evaluates (drift_distributions); windows evaluated before it did have none."
		return
	}
	shares := func(xs []float64) []float64 {
		var sum float64
		for _, x := range xs {
			sum += x
		}
		out := make([]float64, len(xs))
		for i, x := range xs {
			out[i] = x / math.Max(sum, 1)
		}
		return out
	}
	series := []svgchart.Series{{Name: "reference", Class: "reference", Values: shares(d.Reference)}, {Name: "current", Class: "current", Values: shares(d.Current)}}
	labels := d.Categories
	if len(labels) == 0 {
		for i := 0; i+1 < len(d.Edges); i++ {
			labels = append(labels, fmt.Sprintf("%.3g", d.Edges[i]))
		}
	}
	v.Distribution = svgchart.Bars(labels, series, d.New, "%")
}

func (c *Console) performance(ctx context.Context, v *modelView) error {
	pm := url.PathEscape(v.Model)
	path := "/api/v1/models/" + pm + "/performance?limit=500"
	v.PerformanceSource = source{API: "GET " + path, SQL: sqlPerformance}
	var ans struct {
		Performance []performanceRow `json:"performance"`
	}
	if err := c.get(ctx, path, &ans); err != nil && !errors.Is(err, errNotFound) {
		return err
	}
	if len(ans.Performance) == 0 {
		return nil
	}
	byMetric := map[string][]svgchart.Point{}
	var coverage []svgchart.Point
	seen := map[time.Time]bool{}
	for _, r := range ans.Performance {
		byMetric[r.Metric] = append(byMetric[r.Metric], svgchart.Point{T: r.WindowEnd, Y: r.Value})
		if !seen[r.WindowEnd] {
			seen[r.WindowEnd] = true
			coverage = append(coverage, svgchart.Point{T: r.WindowEnd, Y: r.LabelCoverage})
		}
		if r.WindowEnd.Equal(v.Window) || len(v.PerformanceRows) < 12 {
			v.PerformanceRows = append(v.PerformanceRows, r)
		}
	}
	var series []svgchart.LineSeries
	metrics := make([]string, 0, len(byMetric))
	for m := range byMetric {
		metrics = append(metrics, m)
	}
	slices.Sort(metrics)
	// One chart on a 0–1 scale: the metrics that are shares or scores
	// (accuracy, roc_auc, …), not counts or seconds (label delays).
	metrics = slices.DeleteFunc(metrics, func(m string) bool {
		if m == "label_coverage" {
			return true
		}
		for _, p := range byMetric[m] {
			if p.Y < 0 || p.Y > 1 {
				return true
			}
		}
		return false
	})
	for i, m := range metrics {
		pts := byMetric[m]
		slices.SortFunc(pts, func(a, b svgchart.Point) int { return a.T.Compare(b.T) })
		series = append(series, svgchart.LineSeries{Name: m, Class: fmt.Sprintf("s%d", i%6), Points: pts})
	}
	slices.SortFunc(coverage, func(a, b svgchart.Point) int { return a.T.Compare(b.T) })
	series = append(series, svgchart.LineSeries{Name: "label coverage", Class: "coverage", Points: coverage})
	v.Performance = svgchart.Line(series, nil, "")
	return nil
}

func (c *Console) correlations(ctx context.Context, v *modelView) error {
	path := "/api/v1/models/" + url.PathEscape(v.Model) + "/correlations"
	v.CorrelationSource = source{API: "GET " + path, SQL: sqlCorrelations}
	var ans struct {
		Correlations []correlationRow `json:"correlations"`
	}
	if err := c.get(ctx, path, &ans); err != nil && !errors.Is(err, errNotFound) {
		return err
	}
	v.CorrelationRows = ans.Correlations
	if len(ans.Correlations) == 0 {
		return nil
	}
	maxLag := uint16(0)
	pairs := map[string][]float64{}
	var names []string
	for _, r := range ans.Correlations {
		maxLag = max(maxLag, r.Lag)
	}
	for _, r := range ans.Correlations {
		k := r.ModelMetric + " ~ " + r.BusinessMetric + " (" + r.Method + ")"
		if pairs[k] == nil {
			pairs[k] = make([]float64, maxLag+1)
			for i := range pairs[k] {
				pairs[k][i] = math.NaN()
			}
			names = append(names, k)
		}
		pairs[k][r.Lag] = r.Value
	}
	labels := make([]string, maxLag+1)
	for i := range labels {
		labels[i] = fmt.Sprintf("lag %d", i)
	}
	var series []svgchart.Series
	for i, n := range names {
		series = append(series, svgchart.Series{Name: n, Class: fmt.Sprintf("s%d", i%6), Values: pairs[n]})
	}
	v.Correlations = svgchart.Bars(labels, series, nil, "")
	return nil
}

func (c *Console) deadLetters(ctx context.Context, v *modelView) {
	path := "/api/v1/models/" + url.PathEscape(v.Model) + "/dead-letters"
	v.DeadSource = source{API: "GET " + path, SQL: sqlDeadLetters}
	var ans struct {
		DeadLetters []deadLetterRow `json:"dead_letters"`
	}
	if err := c.get(ctx, path, &ans); err != nil {
		v.DeadNote = "Dead letters per reason are not available from this monitor (" + err.Error() + "); read them from the dead-letter topic."
		return
	}
	v.DeadLetters = ans.DeadLetters
}

// --- triggers ---------------------------------------------------------------

type triggersView struct {
	Model    string
	Triggers []triggerView
	Source   source
}

type triggerView struct {
	triggerRow
	Evidence string
	Href     string
}

func (c *Console) triggersPage(w http.ResponseWriter, r *http.Request) {
	model := r.URL.Query().Get("model")
	path := "/api/v1/triggers?limit=200"
	if model != "" {
		path += "&model=" + url.QueryEscape(model)
	}
	var ans struct {
		Triggers []triggerRow `json:"triggers"`
	}
	if err := c.get(r.Context(), path, &ans); err != nil {
		c.fail(w, r, "Triggers", err)
		return
	}
	v := &triggersView{Model: model, Source: source{API: "GET " + path, SQL: sqlTriggers}}
	for _, t := range ans.Triggers {
		ev := string(t.Evidence)
		var pretty any
		if json.Unmarshal(t.Evidence, &pretty) == nil {
			if b, err := json.MarshalIndent(pretty, "", "  "); err == nil {
				ev = string(b)
			}
		}
		v.Triggers = append(v.Triggers, triggerView{triggerRow: t, Evidence: ev, Href: modelHref(t.ModelID, "", t.WindowEnd)})
	}
	c.render(w, r, http.StatusOK, "triggers", &page{Title: "Retrain triggers", View: v})
}

// --- training ---------------------------------------------------------------

type trainingView struct {
	Model          string
	Runs           []map[string]any
	Versions       []map[string]any
	RunsNote       string
	VersionsNote   string
	RunsSource     source
	VersionsSource source
}

func (c *Console) trainingPage(w http.ResponseWriter, r *http.Request) {
	model := r.PathValue("model")
	pm := url.PathEscape(model)
	v := &trainingView{Model: model,
		RunsSource:     source{API: "GET /api/v1/models/" + pm + "/training-runs", SQL: sqlTrainingRuns},
		VersionsSource: source{API: "GET /api/v1/models/" + pm + "/versions", SQL: sqlVersions}}
	var runs struct {
		Runs []map[string]any `json:"runs"`
	}
	if err := c.get(r.Context(), "/api/v1/models/"+pm+"/training-runs", &runs); err != nil {
		v.RunsNote = "No training runs to show (" + err.Error() + ")."
	}
	v.Runs = runs.Runs
	var versions struct {
		Versions []map[string]any `json:"versions"`
	}
	if err := c.get(r.Context(), "/api/v1/models/"+pm+"/versions", &versions); err != nil {
		v.VersionsNote = "No versions to show (" + err.Error() + ")."
	}
	v.Versions = versions.Versions
	c.render(w, r, http.StatusOK, "training", &page{Title: model + ": training", View: v})
}

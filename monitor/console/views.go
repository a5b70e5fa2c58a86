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
	"github.com/driftwatch/driftwatch/schemas"
)

// source is how to get a view's numbers without the console: the API
// call and the SQL an analyst would run against driftwatch's tables
// (every read answer of the API carries its queries in "sql").
type source struct {
	API string
	SQL []string
}

// --- overview ---------------------------------------------------------------

type overviewRow struct {
	modelSummary
	Perf      string
	Coverage  string
	Freshness string // fresh, stale, old, unknown
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
		SQL       []string       `json:"sql"`
	}
	if err := c.get(ctx, "/api/v1/models", &ans); err != nil {
		return nil, err
	}
	now := c.now()
	v := &overviewView{Total: len(ans.Models), Sort: sortKey, Q: filter, Truncated: ans.Truncated,
		Source: source{API: "GET /api/v1/models", SQL: ans.SQL}}
	needle := strings.ToLower(filter)
	for _, m := range ans.Models {
		if needle != "" && !strings.Contains(strings.ToLower(m.ModelID), needle) {
			continue
		}
		row := overviewRow{modelSummary: m, Perf: "—", Coverage: "—", Freshness: "unknown", Age: -1, Href: "/ui/models/" + url.PathEscape(m.ModelID)}
		row.DriftStatus = cmp.Or(row.DriftStatus, "unknown")
		row.QualityStatus = cmp.Or(row.QualityStatus, "unknown")
		if m.LabelCoverage != nil {
			row.Coverage = fmt.Sprintf("%.0f%%", *m.LabelCoverage*100)
		}
		for _, k := range []string{"roc_auc", "accuracy", "f1", "rmse", "mae"} {
			if p := m.Performance[k]; p != nil {
				row.Perf = fmt.Sprintf("%s %.3f", k, *p)
				break
			}
		}
		// Freshness: how long ago the newest inference arrived (else the
		// newest window ended).
		if t := cmp.Or(m.NewestInferenceMinute, m.LastWindowEnd); t != nil {
			row.Age = now.Sub(*t)
			switch {
			case row.Age <= 15*time.Minute:
				row.Freshness = "fresh"
			case row.Age <= 2*time.Hour:
				row.Freshness = "stale"
			default:
				row.Freshness = "old"
			}
		}
		v.Rows = append(v.Rows, row)
	}
	rank := map[string]int{"sustained": 0, "drifted": 1, "issues": 1, "ok": 2, "unknown": 3}
	slices.SortStableFunc(v.Rows, func(a, b overviewRow) int {
		switch sortKey {
		case "drift":
			return cmp.Or(cmp.Compare(rank[a.DriftStatus], rank[b.DriftStatus]), -cmp.Compare(len(a.DriftedFeatures), len(b.DriftedFeatures)), strings.Compare(a.ModelID, b.ModelID))
		case "quality":
			return cmp.Or(cmp.Compare(rank[a.QualityStatus], rank[b.QualityStatus]), -cmp.Compare(len(a.QualityIssues), len(b.QualityIssues)), strings.Compare(a.ModelID, b.ModelID))
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
	Method         string

	Heatmap       template.HTML
	HeatmapSource source
	Drifted       []string
	Sustained     []string

	Results       []resultRow // the chosen feature's rows in the window
	ScoreHistory  template.HTML
	ScoreSource   source
	Distribution  template.HTML
	Dist          *distribution
	NewCategories []string
	DistNote      string
	DistSource    source
	Quality       []resultRow
	QualitySource source
	DeadLetters   []deadLetterRow
	DeadTotal     uint64
	DeadSource    source

	Performance       template.HTML
	PerformanceRows   []performanceRow
	PerformanceSource source
	Correlations      template.HTML
	CorrelationRows   []correlationRow
	CorrelationSource source

	// Importance ranks the latest window's input features by drift
	// weighted by the champion's importance.
	Importance       importanceView
	ImportanceSource source
	// Unimportant are the latest window's features whose sustained drift
	// min_importance keeps from triggering.
	Unimportant []string
	// RootCauses are the top slices (rank ≤ topSlices) of each drifted
	// feature and key in the newest window with root causes; SliceFlags
	// the slices' drifted features in the newest window with slices, and
	// Slices every slice evaluated in it.
	RootCauses []rootCauseRow
	RootSource source
	// PerfRootCauses are the top slices of each key in the newest
	// performance drop's decomposition (the metric's change split into
	// mix and within-slice parts).
	PerfRootCauses []rootCauseRow
	PerfRootSource source
	SliceFlags     []segmentFlag
	Slices         []string
	SliceSource    source
}

// topSlices is how many slices of each feature and key the Slices panel
// lists.
const topSlices = 3

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
	v, err := c.model(r.Context(), model, q.Get("feature"), q.Get("method"), at, false)
	if err != nil {
		c.fail(w, r, model, err)
		return
	}
	c.render(w, r, http.StatusOK, "model", &page{Title: model, View: v})
}

func (c *Console) model(ctx context.Context, model, feature, method string, at time.Time, report bool) (*modelView, error) {
	pm := url.PathEscape(model)
	v := &modelView{Model: model, Feature: feature, Report: report}
	path := fmt.Sprintf("/api/v1/models/%s/drift-matrix?windows=%d", pm, c.windows)
	if method != "" {
		path += "&method=" + url.QueryEscape(method)
	}
	var mx struct {
		Method   string          `json:"method"`
		Windows  []matrixWindow  `json:"windows"`
		Features []matrixFeature `json:"features"`
		Cells    []matrixCell    `json:"cells"`
		SQL      []string        `json:"sql"`
	}
	if err := c.get(ctx, path, &mx); err != nil && !errors.Is(err, errNotFound) {
		return nil, err
	}
	v.Method = mx.Method
	v.HeatmapSource = source{API: "GET " + path, SQL: mx.SQL}
	for _, w := range mx.Windows {
		v.Windows = append(v.Windows, w.WindowEnd)
	}
	for _, f := range mx.Features {
		v.Features = append(v.Features, f.Feature)
	}
	if len(v.Windows) == 0 || len(v.Features) == 0 {
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
	c.heatmap(v, mx.Cells)
	if v.Feature == "" {
		v.Feature = cmp.Or(first(v.Sustained), first(v.Drifted), v.Features[0])
	}
	for _, step := range []func(context.Context, *modelView) error{c.feature, c.distribution, c.quality, c.deadLetters, c.performance, c.correlations, c.importance, c.sliceViews} {
		if err := step(ctx, v); err != nil {
			return nil, err
		}
	}
	return v, nil
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func (c *Console) heatmap(v *modelView, cells []matrixCell) {
	col := map[time.Time]int{}
	cols := make([]string, len(v.Windows))
	for i, t := range v.Windows {
		col[t] = i
		cols[i] = t.UTC().Format("01-02 15:04")
	}
	row := map[string]int{}
	for i, f := range v.Features {
		row[f] = i
	}
	grid := make([][]svgchart.Cell, len(v.Features))
	for i := range grid {
		grid[i] = make([]svgchart.Cell, len(v.Windows))
		for j := range grid[i] {
			grid[i][j] = svgchart.Cell{Missing: true}
		}
	}
	for _, mc := range cells {
		i, ok1 := row[mc.Feature]
		j, ok2 := col[mc.WindowEnd]
		if !ok1 || !ok2 {
			continue
		}
		cell := svgchart.Cell{Drifted: mc.Drifted, Sustained: mc.Sustained}
		switch {
		case mc.Value != nil && mc.Threshold != nil:
			cell.Value, cell.Threshold = *mc.Value, *mc.Threshold
		case mc.Drifted:
			cell.Value, cell.Threshold = 1.5, 1
		default:
			cell.Value, cell.Threshold = 0, 1
		}
		state := "not drifted"
		switch {
		case mc.Sustained:
			state = fmt.Sprintf("sustained drift (%d windows in a row)", mc.Consecutive)
		case mc.Drifted:
			state = "drifted"
		}
		cell.Title = fmt.Sprintf("%s, window ending %s: %s", mc.Feature, mc.WindowEnd.UTC().Format(time.RFC3339), state)
		if mc.Value != nil && mc.Threshold != nil {
			cell.Title += fmt.Sprintf(" (%s %.4g, threshold %.4g)", mc.Method, *mc.Value, *mc.Threshold)
		}
		if !v.Report {
			cell.Href = modelHref(v.Model, mc.Feature, mc.WindowEnd)
		}
		grid[i][j] = cell
		if mc.WindowEnd.Equal(v.Window) {
			if mc.Drifted {
				v.Drifted = append(v.Drifted, mc.Feature)
			}
			if mc.Sustained {
				v.Sustained = append(v.Sustained, mc.Feature)
			}
		}
	}
	v.Heatmap = svgchart.Heatmap(v.Features, cols, grid)
}

func modelHref(model, feature string, end time.Time) string {
	q := url.Values{}
	if feature != "" {
		q.Set("feature", feature)
	}
	if !end.IsZero() {
		q.Set("window_end", end.UTC().Format(time.RFC3339))
	}
	h := "/ui/models/" + url.PathEscape(model)
	if len(q) > 0 {
		h += "?" + q.Encode()
	}
	return h
}

// FeatureHref is the console path of a model's feature at a window (the
// zero time: the latest), for links from elsewhere (alerts, Grafana).
func FeatureHref(model, feature string, end time.Time) string { return modelHref(model, feature, end) }

// feature fills the chosen feature's results in the window and its score
// history (the heatmap's method, else the first one with a threshold).
func (c *Console) feature(ctx context.Context, v *modelView) error {
	path := fmt.Sprintf("/api/v1/models/%s/features/%s/history?limit=%d", url.PathEscape(v.Model), url.PathEscape(v.Feature), c.windows*16)
	var h struct {
		History []resultRow `json:"history"`
		SQL     []string    `json:"sql"`
	}
	if err := c.get(ctx, path, &h); err != nil && !errors.Is(err, errNotFound) {
		return err
	}
	v.ScoreSource = source{API: "GET " + path, SQL: h.SQL}
	byMethod := map[string][]svgchart.Point{}
	thresholds := map[string]float64{}
	var methods []string
	for _, r := range h.History {
		if r.WindowEnd.Equal(v.Window) {
			v.Results = append(v.Results, r)
		}
		if r.Kind == "data_quality" || r.Method == "verdict" || r.Value == nil || r.PValueAdjusted != nil || r.Threshold <= 0 {
			continue
		}
		if byMethod[r.Method] == nil {
			methods = append(methods, r.Method)
		}
		byMethod[r.Method] = append(byMethod[r.Method], svgchart.Point{T: r.WindowEnd, Y: *r.Value})
		thresholds[r.Method] = r.Threshold
	}
	method := v.Method
	if byMethod[method] == nil {
		slices.Sort(methods)
		method = first(methods)
	}
	if pts := byMethod[method]; len(pts) > 0 {
		slices.SortFunc(pts, func(a, b svgchart.Point) int { return a.T.Compare(b.T) })
		v.ScoreHistory = svgchart.Line([]svgchart.LineSeries{{Name: method, Class: "current", Points: pts}},
			[]svgchart.Guide{{Name: "threshold", Class: "limit", Y: thresholds[method]}}, "")
	}
	return nil
}

func (c *Console) distribution(ctx context.Context, v *modelView) error {
	path := fmt.Sprintf("/api/v1/models/%s/features/%s/distribution?window_end=%s", url.PathEscape(v.Model), url.PathEscape(v.Feature), url.QueryEscape(v.Window.UTC().Format(time.RFC3339)))
	v.DistSource = source{API: "GET " + path}
	var d distribution
	switch err := c.get(ctx, path, &d); {
	case errors.Is(err, errNotFound):
		v.DistNote = "No stored distribution for " + v.Feature + " in this window: the monitor stores the reference and current counts of every window it evaluates (drift_distributions), and windows evaluated before it did have none."
		return nil
	case err != nil:
		return err
	}
	v.Dist, v.DistSource.SQL = &d, d.SQL
	shares := func(xs []uint64) []float64 {
		var sum uint64
		for _, x := range xs {
			sum += x
		}
		out := make([]float64, len(xs))
		for i, x := range xs {
			out[i] = float64(x) / float64(max(sum, 1))
		}
		return out
	}
	var labels []string
	var ref, cur []uint64
	var marked []bool
	for _, b := range d.Bins {
		label := "…"
		switch {
		case b.Lower != nil && b.Upper != nil:
			label = fmt.Sprintf("%.3g–%.3g", *b.Lower, *b.Upper)
		case b.Lower != nil:
			label = fmt.Sprintf("≥ %.3g", *b.Lower)
		case b.Upper != nil:
			label = fmt.Sprintf("< %.3g", *b.Upper)
		}
		labels, ref, cur, marked = append(labels, label), append(ref, b.Reference), append(cur, b.Current), append(marked, false)
	}
	for _, k := range d.Categories {
		labels, ref, cur, marked = append(labels, k.Value), append(ref, k.Reference), append(cur, k.Current), append(marked, k.New)
		if k.New {
			v.NewCategories = append(v.NewCategories, k.Value)
		}
	}
	if len(labels) == 0 {
		v.DistNote = "The stored distribution of " + v.Feature + " has no bins or categories."
		return nil
	}
	v.Distribution = svgchart.Bars(labels, []svgchart.Series{
		{Name: fmt.Sprintf("reference (%d rows)", d.ReferenceRows), Class: "reference", Values: shares(ref)},
		{Name: fmt.Sprintf("current (%d rows)", d.CurrentRows), Class: "current", Values: shares(cur)},
	}, marked, "%")
	return nil
}

func (c *Console) quality(ctx context.Context, v *modelView) error {
	path := "/api/v1/models/" + url.PathEscape(v.Model) + "/data-quality"
	var ans struct {
		DataQuality []resultRow `json:"data_quality"`
		SQL         []string    `json:"sql"`
	}
	if err := c.get(ctx, path, &ans); err != nil && !errors.Is(err, errNotFound) {
		return err
	}
	v.Quality, v.QualitySource = ans.DataQuality, source{API: "GET " + path, SQL: ans.SQL}
	return nil
}

// importance reads the latest results' importance block.
func (c *Console) importance(ctx context.Context, v *modelView) error {
	path := "/api/v1/models/" + url.PathEscape(v.Model) + "/results"
	var ans struct {
		Importance importanceView `json:"importance"`
		SQL        []string       `json:"sql"`
	}
	if err := c.get(ctx, path, &ans); err != nil && !errors.Is(err, errNotFound) {
		return err
	}
	v.Importance, v.ImportanceSource = ans.Importance, source{API: "GET " + path, SQL: ans.SQL}
	for _, r := range ans.Importance.Ranking {
		if r.BelowMinImportance {
			v.Unimportant = append(v.Unimportant, r.Feature)
		}
	}
	return nil
}

// sliceViews reads the root causes and the slices' drift flags.
func (c *Console) sliceViews(ctx context.Context, v *modelView) error {
	pm := url.PathEscape(v.Model)
	rpath := "/api/v1/models/" + pm + "/root-cause"
	var rc struct {
		RootCauses []rootCauseRow `json:"root_causes"`
		SQL        []string       `json:"sql"`
	}
	if err := c.get(ctx, rpath, &rc); err != nil && !errors.Is(err, errNotFound) {
		return err
	}
	for _, r := range rc.RootCauses {
		if r.Rank <= topSlices {
			v.RootCauses = append(v.RootCauses, r)
		}
	}
	v.RootSource = source{API: "GET " + rpath, SQL: rc.SQL}
	ppath := rpath + "?metric=" + url.QueryEscape("*") // monitor.AnyPerformanceMetric
	var prc struct {
		RootCauses []rootCauseRow `json:"root_causes"`
		SQL        []string       `json:"sql"`
	}
	if err := c.get(ctx, ppath, &prc); err != nil && !errors.Is(err, errNotFound) {
		return err
	}
	for _, r := range prc.RootCauses {
		if r.Rank <= topSlices {
			v.PerfRootCauses = append(v.PerfRootCauses, r)
		}
	}
	v.PerfRootSource = source{API: "GET " + ppath, SQL: prc.SQL}
	spath := "/api/v1/models/" + pm + "/segments"
	var sf struct {
		Segments []segmentFlag `json:"segments"`
		SQL      []string      `json:"sql"`
	}
	if err := c.get(ctx, spath, &sf); err != nil && !errors.Is(err, errNotFound) {
		return err
	}
	seen := map[string]bool{}
	for _, f := range sf.Segments {
		if f.Drifted {
			v.SliceFlags = append(v.SliceFlags, f)
		}
		if !seen[f.Segment] {
			seen[f.Segment] = true
			v.Slices = append(v.Slices, f.Segment)
		}
	}
	slices.Sort(v.Slices)
	v.SliceSource = source{API: "GET " + spath, SQL: sf.SQL}
	return nil
}

func (c *Console) deadLetters(ctx context.Context, v *modelView) error {
	path := "/api/v1/models/" + url.PathEscape(v.Model) + "/dead-letters"
	var ans struct {
		Total       uint64          `json:"total"`
		DeadLetters []deadLetterRow `json:"dead_letters"`
		SQL         []string        `json:"sql"`
	}
	if err := c.get(ctx, path, &ans); err != nil && !errors.Is(err, errNotFound) {
		return err
	}
	v.DeadLetters, v.DeadTotal, v.DeadSource = ans.DeadLetters, ans.Total, source{API: "GET " + path, SQL: ans.SQL}
	return nil
}

func (c *Console) performance(ctx context.Context, v *modelView) error {
	path := "/api/v1/models/" + url.PathEscape(v.Model) + "/performance?limit=500"
	var ans struct {
		Performance []performanceRow `json:"performance"`
		SQL         []string         `json:"sql"`
	}
	if err := c.get(ctx, path, &ans); err != nil && !errors.Is(err, errNotFound) {
		return err
	}
	v.PerformanceSource = source{API: "GET " + path, SQL: ans.SQL}
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
		if len(v.PerformanceRows) < 12 {
			v.PerformanceRows = append(v.PerformanceRows, r)
		}
	}
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
	// The headline metric and its estimate before the labels (CBPE/DLE),
	// against label coverage; every metric is in the table below.
	if head := headlineMetric(byMetric); head != "" {
		metrics = slices.DeleteFunc(metrics, func(m string) bool { return m != head && m != "estimated_"+head })
	}
	var series []svgchart.LineSeries
	var guides []svgchart.Guide
	for i, m := range metrics {
		pts := byMetric[m]
		slices.SortFunc(pts, func(a, b svgchart.Point) int { return a.T.Compare(b.T) })
		series = append(series, svgchart.LineSeries{Name: m, Class: fmt.Sprintf("s%d", i%6), Points: pts})
		// The reference level: the metric's first (oldest) window shown.
		if !strings.HasPrefix(m, "estimated_") {
			guides = append(guides, svgchart.Guide{Name: m + " at the first window", Class: "reference-level", Y: pts[0].Y})
		}
	}
	slices.SortFunc(coverage, func(a, b svgchart.Point) int { return a.T.Compare(b.T) })
	series = append(series, svgchart.LineSeries{Name: "label coverage", Class: "coverage", Points: coverage})
	v.Performance = svgchart.Line(series, guides, "")
	return nil
}

// headlineMetric is the metric the performance chart shows: the first of
// the usual headline metrics the model has, "" for none of them.
func headlineMetric(byMetric map[string][]svgchart.Point) string {
	for _, m := range []string{"roc_auc", "accuracy", "f1", "mae", "rmse"} {
		if len(byMetric[m]) > 0 {
			return m
		}
	}
	return ""
}

func (c *Console) correlations(ctx context.Context, v *modelView) error {
	path := "/api/v1/models/" + url.PathEscape(v.Model) + "/correlations"
	var ans struct {
		Correlations []correlationRow `json:"correlations"`
		SQL          []string         `json:"sql"`
	}
	if err := c.get(ctx, path, &ans); err != nil && !errors.Is(err, errNotFound) {
		return err
	}
	v.CorrelationSource = source{API: "GET " + path, SQL: ans.SQL}
	v.CorrelationRows = ans.Correlations
	if len(ans.Correlations) == 0 {
		return nil
	}
	maxLag := uint16(0)
	for _, r := range ans.Correlations {
		maxLag = max(maxLag, r.Lag)
	}
	pairs := map[string][]float64{}
	var names []string
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

// --- triggers ---------------------------------------------------------------

type triggersView struct {
	Model    string
	Triggers []triggerView
	Source   source
}

type triggerView struct {
	triggerRow
	// Items is the evidence decoded (schemas.Evidence), Evidence its
	// JSON as stored.
	Items    []evidenceItem
	Evidence string
	Href     string
}

type evidenceItem struct {
	schemas.Evidence
	Href string
}

func (c *Console) triggersPage(w http.ResponseWriter, r *http.Request) {
	model := r.URL.Query().Get("model")
	path := "/api/v1/triggers?limit=200"
	if model != "" {
		path += "&model=" + url.QueryEscape(model)
	}
	var ans struct {
		Triggers []triggerRow `json:"triggers"`
		SQL      []string     `json:"sql"`
	}
	if err := c.get(r.Context(), path, &ans); err != nil {
		c.fail(w, r, "Triggers", err)
		return
	}
	v := &triggersView{Model: model, Source: source{API: "GET " + path, SQL: ans.SQL}}
	for _, t := range ans.Triggers {
		ev := string(t.Evidence)
		var pretty any
		if json.Unmarshal(t.Evidence, &pretty) == nil {
			if b, err := json.MarshalIndent(pretty, "", "  "); err == nil {
				ev = string(b)
			}
		}
		tv := triggerView{triggerRow: t, Evidence: ev, Href: modelHref(t.ModelID, "", t.WindowEnd)}
		var items []schemas.Evidence
		if json.Unmarshal(t.Evidence, &items) == nil {
			for _, e := range items {
				it := evidenceItem{Evidence: e}
				if e.Feature != "" {
					it.Href = modelHref(t.ModelID, e.Feature, t.WindowEnd)
				}
				tv.Items = append(tv.Items, it)
			}
		}
		v.Triggers = append(v.Triggers, tv)
	}
	c.render(w, r, http.StatusOK, "triggers", &page{Title: "Retrain triggers", View: v})
}

// --- training ---------------------------------------------------------------

type trainingView struct {
	Model          string
	Runs           []trainingRun
	Versions       []versionRow
	Champion       string
	RunsSource     source
	VersionsSource source
}

func (c *Console) trainingPage(w http.ResponseWriter, r *http.Request) {
	model := r.PathValue("model")
	pm := url.PathEscape(model)
	v := &trainingView{Model: model}
	var runs struct {
		Runs []trainingRun `json:"training_runs"`
		SQL  []string      `json:"sql"`
	}
	path := "/api/v1/models/" + pm + "/training-runs"
	if err := c.get(r.Context(), path, &runs); err != nil && !errors.Is(err, errNotFound) {
		c.fail(w, r, model+": training", err)
		return
	}
	v.Runs, v.RunsSource = runs.Runs, source{API: "GET " + path, SQL: runs.SQL}
	var versions struct {
		Champion string       `json:"champion"`
		Versions []versionRow `json:"versions"`
		SQL      []string     `json:"sql"`
	}
	path = "/api/v1/models/" + pm + "/versions"
	if err := c.get(r.Context(), path, &versions); err != nil && !errors.Is(err, errNotFound) {
		c.fail(w, r, model+": training", err)
		return
	}
	v.Versions, v.Champion, v.VersionsSource = versions.Versions, versions.Champion, source{API: "GET " + path, SQL: versions.SQL}
	c.render(w, r, http.StatusOK, "training", &page{Title: model + ": training", View: v})
}

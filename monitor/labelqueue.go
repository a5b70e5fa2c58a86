package monitor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/driftwatch/driftwatch/monitor/labeling"
)

// LabelingRequest asks the labeling queue for rows (docs/labeling.md).
type LabelingRequest struct {
	Model    string
	N        int
	Strategy labeling.Strategy
	// Assignee is who the rows are handed to (recorded, not checked).
	Assignee string
}

// LabelingBatch is one answer of the labeling queue: the rows handed out
// and what they were drawn from.
type LabelingBatch struct {
	ModelID     string            `json:"model_id"`
	BatchID     string            `json:"batch_id"`
	Strategy    labeling.Strategy `json:"strategy"`
	Assignee    string            `json:"assignee"`
	HandedOutAt time.Time         `json:"handed_out_at"`
	// PoolRows is the number of candidates; RandomShare the share drawn
	// uniformly; RandomRows and TargetedRows the rows of each stratum.
	PoolRows     uint64  `json:"pool_rows"`
	RandomShare  float64 `json:"random_share"`
	RandomRows   int     `json:"random_rows"`
	TargetedRows int     `json:"targeted_rows"`
	// TargetedThreshold is τ, the (targeted_rows+1)-th smallest key
	// −ln(U)/w of the targeted draw (null when its pool held no more
	// rows than it drew): a row's inclusion probability is
	// π_r + (1 − π_r)·(1 − exp(−weight·τ)), π_r = random_rows / pool_rows.
	TargetedThreshold *float64 `json:"targeted_threshold"`
	// Focus is what drifted in the newest window, as the reasons the
	// targeted draw over-weights ("slice region=eu", "range f3 [1.28, +inf)").
	Focus []string      `json:"focus"`
	Rows  []LabelingRow `json:"rows"`
	SQL   []string      `json:"sql"`
}

// LabelingRow is one inference handed out for labelling: what a person
// needs to label it, its prediction_id to send the label back under, and
// why and with what probability it was chosen.
type LabelingRow struct {
	PredictionID            string             `json:"prediction_id"`
	EventID                 string             `json:"event_id"`
	ModelID                 string             `json:"model_id"`
	ModelVersion            string             `json:"model_version"`
	Timestamp               time.Time          `json:"timestamp"`
	Features                map[string]any     `json:"features"`
	Segment                 map[string]string  `json:"segment"`
	PredictionLabel         *string            `json:"prediction_label"`
	PredictionScore         *float64           `json:"prediction_score"`
	PredictionValue         *float64           `json:"prediction_value"`
	PredictionProbabilities map[string]float64 `json:"prediction_probabilities"`
	Stratum                 labeling.Stratum   `json:"stratum"`
	Uncertainty             float64            `json:"uncertainty"`
	Weight                  float64            `json:"weight"`
	InclusionProbability    float64            `json:"inclusion_probability"`
	Reasons                 []string           `json:"reasons"`
}

// ErrBadLabelingRequest marks a request the queue refuses as given (the
// API answers 400).
var ErrBadLabelingRequest = errors.New("bad labeling request")

// LabelingQueue hands out up to req.N unlabelled inferences of a model,
// drawn as package labeling describes, and records them in labeling_queue
// so that no request of this monitor hands them out again within
// labeling.reissue_after. Requests are served one at a time, so two
// concurrent ones never draw the same row.
func (m *Monitor) LabelingQueue(ctx context.Context, req LabelingRequest) (*LabelingBatch, error) {
	cfg := m.opts.Labeling
	if err := m.checkLabeling(req); err != nil {
		return nil, err
	}
	m.labelMu.Lock()
	defer m.labelMu.Unlock()
	now := m.opts.Now().UTC()
	var seed [8]byte
	_, _ = rand.Read(seed[:])
	b := &LabelingBatch{ModelID: req.Model, BatchID: hex.EncodeToString(seed[:]), Strategy: req.Strategy, Assignee: req.Assignee, HandedOutAt: now,
		Focus: []string{}, Rows: []LabelingRow{}}
	focus, sqls, err := m.store.LabelingFocus(ctx, req.Model)
	if err != nil {
		return nil, err
	}
	b.SQL = append(b.SQL, sqls...)
	if req.Strategy == labeling.Random {
		focus = labeling.Focus{}
	}
	for _, s := range focus.Slices {
		b.Focus = append(b.Focus, "slice "+s.Key+"="+s.Value)
	}
	for _, r := range focus.Ranges {
		b.Focus = append(b.Focus, r.String())
	}
	for _, c := range focus.Categories {
		b.Focus = append(b.Focus, "category "+c.Feature+"="+c.Value)
	}
	pool := labelPool{model: req.Model, from: now.Add(-cfg.Lookback), to: now, since: now.Add(-cfg.ReissueAfter), seed: b.BatchID,
		uncertainty: labeling.UncertaintySQL(cfg.Threshold), reasons: labeling.ReasonsSQL(focus),
		weight: func(u, reasons string) string { return labeling.WeightSQL(req.Strategy, cfg.DriftWeight, u, reasons) }}
	size, sql, err := m.store.LabelingPoolSize(ctx, pool)
	b.SQL = append(b.SQL, sql)
	if err != nil {
		return nil, err
	}
	plan := labeling.NewPlan(req.Strategy, req.N, cfg.RandomShare, size)
	b.PoolRows, b.RandomShare = size, plan.RandomShare
	random, _, sql, err := m.store.LabelingDraw(ctx, pool, plan.Random, false, nil)
	if err != nil {
		return nil, err
	}
	b.SQL = append(b.SQL, sql)
	// The targeted draw's pool is the pool less the random rows: those
	// hashed up to the largest random hash.
	var after *uint64
	for _, p := range random {
		after = &p.hash
	}
	targeted, tau, sql, err := m.store.LabelingDraw(ctx, pool, plan.Targeted, true, after)
	if err != nil {
		return nil, err
	}
	b.SQL = append(b.SQL, sql)
	add := func(p labelPick, st labeling.Stratum) {
		r := p.LabelingRow
		r.Stratum = st
		r.InclusionProbability = plan.InclusionProbability(size, r.Weight, tau)
		if st == labeling.StratumRandom {
			r.Reasons = append([]string{"random"}, r.Reasons...)
		} else if req.Strategy == labeling.Uncertainty {
			r.Reasons = append([]string{"uncertainty " + strconv.FormatFloat(r.Uncertainty, 'f', 2, 64)}, r.Reasons...)
		}
		b.Rows = append(b.Rows, r)
	}
	for _, p := range random {
		add(p, labeling.StratumRandom)
	}
	for _, p := range targeted {
		add(p, labeling.StratumTargeted)
	}
	b.RandomRows, b.TargetedRows, b.TargetedThreshold = len(random), len(targeted), nullable(tau)
	if err := m.store.RecordHandedOut(ctx, b); err != nil {
		return nil, err
	}
	m.labelRows.WithLabelValues(string(labeling.StratumRandom)).Add(float64(b.RandomRows))
	m.labelRows.WithLabelValues(string(labeling.StratumTargeted)).Add(float64(b.TargetedRows))
	return b, nil
}

// checkLabeling refuses a request as given, with ErrBadLabelingRequest.
func (m *Monitor) checkLabeling(req LabelingRequest) error {
	if max := m.opts.Labeling.MaxRows; req.N < 1 || req.N > max {
		return fmt.Errorf("%w: limit must be from 1 to labeling.max_rows (%d), got %d", ErrBadLabelingRequest, max, req.N)
	}
	if len(req.Assignee) > 200 || strings.ContainsFunc(req.Assignee, unicode.IsControl) {
		return fmt.Errorf("%w: assignee must be at most 200 characters without control characters", ErrBadLabelingRequest)
	}
	if _, err := labeling.ParseStrategy(string(req.Strategy)); err != nil || req.Strategy == "" {
		return fmt.Errorf("%w: strategy %q: want one of uncertainty, drift, random", ErrBadLabelingRequest, req.Strategy)
	}
	return nil
}

// apiLabelingQueue hands rows out, so the service mounts it as a write
// (Mount): a write token even though it is a GET.
func (m *Monitor) apiLabelingQueue(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead {
		// A HEAD would hand rows out that nobody receives.
		w.Header().Set("Allow", http.MethodGet)
		fail(w, http.StatusMethodNotAllowed, "the labeling queue hands rows out: GET it")
		return
	}
	model := r.PathValue("model")
	if !validModel(w, model) {
		return
	}
	q := r.URL.Query()
	st, err := labeling.ParseStrategy(q.Get("strategy"))
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	n := 100
	if s := q.Get("limit"); s != "" {
		if n, err = strconv.Atoi(s); err != nil {
			fail(w, http.StatusBadRequest, "limit must be an integer, got %q", s)
			return
		}
	}
	req := LabelingRequest{Model: model, N: n, Strategy: st, Assignee: q.Get("assignee")}
	if err := m.checkLabeling(req); err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	var b *LabelingBatch
	if !apiRun(m, w, r, func(ctx context.Context) (err error) {
		b, err = m.LabelingQueue(ctx, req)
		return err
	}) {
		return
	}
	writeJSON(w, http.StatusOK, b)
}

package monitor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/monitor/policy"
	"github.com/driftwatch/driftwatch/monitor/window"
)

// Reference profile sources (reference_profiles.source).
const (
	// ProfileFirst: the model's first reference period, pinned by the
	// monitor when it was first complete.
	ProfileFirst = "first"
	// ProfileSet: an operator ran `driftwatch reference set`.
	ProfileSet = "set"
)

// ReferenceOperator is the reference kind (drift_results.reference_kind)
// of a reference an operator set with `driftwatch reference set`.
const ReferenceOperator = "set"

// ReferenceProfile describes a model's persisted reference (a
// reference_profiles row without its aggregates).
type ReferenceProfile struct {
	Model               string    `json:"model"`
	Start               time.Time `json:"reference_start"`
	End                 time.Time `json:"reference_end"`
	Source              string    `json:"source"`
	Rows                uint64    `json:"rows"`
	NumericFeatures     uint32    `json:"numeric_features"`
	CategoricalFeatures uint32    `json:"categorical_features"`
	CreatedBy           string    `json:"created_by"`
	CreatedAt           time.Time `json:"created_at"`
}

// Span is the profile's reference period.
func (p ReferenceProfile) Span() window.Span { return window.Span{Start: p.Start, End: p.End} }

const profileColumns = "model_id, reference_start, reference_end, source, rows, numeric_features, categorical_features, created_by, created_at"

// ReferenceProfile returns model's persisted reference, if it has one.
func (s *Store) ReferenceProfile(ctx context.Context, model string) (ReferenceProfile, bool, error) {
	ps, err := s.referenceProfiles(ctx, "WHERE model_id = "+chsql.String(model))
	if err != nil || len(ps) == 0 {
		return ReferenceProfile{}, false, err
	}
	return ps[0], true, nil
}

// ReferenceProfiles returns every model's persisted reference, by model.
func (s *Store) ReferenceProfiles(ctx context.Context) ([]ReferenceProfile, error) {
	return s.referenceProfiles(ctx, "")
}

func (s *Store) referenceProfiles(ctx context.Context, where string) ([]ReferenceProfile, error) {
	return scanAll(ctx, s.conn, "reference_profiles", "SELECT "+profileColumns+" FROM reference_profiles FINAL "+where+" ORDER BY model_id",
		func(rows driver.Rows, p *ReferenceProfile) error {
			return rows.Scan(&p.Model, &p.Start, &p.End, &p.Source, &p.Rows, &p.NumericFeatures, &p.CategoricalFeatures, &p.CreatedBy, &p.CreatedAt)
		})
}

// LoadReference returns the aggregates of model's persisted reference
// (pinned), written at createdAt.
func (s *Store) LoadReference(ctx context.Context, model string, createdAt time.Time) (*window.Reference, error) {
	var blob string
	err := s.conn.QueryRow(ctx, fmt.Sprintf("SELECT profile FROM reference_profiles FINAL WHERE model_id = %s AND created_at = %s",
		chsql.String(model), chsql.Time(createdAt))).Scan(&blob)
	if err != nil {
		return nil, fmt.Errorf("read the reference profile of %s: %w", model, err)
	}
	ref, err := window.Unmarshal([]byte(blob))
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", model, err)
	}
	return ref, nil
}

// WriteReference persists ref as its model's reference; a newer row
// replaces an older one.
func (s *Store) WriteReference(ctx context.Context, ref *window.Reference, model, source, by string, at time.Time) (ReferenceProfile, error) {
	blob, err := ref.Marshal()
	if err != nil {
		return ReferenceProfile{}, err
	}
	num, cat := ref.Features()
	p := ReferenceProfile{Model: model, Start: ref.Span().Start, End: ref.Span().End, Source: source, Rows: uint64(ref.Rows()),
		NumericFeatures: uint32(num), CategoricalFeatures: uint32(cat), CreatedBy: by, CreatedAt: at.UTC().Truncate(time.Millisecond)}
	err = s.conn.Exec(ctx, fmt.Sprintf("INSERT INTO reference_profiles (%s, profile) VALUES (%s, %s, %s, %s, %d, %d, %d, %s, %s, %s)", profileColumns,
		chsql.String(model), chsql.Time(p.Start), chsql.Time(p.End), chsql.String(source), p.Rows, p.NumericFeatures, p.CategoricalFeatures,
		chsql.String(by), chsql.Time(p.CreatedAt), chsql.String(string(blob))))
	if err != nil {
		return ReferenceProfile{}, fmt.Errorf("write the reference profile of %s: %w", model, err)
	}
	ref.Pin()
	return p, nil
}

// ErrEmptyReference means a reference period asked for holds no
// inferences of the model.
var ErrEmptyReference = errors.New("no inferences of the model in that period")

// SetReference computes model's reference aggregates over span from the
// inferences table, with the monitor's aggregation settings, and persists
// them as the model's reference (source set): the monitor measures drift
// against them from its next evaluation on.
func SetReference(ctx context.Context, conn driver.Conn, settings Settings, model string, span window.Span, by string, now time.Time) (ReferenceProfile, error) {
	if !span.Start.Before(span.End) {
		return ReferenceProfile{}, fmt.Errorf("reference of %s: the period %s is empty (from must be before to)", model, span)
	}
	_, ref, err := window.ComputeCached(ctx, conn, model, span, window.Span{Start: span.End, End: span.End}, settings.aggregationFor(model), nil)
	if errors.Is(err, window.ErrNoReference) {
		return ReferenceProfile{}, fmt.Errorf("reference of %s over %s: %w", model, span, ErrEmptyReference)
	}
	if err != nil {
		return ReferenceProfile{}, fmt.Errorf("compute the reference of %s over %s: %w", model, span, err)
	}
	return (&Store{conn: conn}).WriteReference(ctx, ref, model, ProfileSet, by, now)
}

// pins is what the monitor knows of the persisted references: the newest
// profile per model it has seen, read again at every evaluation (one small
// row), so a `reference set` takes effect at the model's next window.
type pins struct {
	mu     sync.Mutex
	loaded map[string]time.Time // created_at of the profile the cache holds
}

// pinnedReference returns model's persisted reference and its profile,
// using cached when it is that profile's aggregates; ok is false when the
// model has none.
func (m *Monitor) pinnedReference(ctx context.Context, model string, cached *window.Reference) (ReferenceProfile, *window.Reference, bool, error) {
	p, ok, err := m.store.ReferenceProfile(ctx, model)
	if err != nil || !ok {
		return p, nil, false, err
	}
	m.pins.mu.Lock()
	loaded, seen := m.pins.loaded[model]
	m.pins.mu.Unlock()
	if cached.Pinned() && seen && loaded.Equal(p.CreatedAt) && sameSpan(cached.Span(), p.Span()) {
		return p, cached, true, nil
	}
	ref, err := m.store.LoadReference(ctx, model, p.CreatedAt)
	if err != nil {
		return p, nil, false, err
	}
	m.pins.mu.Lock()
	m.pins.loaded[model] = p.CreatedAt
	m.pins.mu.Unlock()
	return p, ref, true, nil
}

func sameSpan(a, b window.Span) bool { return a.Start.Equal(b.Start) && a.End.Equal(b.End) }

// persist writes ref as model's profile: its first complete reference
// (source first), or a set one computed again with new aggregation
// settings. A failure is logged and retried at the next evaluation.
func (m *Monitor) persist(ctx context.Context, model string, ref *window.Reference, source, by string) {
	p, err := m.sink.WriteReference(ctx, ref, model, source, by, m.opts.Now())
	if err != nil {
		m.log.Error("could not persist the reference; it will be tried again at the next evaluation", "model", model, "err", err)
		return
	}
	m.pins.mu.Lock()
	m.pins.loaded[model] = p.CreatedAt
	m.pins.mu.Unlock()
	m.log.Info("pinned the model's reference", "model", model, "reference", p.Span().String(), "rows", p.Rows)
}

// pinnable reports whether model's reference may come from a persisted
// profile: in reference mode first (the default) without a fixed reference
// in its configuration.
func (m *Monitor) pinnable(model string) bool {
	if mc, ok := m.opts.Models[model]; ok && !mc.ReferenceStart.IsZero() {
		return false
	}
	return m.opts.ReferenceMode != ReferencePrevious
}

// referenceMissing records that model's reference is gone: a data-quality
// result (feature __all, check reference_missing) in drift_results and
// driftwatch_reference_missing{model} = 1, which DriftwatchReferenceMissing
// alerts on. Without a reference the model's drift cannot be measured, and
// nothing else would say so.
func (m *Monitor) referenceMissing(ctx context.Context, snap *window.Snapshot, kind, why string) (Result, error) {
	m.refMissing.WithLabelValues(snap.Model).Set(1)
	row := policy.Row{Feature: "__all", Kind: "data_quality", Method: "reference_missing", Value: 1, PValue: math.NaN(), PValueAdjusted: math.NaN(),
		Threshold: 0, Drifted: true, Sustained: true, Status: "drifted", Samples: snap.CurRows}
	if err := m.sink.WriteResults(ctx, snap, "", kind, []policy.Row{row}, nil, m.opts.Now()); err != nil {
		m.failed(ctx)
		return Result{}, err
	}
	m.log.Warn("the model's reference is missing: its drift cannot be measured", "model", snap.Model, "why", why)
	return Result{Snapshot: snap, Reference: kind, Skipped: why}, nil
}

// NewStore returns the monitor's queries on conn, for tools that read what
// the monitor wrote (driftwatch reference show).
func NewStore(conn driver.Conn) *Store { return &Store{conn: conn} }

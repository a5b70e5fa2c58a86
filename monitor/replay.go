package monitor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/monitor/perf"
	"github.com/driftwatch/driftwatch/monitor/policy"
	"github.com/driftwatch/driftwatch/monitor/window"
	"github.com/driftwatch/driftwatch/schemas"
)

// sink is where an evaluation writes its results and reads the history
// its hysteresis and trigger gate decide with. The monitor's is its Store
// (drift_results, drift_distributions, root causes, reference_profiles,
// retrain_triggers); a Replay's is memory, so that a replayed policy
// writes nothing to the live tables while deciding exactly as the monitor
// would.
type sink interface {
	ledger
	DriftHistory(ctx context.Context, model string, ends []time.Time) (policy.History, error)
	SegmentHistory(ctx context.Context, model string, ends []time.Time, slices bool) (map[string]policy.History, error)
	WriteResults(ctx context.Context, snap *window.Snapshot, segment, referenceKind string, rows, verdicts []policy.Row, computedAt time.Time) error
	WriteDistributions(ctx context.Context, snap *window.Snapshot, referenceKind string, computedAt time.Time) error
	WriteRootCauses(ctx context.Context, snap *window.Snapshot, rcs []RootCause, computedAt time.Time) error
	WriteReference(ctx context.Context, ref *window.Reference, model, source, by string, at time.Time) (ReferenceProfile, error)
}

// ledger is the trigger gate's record of the triggers published.
type ledger interface {
	HasTrigger(ctx context.Context, model, dedupKey string) (bool, error)
	TriggerHistory(ctx context.Context, model string, since time.Time) (last time.Time, n uint64, err error)
	RecordTrigger(ctx context.Context, t *schemas.RetrainTrigger, evidence string) error
}

// ReplayOptions configure a Replay: the monitor's Settings (start from
// DefaultSettings; Policy and Segments are the policy replayed) and the
// ClickHouse connection its aggregates are read from.
type ReplayOptions struct {
	Settings
	Conn driver.Conn
	// Logger is a discarding logger when nil: a replay of a month would
	// otherwise log every drifted window.
	Logger *slog.Logger
}

// Replay evaluates a model's stored history window by window through the
// monitor's own evaluation (Evaluate: the same aggregates, verdicts,
// hysteresis, importance, segments and trigger gate), on a simulated
// clock that stands at each window's end, into a sink that publishes
// nothing: no trigger reaches Kafka and no row is written to ClickHouse.
// The history the hysteresis and the gate read (earlier verdicts, the
// triggers already raised) is the replay's own. Windows must be replayed
// oldest first; a Replay is not safe for concurrent use.
type Replay struct {
	m   *Monitor
	mem *memorySink
	now time.Time
}

// NewReplay validates opts.
func NewReplay(opts ReplayOptions) (*Replay, error) {
	if opts.Conn == nil {
		return nil, errors.New("replay: Conn is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r := &Replay{mem: newMemorySink()}
	opts.InstanceID = "replay"
	// Incremental windows keep their partials in ClickHouse tables: a
	// replay, which writes nothing, computes every window in full (the
	// same snapshots).
	opts.Incremental = false
	m, err := New(Options{Settings: opts.Settings, Conn: opts.Conn, TriggerWriter: discardWriter{}, Registerer: prometheus.NewRegistry(),
		Logger: opts.Logger, Now: func() time.Time { return r.now }})
	if err != nil {
		return nil, err
	}
	m.sink, m.gate.store = r.mem, r.mem
	r.m = m
	return r, nil
}

// Evaluate evaluates model's window ending at end as the monitor would
// have at end.
func (r *Replay) Evaluate(ctx context.Context, model string, end time.Time) (Result, error) {
	r.now = end
	return r.m.Evaluate(ctx, model, end)
}

// Store returns the queries the replay reads with.
func (r *Replay) Store() *Store { return r.m.store }

// PerformanceHistory is what the labels showed over a span: the primary
// metric of every performance window against the reference, judged by the
// monitor's performance drop policy.
type PerformanceHistory struct {
	Primary string
	// Reference is the first window's reference (every window's in
	// reference_mode first), ReferenceMetric its primary metric;
	// Judgeable is false when it has fewer than min_labelled scored rows
	// (no window can then be judged against it).
	Reference       window.Span
	ReferenceMetric perf.Metric
	Judgeable       bool
	// Windows are the performance windows of the span that could be
	// judged, oldest first; Unjudged counts those that could not (too few
	// labels, inside the reference).
	Windows  []Drop
	Unjudged int
}

// PerformanceHistory scores model's tumbling performance windows
// (performance.window, aligned as the monitor aligns them) that lie in
// span, with every label stored now, against the drift reference, and
// judges each with the performance drop policy (performance.drop,
// min_labelled). It writes nothing.
func (r *Replay) PerformanceHistory(ctx context.Context, model string, span window.Span) (PerformanceHistory, error) {
	m := r.m
	c := m.opts.Performance
	var h PerformanceHistory
	task, err := m.task(ctx, model)
	if err != nil {
		return h, err
	}
	opts := perf.Options{Task: task, Horizon: c.Horizon}
	if task == perf.Classification {
		opts.PositiveLabel = c.PositiveLabel
	}
	h.Primary = primaryMetric(c, task)
	first := span.Start.Truncate(c.Window)
	if first.Before(span.Start) {
		first = first.Add(c.Window)
	}
	var pin *ReferenceProfile
	if m.pinnable(model) {
		p, ok, err := m.store.ReferenceProfile(ctx, model)
		if err != nil {
			return h, err
		}
		if ok {
			pin = &p
		}
	}
	// Each window is judged against the drift reference the monitor would
	// use for it (in reference_mode previous, the window before it); a
	// growing one (the span starts within the model's first reference
	// period) as the full first period.
	refs := map[window.Span]perf.Result{}
	for e := first.Add(c.Window); !e.After(span.End); e = e.Add(c.Window) {
		w := window.Span{Start: e.Add(-c.Window), End: e}
		ref, kind, err := m.reference(ctx, model, w, pin)
		if err != nil {
			return h, err
		}
		if kind == ReferenceGrowing {
			ref.End = ref.Start.Add(m.opts.Reference)
		}
		refRes, seen := refs[ref]
		if !seen {
			if refRes, err = perf.Compute(ctx, m.opts.Conn, model, ref, opts); err != nil {
				return h, fmt.Errorf("reference performance of %s: %w", model, err)
			}
			refs[ref] = refRes
		}
		if h.Reference.Start.IsZero() {
			// The first window's reference is the one reported.
			h.Reference = ref
			h.ReferenceMetric, h.Judgeable = c.judgeableReference(h.Primary, refRes)
		}
		refM, judgeable := c.judgeableReference(h.Primary, refRes)
		res, err := perf.Compute(ctx, m.opts.Conn, model, w, opts)
		if err != nil {
			return h, fmt.Errorf("performance of %s in %s: %w", model, w, err)
		}
		d, ok := c.drop(h.Primary, refM, ref, res)
		if !ok || !judgeable {
			h.Unjudged++
			continue
		}
		h.Windows = append(h.Windows, d)
	}
	return h, nil
}

// discardWriter is a replay's trigger topic: it publishes nothing.
type discardWriter struct{}

func (discardWriter) WriteMessages(context.Context, ...kafka.Message) error { return nil }

// memorySink is a replay's sink: the verdicts and the triggers of the
// windows replayed so far, in memory; every other write is dropped.
type memorySink struct {
	mu sync.Mutex
	// drifted is the verdict of each segment's feature by window end
	// (Unix milliseconds).
	drifted  map[string]map[string]map[int64]bool
	triggers map[string][]*schemas.RetrainTrigger // by model
}

func newMemorySink() *memorySink {
	return &memorySink{drifted: map[string]map[string]map[int64]bool{}, triggers: map[string][]*schemas.RetrainTrigger{}}
}

func (s *memorySink) DriftHistory(ctx context.Context, model string, ends []time.Time) (policy.History, error) {
	hs, _ := s.SegmentHistory(ctx, model, ends, false)
	if h := hs[""]; h != nil {
		return h, nil
	}
	return policy.History{}, nil
}

// SegmentHistory answers as Store.SegmentHistory does: a window without a
// verdict counts as not drifted.
func (s *memorySink) SegmentHistory(_ context.Context, model string, ends []time.Time, slices bool) (map[string]policy.History, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]policy.History{}
	if len(ends) == 0 {
		return out, nil
	}
	for key, byFeature := range s.drifted {
		seg, ok := segmentOf(key, model)
		if !ok || (seg != "") != slices {
			continue
		}
		h := policy.History{}
		for f, byEnd := range byFeature {
			for _, e := range ends {
				h[f] = append(h[f], byEnd[e.UnixMilli()])
			}
		}
		out[seg] = h
	}
	return out, nil
}

// sinkKey joins a model and a segment ("" for the population).
func sinkKey(model, segment string) string { return model + "\x00" + segment }

func segmentOf(key, model string) (string, bool) {
	if len(key) <= len(model) || key[:len(model)] != model || key[len(model)] != 0 {
		return "", false
	}
	return key[len(model)+1:], true
}

func (s *memorySink) WriteResults(_ context.Context, snap *window.Snapshot, segment, _ string, _, verdicts []policy.Row, _ time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := sinkKey(snap.Model, segment)
	byFeature := s.drifted[key]
	if byFeature == nil {
		byFeature = map[string]map[int64]bool{}
		s.drifted[key] = byFeature
	}
	for _, r := range verdicts {
		if byFeature[r.Feature] == nil {
			byFeature[r.Feature] = map[int64]bool{}
		}
		byFeature[r.Feature][snap.Current.End.UnixMilli()] = r.Drifted
	}
	return nil
}

func (*memorySink) WriteDistributions(context.Context, *window.Snapshot, string, time.Time) error {
	return nil
}

func (*memorySink) WriteRootCauses(context.Context, *window.Snapshot, []RootCause, time.Time) error {
	return nil
}

// WriteReference keeps nothing: the replay's reference stays the one its
// cache holds, computed from the rows as the monitor first computed it.
func (*memorySink) WriteReference(_ context.Context, ref *window.Reference, model, source, by string, at time.Time) (ReferenceProfile, error) {
	sp := ref.Span()
	return ReferenceProfile{Model: model, Start: sp.Start, End: sp.End, Source: source, CreatedBy: by, CreatedAt: at}, nil
}

func (s *memorySink) HasTrigger(_ context.Context, model, dedupKey string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.triggers[model] {
		if t.DedupKey == dedupKey {
			return true, nil
		}
	}
	return false, nil
}

// TriggerHistory answers as Store.TriggerHistory does: the zero Unix time
// when the model has no trigger.
func (s *memorySink) TriggerHistory(_ context.Context, model string, since time.Time) (time.Time, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	last, n := time.Unix(0, 0).UTC(), uint64(0)
	for _, t := range s.triggers[model] {
		if t.CreatedAt.After(last) {
			last = t.CreatedAt
		}
		if !t.CreatedAt.Before(since) {
			n++
		}
	}
	return last, n, nil
}

func (s *memorySink) RecordTrigger(_ context.Context, t *schemas.RetrainTrigger, _ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.triggers[t.ModelID] = append(s.triggers[t.ModelID], t)
	return nil
}

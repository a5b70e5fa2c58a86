// Package monitor evaluates every model's rolling windows: it has
// ClickHouse aggregate the reference and current windows (package window),
// decides drift and data quality (package policy, statistics from package
// stat), writes every result to drift_results and the bin and category
// counts behind them to drift_distributions, exports the latest ones to
// Prometheus, and publishes retrain triggers through a gate of dedup keys,
// cooldowns and a daily maximum.
//
// Windows are by event time. The current window is [end − Window, end),
// end moving in steps of Step (tumbling when Step = Window, sliding when
// smaller). The reference of a model is, by default, the first Reference
// of its data (ReferenceMode "first": the period a model is trusted in
// when it goes live); "previous" compares with the window before the
// current one; per-model fixed periods come from the configuration.
// Models are discovered from the data: any model_id with inferences in the
// last Lookback is evaluated — by one of the monitor instances sharing the
// ClickHouse database, which split the models by rendezvous hashing over
// the live instances and hand them over through per-model leases (fleet;
// docs/monitor.md "Many monitors").
//
// A Replay runs the same evaluation over stored windows on a simulated
// clock, its results and triggers kept in memory instead of the tables and
// the topic: driftwatch backtest (package monitor/backtest) scores
// proposed policies with it.
//
// Metrics (besides the exporter's series, see the README):
//
//	driftwatch_monitor_evaluations_total{outcome}       ok, no_reference, waiting, error, timeout (evaluation_timeout passed)
//	driftwatch_monitor_evaluation_duration_seconds      histogram per model window
//	driftwatch_monitor_triggers_total{reason,outcome}   published, duplicate, cooldown, daily_max
//	driftwatch_monitor_series_dropped_total             series over the per-instance limit
//	driftwatch_console_info{url}                        1; url is console_url, which the alerts link to
//	driftwatch_monitor_models_owned                     models this instance holds the lease of
//	driftwatch_monitor_instances_live                   instances sharing the models, as this one saw them
//	driftwatch_monitor_lease_takeovers_total            models taken over from an instance whose lease lapsed
//	driftwatch_monitor_labeling_rows_total{stratum}     inferences the labeling queue handed out: random, targeted
//
// The labeling queue (LabelingQueue, package labeling, docs/labeling.md)
// hands out unlabelled inferences for labelling, uncertain ones and those
// of drifted slices and ranges first, with a random share.
package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/internal/future"
	"github.com/driftwatch/driftwatch/internal/signing"
	"github.com/driftwatch/driftwatch/monitor/policy"
	"github.com/driftwatch/driftwatch/monitor/window"
	"github.com/driftwatch/driftwatch/schemas"
)

// Reference modes.
const (
	ReferenceFirst    = "first"
	ReferencePrevious = "previous"
	ReferenceFixed    = "fixed"
)

// ModelConfig overrides the defaults for one model.
type ModelConfig struct {
	// Reference is a fixed reference period for the model (for example its
	// training period); zero means the instance's ReferenceMode.
	ReferenceStart time.Time `yaml:"reference_start,omitempty"`
	ReferenceEnd   time.Time `yaml:"reference_end,omitempty"`
	// Policy replaces the instance's drift policy for this model when set.
	Policy *policy.Config `yaml:"policy"`
	// EvaluationTimeout replaces the instance's evaluation_timeout for
	// this model when set.
	EvaluationTimeout time.Duration `yaml:"evaluation_timeout"`
	// SegmentBy are categorical features whose values slice this model's
	// traffic, beside the instance's segments.keys.
	SegmentBy []string `yaml:"segment_by,omitempty"`
}

// Options configure a Monitor: its Settings (start from DefaultSettings)
// and what it runs on.
type Options struct {
	Settings
	Conn driver.Conn
	// TriggerWriter receives retrain triggers (the retrain-triggers topic).
	TriggerWriter interface {
		WriteMessages(ctx context.Context, msgs ...kafka.Message) error
	}
	// TriggerSigner signs every trigger published (trigger_signing_key_file);
	// nil publishes them unsigned.
	TriggerSigner *signing.Key
	Registerer    prometheus.Registerer
	// Logger is slog.Default and Now time.Now when nil.
	Logger *slog.Logger
	Now    func() time.Time
}

// Monitor evaluates windows.
type Monitor struct {
	opts  Options
	log   *slog.Logger
	exp   *exporter
	gate  *gate
	evals *prometheus.CounterVec
	// windows counts windows by how they were computed; buckets the
	// incremental windows' buckets by whether they were aggregated again.
	windows, buckets *prometheus.CounterVec
	duration         prometheus.Histogram
	triggers         *prometheus.CounterVec
	// first is each model's first inference (firstMu guards it: models
	// are evaluated concurrently).
	firstMu  sync.Mutex
	first    map[string]time.Time
	perfDesc perfMetrics
	refs     *refCache
	partials *bucketCaches
	store    *Store
	// sink is where evaluations write their results and read their
	// history back: the store (the live tables), or a replay's memory.
	sink  sink
	pins  pins
	fleet *fleet
	// refMissing is 1 per model whose reference is missing (see
	// referenceMissing); the series is deleted once it has one.
	refMissing *prometheus.GaugeVec
	// estimators caches each model's fitted CBPE reference (see estimate).
	estimators estimators
	// importance caches each model's champion importance.
	importance importanceCache
	// labelMu serves labeling-queue requests one at a time, so that two
	// never draw the same row before either recorded it.
	labelMu sync.Mutex
	// labelRows counts the rows handed out by stratum.
	labelRows *prometheus.CounterVec
}

// New validates opts.
func New(opts Options) (*Monitor, error) {
	if opts.Conn == nil || opts.TriggerWriter == nil || opts.Registerer == nil {
		return nil, errors.New("monitor: Conn, TriggerWriter and Registerer are required")
	}
	if err := opts.Settings.Validate(); err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.InstanceID == "" {
		opts.InstanceID = defaultInstanceID()
	}
	f := promauto.With(opts.Registerer)
	store := &Store{conn: opts.Conn, instance: opts.InstanceID}
	partials := newBucketCaches(int64(opts.WindowCacheMB)<<20, opts.WindowCacheWriteBuckets)
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "driftwatch_monitor_window_cache_bytes",
		Help: "Memory the incremental windows' per-bucket partials hold between steps (window_cache_mb bounds it)."},
		func() float64 { return float64(partials.bytes()) })
	return &Monitor{
		opts: opts, log: opts.Logger, store: store, sink: store,
		fleet:    newFleet(opts.InstanceID, opts.Lease, store, opts.Logger, opts.Registerer),
		exp:      newExporter(opts.Registerer, opts.ExportFeatures, opts.MaxSeries, opts.Lookback, opts.Now),
		gate:     &gate{store: &Store{conn: opts.Conn}, writer: opts.TriggerWriter, cfg: opts.Triggers, signer: opts.TriggerSigner},
		evals:    f.NewCounterVec(prometheus.CounterOpts{Name: "driftwatch_monitor_evaluations_total", Help: "Model windows evaluated, by outcome."}, []string{"outcome"}),
		duration: f.NewHistogram(prometheus.HistogramOpts{Name: "driftwatch_monitor_evaluation_duration_seconds", Help: "Time to evaluate one model window (queries, statistics, writes).", Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}),
		windows: f.NewCounterVec(prometheus.CounterOpts{Name: "driftwatch_monitor_windows_computed_total",
			Help: "Current windows aggregated, by mode: incremental (merged from per-bucket partials) or full (from the raw rows: incremental is off, or the reference is not pinned)."}, []string{"mode"}),
		buckets: f.NewCounterVec(prometheus.CounterOpts{Name: "driftwatch_monitor_partial_buckets_total",
			Help: "Buckets of incremental windows, by result: reused (their partials were current) or aggregated (new, or changed by late events)."}, []string{"result"}),
		triggers:   f.NewCounterVec(prometheus.CounterOpts{Name: "driftwatch_monitor_triggers_total", Help: "Retrain trigger decisions by reason and outcome."}, []string{"reason", "outcome"}),
		first:      map[string]time.Time{},
		pins:       pins{loaded: map[string]time.Time{}},
		estimators: estimators{byModel: map[string]estimator{}},
		importance: importanceCache{byModel: map[string]Importance{}},
		refMissing: f.NewGaugeVec(prometheus.GaugeOpts{Name: "driftwatch_reference_missing",
			Help: "1 while a model's reference (pinned, set or fixed) holds no rows and has no persisted profile: its drift cannot be measured."}, []string{"model"}),
		perfDesc: perfDescs(),
		labelRows: f.NewCounterVec(prometheus.CounterOpts{Name: "driftwatch_monitor_labeling_rows_total",
			Help: "Inferences the labeling queue handed out for labelling, by stratum (random: drawn uniformly; targeted: by uncertainty and drift)."}, []string{"stratum"}),
		partials: partials,
		refs: newRefCache(int64(opts.ReferenceCacheMB)<<20,
			f.NewCounterVec(prometheus.CounterOpts{Name: "driftwatch_monitor_reference_cache_total", Help: "Evaluations whose reference-window aggregates came from the cache (hit) or were read again (miss)."}, []string{"result"})),
	}, nil
}

// Result is one evaluated window.
type Result struct {
	// Importance is the champion's importance the verdict was weighted
	// with (read only when the policy's min_importance is set).
	Importance Importance
	Snapshot   *window.Snapshot
	Verdict    policy.Verdict
	Decisions  []Decision
	// Reference is how the reference was chosen: ReferenceGrowing,
	// ReferencePinned, ReferencePrevious or ReferenceFixed.
	Reference string
	// Skipped says why nothing was evaluated ("" when evaluated).
	Skipped string
	// Segments are the slices evaluated beside the population, by name.
	Segments []SegmentResult
	// RootCauses rank, for every feature drifted in the population, the
	// slices of each segment key by their contribution to its PSI.
	RootCauses []RootCause
}

// SegmentResult is one slice's evaluation.
type SegmentResult struct {
	// Name is the slice, "key=value".
	Name     string
	Snapshot *window.Snapshot
	Verdict  policy.Verdict
}

// Models returns the models with inferences in the lookback before now.
func (m *Monitor) Models(ctx context.Context, now time.Time) ([]string, error) {
	return m.store.ModelsSince(ctx, now.Add(-m.opts.Lookback))
}

// Reference kinds: how a window's reference was chosen, in the results
// (drift_results.reference_kind and the API's "reference").
const (
	// ReferenceGrowing: the model does not have a full Reference of data
	// yet, so the reference is all of its data before the current window.
	ReferenceGrowing = "growing"
	// ReferencePinned: the first Reference of the model's data, complete.
	ReferencePinned = "pinned"
)

// reference returns the reference of model's window cur and its kind:
// fixed (configured), previous, pinned (the model's first Reference) or,
// until the model has a full Reference of data before cur, growing (from
// its first inference to the start of cur; empty when nothing precedes
// cur).
//
// A persisted reference (pin, from reference_profiles) wins over the
// model's first period: it is pinned, or set when an operator set it.
func (m *Monitor) reference(ctx context.Context, model string, cur window.Span, pin *ReferenceProfile) (span window.Span, kind string, err error) {
	if mc, ok := m.opts.Models[model]; ok && !mc.ReferenceStart.IsZero() {
		return window.Span{Start: mc.ReferenceStart, End: mc.ReferenceEnd}, ReferenceFixed, nil
	}
	if m.opts.ReferenceMode == ReferencePrevious {
		return window.Span{Start: cur.Start.Add(-m.opts.Window), End: cur.Start}, ReferencePrevious, nil
	}
	if pin != nil {
		if pin.Source == ProfileSet {
			return pin.Span(), ReferenceOperator, nil
		}
		return pin.Span(), ReferencePinned, nil
	}
	m.firstMu.Lock()
	first, ok := m.first[model]
	m.firstMu.Unlock()
	if !ok {
		if first, err = m.store.FirstInference(ctx, model); err != nil {
			return window.Span{}, "", err
		}
		m.firstMu.Lock()
		m.first[model] = first
		m.firstMu.Unlock()
	}
	full := window.Span{Start: first, End: first.Add(m.opts.Reference)}
	if !cur.Start.Before(full.End) {
		return full, ReferencePinned, nil
	}
	return window.Span{Start: first, End: cur.Start}, ReferenceGrowing, nil
}

// compute aggregates model's windows: merged from per-bucket partials
// when Incremental is set and the reference is pinned, else in full.
// persisted waits for the writes of the window's partials still under way
// (see window.StartIncremental): nothing of the window is recorded before
// it returns nil.
func (m *Monitor) compute(ctx context.Context, model string, ref, cur window.Span, cached *window.Reference) (_ *window.Snapshot, _ *window.Reference, persisted func() error, _ error) {
	opts := m.opts.aggregationFor(model)
	if !m.opts.Incremental {
		m.windows.WithLabelValues("full").Inc()
		snap, refAgg, err := window.ComputeCached(ctx, m.opts.Conn, model, ref, cur, opts, cached)
		return snap, refAgg, func() error { return nil }, err
	}
	snap, refAgg, prog, persisted, err := window.StartIncremental(ctx, m.opts.Conn, model, ref, cur, opts, cached, m.opts.bucket(), m.partials.get(model))
	if dropped := m.partials.account(model); len(dropped) > 0 {
		// Their unwritten partials are written, not lost: after this
		// window's own writes.
		wait := persisted
		persisted = func() error {
			err := wait()
			for _, bc := range dropped {
				if ferr := bc.Flush(ctx); ferr != nil {
					m.log.Warn("write the partials of a window cache dropped for the budget; they will be aggregated again", "err", ferr)
				}
			}
			return err
		}
	}
	if prog.Incremental {
		m.windows.WithLabelValues("incremental").Inc()
		m.buckets.WithLabelValues("aggregated").Add(float64(prog.Aggregated))
		m.buckets.WithLabelValues("reused").Add(float64(max(0, prog.Buckets-prog.Aggregated)))
	} else {
		m.windows.WithLabelValues("full").Inc()
		m.log.Debug("window computed in full", "model", model, "window", cur.String(), "why", prog.Fallback)
	}
	return snap, refAgg, persisted, err
}

// Evaluate evaluates model's window ending at end: aggregates, verdict,
// drift_results, Prometheus, triggers.
func (m *Monitor) Evaluate(ctx context.Context, model string, end time.Time) (Result, error) {
	start := time.Now()
	defer func() { m.duration.Observe(time.Since(start).Seconds()) }()
	cur := window.Span{Start: end.Add(-m.opts.Window), End: end}
	cached := m.refs.get(model)
	var pin *ReferenceProfile
	if m.pinnable(model) {
		p, pref, ok, err := m.pinnedReference(ctx, model, cached)
		if err != nil {
			m.failed(ctx)
			return Result{}, err
		}
		if ok {
			pin, cached = &p, pref
		}
	}
	ref, kind, err := m.reference(ctx, model, cur, pin)
	if err != nil {
		m.failed(ctx)
		return Result{}, err
	}
	if kind == ReferenceGrowing && !ref.Start.Before(ref.End) {
		m.evals.WithLabelValues("waiting").Inc()
		return Result{Reference: kind, Skipped: fmt.Sprintf("no reference yet: the model's first inference (%s) is in the current window %s", ref.Start.Format(time.RFC3339), cur)}, nil
	}
	if cur.Start.Before(ref.End) {
		m.evals.WithLabelValues("waiting").Inc()
		return Result{Reference: kind, Skipped: "the current window overlaps the reference " + ref.String()}, nil
	}
	pol := m.opts.policyFor(model)
	var ends []time.Time
	for k := pol.Consecutive - 1; k >= 1; k-- {
		ends = append(ends, end.Add(-time.Duration(k)*m.opts.Step))
	}
	// Read beside the aggregation: neither depends on it. (A window
	// skipped below drops them.)
	histF := future.Go(func() (policy.History, error) { return m.sink.DriftHistory(ctx, model, ends) })
	versionF := future.Go(func() (string, error) { return m.store.ServedVersion(ctx, model, cur) })
	snap, refAgg, persisted, err := m.compute(ctx, model, ref, cur, cached)
	// Whichever way the evaluation ends, no write of its outlives it.
	defer persisted() //nolint:errcheck // waited for below before anything is recorded
	if kind != ReferenceGrowing {
		// A growing reference changes every step: caching it only evicts
		// the pinned references of other models.
		m.refs.put(model, refAgg)
	}
	if errors.Is(err, window.ErrNoReference) {
		m.evals.WithLabelValues("no_reference").Inc()
		why := "no rows in the reference " + ref.String()
		if pin != nil {
			why += " and its persisted profile was computed with other aggregation settings (bins, sample_cap, max_features, max_categories); set it again with driftwatch reference set"
		}
		if kind == ReferencePinned || kind == ReferenceOperator || kind == ReferenceFixed {
			return m.referenceMissing(ctx, snap, kind, why)
		}
		return Result{Snapshot: snap, Reference: kind, Skipped: why}, nil
	}
	if err != nil {
		m.failed(ctx)
		return Result{}, err
	}
	m.refMissing.DeleteLabelValues(model)
	switch {
	case (kind != ReferencePinned && kind != ReferenceOperator) || refAgg.Pinned():
	case pin == nil && snap.RefRows < pol.MinSamples:
		// A first day this sparse (a backfill of one event a day, a
		// stray event dated before the model went live) is no baseline
		// to keep for good: it is used, and not persisted.
		m.log.Debug("not persisting a reference with fewer rows than min_samples", "model", model, "reference", ref.String(), "rows", snap.RefRows, "min_samples", pol.MinSamples)
	default:
		// The first complete reference, or a persisted one computed again
		// from its rows with new aggregation settings: persist it.
		source, by := ProfileFirst, "monitor"
		if pin != nil {
			source, by = pin.Source, pin.CreatedBy
		}
		m.persist(ctx, model, refAgg, source, by)
	}
	if kind == ReferenceGrowing && snap.RefRows < pol.MinSamples {
		m.evals.WithLabelValues("waiting").Inc()
		return Result{Snapshot: snap, Reference: kind, Skipped: fmt.Sprintf("the growing reference %s holds %d rows, fewer than min_samples (%d)", ref, snap.RefRows, pol.MinSamples)}, nil
	}
	now := m.opts.Now()
	// The counts the statistics are computed from, for the pictures
	// (histograms, category bars), are written while they are computed:
	// before the results, the mark of a window done (same window columns
	// and computed_at), and whichever way this ends, the write ends first.
	// A window evaluated again replaces them (ReplacingMergeTree).
	distF := future.Go(func() (struct{}, error) { return struct{}{}, m.sink.WriteDistributions(ctx, snap, kind, now) })
	defer distF.Wait() //nolint:errcheck // waited for below before the results
	hist, err := histF.Wait()
	if err != nil {
		m.failed(ctx)
		return Result{}, err
	}
	v := policy.Evaluate(snap, pol, hist)
	var imp Importance
	if pol.MinImportance > 0 {
		if imp, err = m.championImportance(ctx, model); err != nil {
			m.failed(ctx)
			return Result{}, err
		}
		policy.ApplyImportance(&v, imp.Shares, pol.MinImportance)
	}
	// The slices first (their rows are not the window's mark of done):
	// the triggers' evidence names their root causes.
	segs, err := m.evaluateSegments(ctx, model, snap, kind, pol, imp, ends, now)
	if err != nil {
		m.failed(ctx)
		return Result{}, err
	}
	rcs := rootCauses(snap, v, segs)
	// The window's partials are in ClickHouse before anything of it is
	// recorded: a window whose partials could not be written fails.
	if err := persisted(); err != nil {
		m.failed(ctx)
		return Result{}, err
	}
	if err := m.sink.WriteRootCauses(ctx, snap, rcs, now); err != nil {
		m.failed(ctx)
		return Result{}, err
	}
	res := Result{Snapshot: snap, Verdict: v, Reference: kind, Segments: segs, RootCauses: rcs, Importance: imp}
	// The triggers before the results: a window's rows in drift_results
	// say that it was evaluated to the end, so that an instance taking the
	// model over (or this one restarted) goes on after it. A window cut
	// off after publishing has no rows and is evaluated again, its
	// triggers found by their dedup keys (or, if the cut came between the
	// topic and retrain_triggers, published again under the same key,
	// which the trainer ignores).
	//
	// The triggers carry the version the window served; a failed read
	// must not publish a trigger with an empty model_version.
	version, err := versionF.Wait()
	if err != nil {
		m.failed(ctx)
		return res, err
	}
	rcEvidence := rootCauseEvidence(rcs, v.Sustained, segs)
	for _, t := range candidates(m.opts.Triggers, snap, v, version, now) {
		if t.Reason == schemas.TriggerFeatureDrift || t.Reason == schemas.TriggerPredictionDrift {
			t.Evidence = append(t.Evidence, rcEvidence...)
			if t.Reason == schemas.TriggerFeatureDrift {
				t.Evidence = append(t.Evidence, leanedEvidence(v)...)
			}
			fitEvidence(t)
		}
		sortedEvidence(t.Evidence)
		d, err := m.gate.decide(ctx, t, false)
		if err != nil {
			m.failed(ctx)
			return res, err
		}
		m.triggers.WithLabelValues(string(t.Reason), string(d.Outcome)).Inc()
		res.Decisions = append(res.Decisions, d)
		if d.Outcome == OutcomePublished {
			m.log.Info("retrain trigger published", "model", model, "reason", t.Reason, "features", len(t.Evidence), "window", cur.String(), "dedup_key", t.DedupKey)
		}
	}
	if _, err := distF.Wait(); err != nil {
		m.failed(ctx)
		return res, err
	}
	if err := m.sink.WriteResults(ctx, snap, "", kind, v.Rows, verdictRows(v), now); err != nil {
		m.failed(ctx)
		return res, err
	}
	m.exp.update(model, snap.CurRows, v, segs, rcs)
	m.evals.WithLabelValues("ok").Inc()
	if len(v.Sustained) > 0 || len(v.QualityIssues) > 0 {
		m.log.Info("drift", "model", model, "window", cur.String(), "sustained", v.Sustained, "drifted", v.Drifted, "quality", v.QualityIssues)
	}
	return res, nil
}

// segmentOptions are the slices of model's traffic evaluated, nil for
// none.
func (m *Monitor) segmentOptions(model string, pol policy.Config) *window.SegmentOptions {
	so := window.SegmentOptions{Keys: m.opts.Segments.Keys, MaxSegments: m.opts.Segments.MaxSegments, MinSamples: pol.MinSamples}
	if mc, ok := m.opts.Models[model]; ok {
		so.By = mc.SegmentBy
	}
	if len(so.Keys)+len(so.By) == 0 {
		return nil
	}
	return &so
}

// evaluateSegments evaluates the slices of snap's windows (those with at
// least min_samples rows in both), with Benjamini–Hochberg across
// features × slices and each slice's own hysteresis, and writes their
// results to drift_results under their segment.
func (m *Monitor) evaluateSegments(ctx context.Context, model string, snap *window.Snapshot, kind string, pol policy.Config, imp Importance, ends []time.Time, now time.Time) ([]SegmentResult, error) {
	so := m.segmentOptions(model, pol)
	if so == nil {
		return nil, nil
	}
	slices, err := window.ComputeSegments(ctx, m.opts.Conn, snap, *so, m.opts.aggregation())
	if err != nil || len(slices) == 0 {
		return nil, err
	}
	hists, err := m.sink.SegmentHistory(ctx, model, ends, true)
	if err != nil {
		return nil, err
	}
	snaps := make([]*window.Snapshot, len(slices))
	hs := make([]policy.History, len(slices))
	for i, s := range slices {
		snaps[i], hs[i] = s.Snapshot, hists[s.Name]
	}
	vs := policy.EvaluateSegments(snaps, pol, hs)
	out := make([]SegmentResult, len(slices))
	for i, s := range slices {
		policy.ApplyImportance(&vs[i], imp.Shares, pol.MinImportance)
		if err := m.sink.WriteResults(ctx, s.Snapshot, s.Name, kind, vs[i].Rows, verdictRows(vs[i]), now); err != nil {
			return nil, err
		}
		out[i] = SegmentResult{Name: s.Name, Snapshot: s.Snapshot, Verdict: vs[i]}
	}
	return out, nil
}

// Manual publishes a manual trigger for model (through the same gate: a
// repeated key is a duplicate, the daily maximum applies).
func (m *Monitor) Manual(ctx context.Context, model, version, key, note string) (Decision, error) {
	now := m.opts.Now().UTC()
	if key == "" {
		key = dedupKey("manual", model, now)
	} else {
		key = dedupKey("manual", model, key)
	}
	t := &schemas.RetrainTrigger{TriggerID: key[:32], ModelID: model, ModelVersion: version, Reason: schemas.TriggerManual, CreatedAt: now,
		Window: schemas.TimeRange{From: now.Add(-m.opts.Window), To: now}, Reference: schemas.TimeRange{From: now.Add(-m.opts.Window), To: now},
		Policy: "manual", DedupKey: key}
	if note != "" {
		t.Evidence = []schemas.Evidence{{Check: "manual", Feature: note}}
	}
	d, err := m.gate.decide(ctx, t, true)
	if err == nil {
		m.triggers.WithLabelValues(string(t.Reason), string(d.Outcome)).Inc()
		// A person asked (the API, driftwatch retrain): say what became
		// of it, refusals included, which retrain_triggers does not hold.
		m.log.Info("manual retrain trigger", "model", model, "outcome", d.Outcome, "trigger_id", t.TriggerID)
	}
	return d, err
}

// flushPartials writes the window caches' unwritten partials, for at
// most flushTimeout.
func (m *Monitor) flushPartials(ctx context.Context) {
	caches := m.partials.all()
	if len(caches) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, flushTimeout)
	defer cancel()
	n := 0
	for _, bc := range caches {
		n += bc.Unwritten()
		if err := bc.Flush(ctx); err != nil {
			m.log.Warn("write a window cache's unwritten partials at shutdown; they will be aggregated again", "err", err)
		}
	}
	if n > 0 {
		m.log.Info("wrote the window caches' unwritten partials", "buckets", n)
	}
}

// flushTimeout bounds the writes of flushPartials at shutdown.
const flushTimeout = 30 * time.Second

// Run evaluates every model each Step until ctx ends. Each round's window
// ends at the latest Step boundary. A model's windows missed since its last
// evaluation (at start: the Consecutive−1 windows before the current one,
// so hysteresis has its history at once) are evaluated first, oldest first,
// at most catchUp of them.
//
// Models are evaluated EvaluationConcurrency at a time, each round of a
// model (its windows, then its performance) under its own deadline
// (evaluation_timeout): a model that fails, hangs or is slow is cut off
// and retried from where it stopped next round, and never holds up the
// others beyond its deadline.
//
// Instances on one ClickHouse share the models (fleet): each round
// evaluates only the models this instance holds the lease of; a model it
// has just taken over goes on after the newest window in drift_results.
func (m *Monitor) Run(ctx context.Context) error {
	// The heartbeats outlive ctx until the last round has drained, so that
	// no model is released while an evaluation of it may still write.
	fctx, stopFleet := context.WithCancel(context.WithoutCancel(ctx))
	var fleetDone sync.WaitGroup
	fleetDone.Go(func() { m.fleet.run(fctx) })
	defer func() { stopFleet(); fleetDone.Wait() }()
	// Then (the last round drained, the models still held) the window
	// caches' unwritten partials are written: the next monitor to evaluate
	// the models reads them instead of aggregating them again.
	defer m.flushPartials(context.WithoutCancel(ctx))
	state := map[string]*modelState{}
	for {
		now := m.opts.Now()
		end := now.Truncate(m.opts.Step)
		models, err := m.Models(ctx, now)
		if err != nil {
			m.log.Warn("model discovery failed", "err", err)
		} else {
			actx, cancelAssign := context.WithTimeout(ctx, m.opts.Lease/2+claimSettle)
			models, err = m.fleet.assign(actx, models)
			cancelAssign()
			if err != nil && ctx.Err() == nil {
				m.log.Warn("model assignment failed; no model is evaluated this round", "instance", m.opts.InstanceID, "err", err)
			}
		}
		if err != nil {
			// Without discovery or the leases nothing is evaluated
			// (another instance may hold any model) and nothing is handed
			// over: the heartbeats go on, and the next round assigns.
			models = nil
		}
		for model := range state {
			if err == nil && !slices.Contains(models, model) {
				// Handed over: taken back, it goes on from drift_results;
				// its series are the new instance's to export.
				delete(state, model)
				m.exp.forget(model)
				m.refMissing.DeleteLabelValues(model)
			}
		}
		slots := make(chan struct{}, m.opts.EvaluationConcurrency)
		var wg sync.WaitGroup
	models:
		for _, model := range models {
			st := state[model]
			if st == nil {
				st = &modelState{}
				state[model] = st
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				break models
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				m.round(ctx, model, end, st)
			}()
		}
		wg.Wait()
		if ctx.Err() != nil {
			return nil
		}
		wait := end.Add(m.opts.Step).Sub(m.opts.Now())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(max(wait, time.Second)):
		}
	}
}

// modelState is what Run remembers of a model between rounds; only the
// goroutine evaluating the model in a round touches it.
type modelState struct {
	// last is the end of the newest window evaluated, lastPerf the
	// performance window end last scored.
	last, lastPerf time.Time
}

// catchUp is the most windows of one model Run evaluates in a round.
const catchUp = 10

// round evaluates model's windows due by end and its performance, each
// under the model's evaluation deadline.
func (m *Monitor) round(ctx context.Context, model string, end time.Time, st *modelState) {
	timeout := m.evaluationTimeout(model)
	err := m.withDeadline(ctx, timeout, func(ctx context.Context) error {
		if st.last.IsZero() {
			// Taken over (or started): the windows already in
			// drift_results were evaluated, by this instance before or
			// by another.
			newest, err := m.store.NewestWindow(ctx, model)
			if err != nil {
				m.failed(ctx)
				return err
			}
			if !newest.After(end) {
				st.last = newest
			}
		}
		from := st.last
		if from.IsZero() {
			c := m.opts.Policy.Consecutive
			if mc, has := m.opts.Models[model]; has && mc.Policy != nil {
				c = mc.Policy.Consecutive
			}
			from = end.Add(-time.Duration(c) * m.opts.Step)
		}
		first := from.Add(m.opts.Step)
		if oldest := end.Add(-time.Duration(catchUp-1) * m.opts.Step); first.Before(oldest) {
			first = oldest
		}
		for e := first; !e.After(end); e = e.Add(m.opts.Step) {
			if !m.fleet.holds(model) {
				return nil // its lease was dropped during the round
			}
			if _, err := m.Evaluate(ctx, model, e); err != nil {
				return fmt.Errorf("window ending %s: %w", e.Format(time.RFC3339), err)
			}
			st.last = e
		}
		return nil
	})
	if err != nil {
		m.roundFailed(ctx, "evaluation", model, timeout, err)
	}
	p := m.opts.Performance
	if !p.Enabled || ctx.Err() != nil {
		return
	}
	pend := end.Truncate(p.Window)
	if !st.lastPerf.IsZero() && pend.Equal(st.lastPerf) {
		return
	}
	if err := m.withDeadline(ctx, timeout, func(ctx context.Context) error {
		_, err := m.EvaluatePerformance(ctx, model, pend)
		return err
	}); err != nil {
		m.roundFailed(ctx, "performance evaluation", model, timeout, err)
		return
	}
	st.lastPerf = pend
}

// evaluationTimeout is model's evaluation deadline: its own, the
// instance's, or half of Step.
func (m *Monitor) evaluationTimeout(model string) time.Duration {
	if mc, ok := m.opts.Models[model]; ok && mc.EvaluationTimeout > 0 {
		return mc.EvaluationTimeout
	}
	if m.opts.EvaluationTimeout > 0 {
		return m.opts.EvaluationTimeout
	}
	return m.opts.Step / 2
}

// withDeadline runs f with a context that ends after timeout. ClickHouse is
// told too (max_execution_time, whole seconds, at least 1), so a query cut
// off by the deadline stops on the server as well as in the client.
func (m *Monitor) withDeadline(ctx context.Context, timeout time.Duration, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	secs := max(1, int64(math.Ceil(timeout.Seconds())))
	return f(clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"max_execution_time": secs})))
}

// roundFailed logs a model's failed or timed-out round; the evaluation's
// outcome was counted where it failed. A round cut off because Run is
// stopping is not worth a line.
func (m *Monitor) roundFailed(ctx context.Context, what, model string, timeout time.Duration, err error) {
	switch {
	case ctx.Err() != nil:
	case errors.Is(err, context.DeadlineExceeded):
		m.log.Warn(what+" timed out; it is retried from there next round", "model", model, "evaluation_timeout", timeout, "err", err)
	default:
		m.log.Warn(what+" failed; it is retried from there next round", "model", model, "err", err)
	}
}

// failed counts a failed evaluation: outcome timeout when ctx's deadline
// passed (evaluation_timeout), error otherwise.
func (m *Monitor) failed(ctx context.Context) {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		m.evals.WithLabelValues("timeout").Inc()
		return
	}
	m.evals.WithLabelValues("error").Inc()
}

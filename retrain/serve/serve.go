package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/retrain"
	"github.com/driftwatch/driftwatch/retrain/model"
	"github.com/driftwatch/driftwatch/schemas"
)

// EventReader is what serve follows model events with (a *kafka.Reader).
type EventReader interface {
	FetchMessage(ctx context.Context) (kafka.Message, error)
}

// Options are what a Server runs on.
type Options struct {
	Settings
	// Conn reads the registry (models).
	Conn driver.Conn
	// Inferences and Outcomes receive the logged events.
	Inferences, Outcomes MessageWriter
	// InferencesTopic and OutcomesTopic name them in metrics.
	InferencesTopic, OutcomesTopic string
	// Events delivers model events; nil follows none (the registry is
	// still read every ReloadInterval).
	Events EventReader
	// ShutdownTimeout bounds the final flush of the event log.
	ShutdownTimeout time.Duration
	Registerer      prometheus.Registerer
	Logger          *slog.Logger
	Now             func() time.Time
}

// Server serves the champions of the registry. Create it with New, load
// the champions with Load, mount Handler and call Run.
type Server struct {
	opts   Options
	log    *slog.Logger
	models atomic.Pointer[map[string]*served]
	events *eventLog
	// reloadMu serialises reloads (a model event and the periodic read).
	reloadMu sync.Mutex
	started  time.Time
	m        metrics
	// shadow queues answered requests for their challenger (shadow.go).
	shadow       chan shadowJob
	shadowLogged atomic.Int64 // unix ns of the last logged shadow failure
	// predictHook, when set (tests), replaces a challenger's scoring.
	predictHook func(ch *served, num map[string]float64, cat map[string]string) float64
}

// served is one loaded champion; it is never changed once published.
type served struct {
	id, version string
	m           *model.Model
	negative    string
	numeric     map[string]model.NumericFeature
	categorical map[string]bool
	// challenger is the version shadow-scored alongside this champion, or
	// nil.
	challenger *served
}

type metrics struct {
	requests    *prometheus.CounterVec // route, code
	predictions *prometheus.CounterVec // model
	duration    *prometheus.HistogramVec
	reloads     *prometheus.CounterVec // model, outcome
	info        *prometheus.GaugeVec   // model, version
	shadow      *prometheus.CounterVec // model, outcome
	shadowLoads *prometheus.CounterVec // model, outcome
	shadowInfo  *prometheus.GaugeVec   // model, version
}

// New validates opts and builds a Server with no model loaded.
func New(opts Options) (*Server, error) {
	if err := opts.Settings.Validate(); err != nil {
		return nil, err
	}
	if opts.Inferences == nil || opts.Outcomes == nil {
		return nil, errors.New("BUG: serve.New without Kafka writers")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 10 * time.Second
	}
	f := promauto.With(opts.Registerer)
	s := &Server{opts: opts, log: opts.Logger, started: opts.Now()}
	s.m = metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{Name: "driftwatch_serve_requests_total",
			Help: "Requests answered, by route (predict, outcomes) and HTTP status code."}, []string{"route", "code"}),
		predictions: f.NewCounterVec(prometheus.CounterOpts{Name: "driftwatch_serve_predictions_total",
			Help: "Rows predicted, by model."}, []string{"model"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{Name: "driftwatch_serve_request_duration_seconds",
			Help: "Time from a request's body read to its answer written, by route.", Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1}}, []string{"route"}),
		reloads: f.NewCounterVec(prometheus.CounterOpts{Name: "driftwatch_serve_reloads_total",
			Help: "Champion loads, by model and outcome (loaded, rejected: checksum or schema check failed, failed: unreadable)."}, []string{"model", "outcome"}),
		info: f.NewGaugeVec(prometheus.GaugeOpts{Name: "driftwatch_serve_model_info",
			Help: "1 for the version each model is served at."}, []string{"model", "version"}),
		shadow: f.NewCounterVec(prometheus.CounterOpts{Name: "driftwatch_serve_shadow_predictions_total",
			Help: "Rows shadow-scored by a model's challenger, by model and outcome (logged, dropped: shadow queue full, invalid: the challenger refused the row, failed: its scoring failed, unlogged: log buffer full)."}, []string{"model", "outcome"}),
		shadowLoads: f.NewCounterVec(prometheus.CounterOpts{Name: "driftwatch_serve_shadow_loads_total",
			Help: "Challenger loads for shadow scoring, by model and outcome (loaded, rejected, failed)."}, []string{"model", "outcome"}),
		shadowInfo: f.NewGaugeVec(prometheus.GaugeOpts{Name: "driftwatch_serve_shadow_model_info",
			Help: "1 for the challenger version each model is shadow-scored with."}, []string{"model", "version"}),
	}
	s.shadow = make(chan shadowJob, shadowQueue)
	ev := f.NewCounterVec(prometheus.CounterOpts{Name: "driftwatch_serve_log_events_total",
		Help: "Inference and outcome events by topic and outcome: accepted into the buffer, dropped (buffer full), written to Kafka, failed (Kafka refused them)."}, []string{"topic", "outcome"})
	s.events = newEventLog(opts.LogBuffer, opts.LogPolicy, opts.LogWait, opts.Logger, ev)
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "driftwatch_serve_log_buffer_events",
		Help: "Events in the log buffer, not yet written to Kafka."}, func() float64 { return float64(len(s.events.ch)) })
	empty := map[string]*served{}
	s.models.Store(&empty)
	return s, nil
}

// Versions returns the version served of each model.
func (s *Server) Versions() map[string]string {
	out := map[string]string{}
	for id, m := range *s.models.Load() {
		out[id] = m.version
	}
	return out
}

// Load reads the registry and loads every champion that differs from the
// one served (modelID "" for all models). A champion whose artifact fails
// its checks is logged and counted, and the model keeps its current
// version; only a registry error is returned.
func (s *Server) Load(ctx context.Context, modelID string) error {
	if s.opts.Conn == nil {
		return errors.New("BUG: serve.Load without a ClickHouse connection")
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	vs, err := retrain.ListVersions(ctx, s.opts.Conn, modelID)
	if err != nil {
		return fmt.Errorf("read the registry: %w", err)
	}
	cur := *s.models.Load()
	next := map[string]*served{}
	changed := false
	for _, v := range vs { // by model, newest first
		if v.Status != retrain.StatusChampion || next[v.ModelID] != nil || (len(s.opts.Models) > 0 && !slices.Contains(s.opts.Models, v.ModelID)) {
			continue
		}
		if v.Trainer != retrain.TrainerBuiltin {
			continue
		}
		old := cur[v.ModelID]
		if old != nil && old.version == v.Version {
			next[v.ModelID] = old
			continue
		}
		sv, err := s.load(v, old)
		if err != nil {
			outcome := "failed"
			if errors.Is(err, errRejected) {
				outcome = "rejected"
			}
			s.m.reloads.WithLabelValues(v.ModelID, outcome).Inc()
			s.log.Error("champion not loaded; the model keeps its current version", "model", v.ModelID, "version", v.Version, "err", err)
			if old != nil {
				next[v.ModelID] = old
			}
			continue
		}
		s.m.reloads.WithLabelValues(v.ModelID, "loaded").Inc()
		if old != nil {
			s.m.info.DeleteLabelValues(old.id, old.version)
		}
		s.m.info.WithLabelValues(sv.id, sv.version).Set(1)
		s.log.Info("serving champion", "model", v.ModelID, "version", v.Version, "previous", versionOf(old))
		next[v.ModelID] = sv
		changed = true
	}
	// Models not in this read keep what they had: a read of one model, or
	// a model whose champion row is momentarily absent.
	for id, m := range cur {
		if next[id] == nil {
			next[id] = m
		}
	}
	if len(s.opts.ShadowModels) > 0 && s.loadChallengers(vs, cur, next) {
		changed = true
	}
	if changed {
		s.models.Store(&next)
	}
	return nil
}

func versionOf(m *served) string {
	if m == nil {
		return ""
	}
	return m.version
}

// errRejected marks an artifact that was read but failed a check.
var errRejected = errors.New("artifact rejected")

// load reads and checks v's artifact: its checksum, its metadata (model
// and version), and, when a version is already served, that the new one
// answers the same task (and positive class), so clients' answers keep
// their shape.
func (s *Server) load(v *retrain.Version, old *served) (*served, error) {
	m, _, err := retrain.ReadArtifact(v.ArtifactURI)
	if err != nil {
		if errors.Is(err, retrain.ErrChecksum) {
			return nil, fmt.Errorf("%w: %w", errRejected, err)
		}
		return nil, err
	}
	dir := strings.TrimPrefix(v.ArtifactURI, "file://")
	if raw, err := os.ReadFile(filepath.Join(dir, "metadata.json")); err == nil {
		var meta struct {
			ModelID string `json:"model_id"`
			Version string `json:"version"`
		}
		if err := json.Unmarshal(raw, &meta); err != nil {
			return nil, fmt.Errorf("%w: metadata.json: %w", errRejected, err)
		}
		if meta.ModelID != v.ModelID || meta.Version != v.Version {
			return nil, fmt.Errorf("%w: metadata.json is of %s %s, the registry says %s %s", errRejected, meta.ModelID, meta.Version, v.ModelID, v.Version)
		}
	}
	return s.served(v.ModelID, v.Version, m, old)
}

// served checks m against the version served (old, nil when none) and
// compiles it for serving.
func (s *Server) served(modelID, version string, m *model.Model, old *served) (*served, error) {
	if old != nil && (old.m.Target.Task != m.Target.Task || old.m.Target.PositiveClass != m.Target.PositiveClass) {
		return nil, fmt.Errorf("%w: version %s is a %s model (positive class %q), version %s served is a %s one (%q)", errRejected,
			version, m.Target.Task, m.Target.PositiveClass, old.version, old.m.Target.Task, old.m.Target.PositiveClass)
	}
	if len(m.Preprocessor.Numeric)+len(m.Preprocessor.Categorical) == 0 {
		return nil, fmt.Errorf("%w: version %s has no features", errRejected, version)
	}
	sv := &served{id: modelID, version: version, m: m, numeric: map[string]model.NumericFeature{}, categorical: map[string]bool{}}
	for _, f := range m.Preprocessor.Numeric {
		sv.numeric[f.Name] = f
	}
	for _, f := range m.Preprocessor.Categorical {
		sv.categorical[f.Name] = true
	}
	if m.Target.Task == model.Classification {
		sv.negative = s.opts.negativeLabel(modelID, m.Target.PositiveClass)
	}
	return sv, nil
}

// Run writes the event log, follows model events and reads the registry
// every ReloadInterval until ctx ends; then it stops accepting events and
// writes every accepted one (within ShutdownTimeout).
func (s *Server) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		s.events.run(ctx, s.opts.ShutdownTimeout)
	}()
	if s.opts.Events != nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.follow(ctx) }()
	}
	if len(s.opts.ShadowModels) > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); s.runShadow(ctx) }()
	}
	t := time.NewTicker(s.opts.ReloadInterval)
	defer t.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-t.C:
			if err := s.Load(ctx, ""); err != nil && ctx.Err() == nil {
				s.log.Warn("periodic registry read", "err", err)
			}
		}
	}
	wg.Wait()
	<-logDone
	return nil
}

// follow reloads a model on each of its promoted events. Events from
// before the server started are skipped: Load read the registry then.
func (s *Server) follow(ctx context.Context) {
	for {
		msg, err := s.opts.Events.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("read model events", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		e, err := schemas.DecodeModelEvent(msg.Value)
		if err != nil {
			s.log.Warn("skipping an undecodable model event", "offset", msg.Offset, "err", err)
			continue
		}
		// A registered (or rejected) version may be a shadowed model's new
		// challenger.
		reload := e.Kind == schemas.ModelPromoted || (s.opts.shadowed(e.ModelID) && (e.Kind == schemas.ModelRegistered || e.Kind == schemas.ModelRejected))
		if !reload || e.Timestamp.Before(s.started.Add(-time.Minute)) {
			continue
		}
		if len(s.opts.Models) > 0 && !slices.Contains(s.opts.Models, e.ModelID) {
			continue
		}
		s.log.Info("model event", "kind", e.Kind, "model", e.ModelID, "version", e.Version)
		if err := s.Load(ctx, e.ModelID); err != nil && ctx.Err() == nil {
			s.log.Warn("reload after a promotion", "model", e.ModelID, "err", err)
		}
	}
}

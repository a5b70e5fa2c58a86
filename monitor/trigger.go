package monitor

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/internal/future"
	"github.com/driftwatch/driftwatch/internal/signing"
	"github.com/driftwatch/driftwatch/monitor/multivariate"
	"github.com/driftwatch/driftwatch/monitor/policy"
	"github.com/driftwatch/driftwatch/monitor/window"
	"github.com/driftwatch/driftwatch/schemas"
)

// TriggerConfig gates retrain triggers.
type TriggerConfig struct {
	// FeatureDrift fires when at least MinDriftedFeatures input features
	// are drifted for the configured number of consecutive windows.
	FeatureDrift       bool `yaml:"feature_drift"`
	MinDriftedFeatures int  `yaml:"min_drifted_features"`
	// PredictionDrift fires on sustained drift of the score or the label.
	PredictionDrift bool `yaml:"prediction_drift"`
	// DataQuality fires on any data-quality issue (off by default: bad
	// data is usually a pipeline bug, not a reason to retrain).
	DataQuality bool `yaml:"data_quality"`
	// Schedule fires for every model at each multiple of Schedule since the
	// Unix epoch (a window ending at midnight UTC for 24h), whatever the
	// drift; cooldown and the daily maximum still apply. 0 is off.
	Schedule time.Duration `yaml:"schedule"`
	// Cooldown is the least time between two triggers of one model, and
	// DailyMax the most triggers per model and UTC day; manual triggers
	// respect DailyMax only.
	Cooldown time.Duration `yaml:"cooldown"`
	DailyMax int           `yaml:"daily_max"`
}

// DefaultTriggerConfig returns the defaults.
func DefaultTriggerConfig() TriggerConfig {
	return TriggerConfig{FeatureDrift: true, MinDriftedFeatures: 1, PredictionDrift: true, Cooldown: 6 * time.Hour, DailyMax: 3}
}

// Validate names every bad setting.
func (c TriggerConfig) Validate(prefix string) error {
	var errs []string
	if c.MinDriftedFeatures < 1 {
		errs = append(errs, fmt.Sprintf("%s.min_drifted_features: must be at least 1, got %d", prefix, c.MinDriftedFeatures))
	}
	if c.Cooldown < 0 || c.Schedule < 0 {
		errs = append(errs, prefix+".cooldown and schedule: must not be negative")
	}
	if c.DailyMax < 1 {
		errs = append(errs, fmt.Sprintf("%s.daily_max: must be at least 1, got %d", prefix, c.DailyMax))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return nil
}

// Outcome is what the trigger gate did with a candidate. Its text is the
// API's "outcome" and the outcome label of
// driftwatch_monitor_triggers_total.
type Outcome string

// The gate's outcomes.
const (
	// OutcomePublished: written to retrain_triggers and the topic.
	OutcomePublished Outcome = "published"
	// OutcomeDuplicate: a trigger with the same dedup key exists.
	OutcomeDuplicate Outcome = "duplicate"
	// OutcomeCooldown: the model had a trigger within the cooldown.
	OutcomeCooldown Outcome = "cooldown"
	// OutcomeDailyMax: the model reached its triggers per day.
	OutcomeDailyMax Outcome = "daily_max"
)

// Decision is what the trigger gate decided for one candidate.
type Decision struct {
	Trigger *schemas.RetrainTrigger
	Outcome Outcome
}

// candidates turns a verdict into the triggers its policies ask for. Each
// is within the trigger contract's limits (schemas.EncodeRetrainTrigger
// accepts it): evidence rows whose names are over
// schemas.MaxTriggerKeyBytes are left out, and at most
// schemas.MaxTriggerEvidence rows are kept, the most drifted first
// (drift), fewer when the encoded trigger would still be over
// schemas.MaxTriggerBytes.
func candidates(c TriggerConfig, snap *window.Snapshot, v policy.Verdict, version string, now time.Time) []*schemas.RetrainTrigger {
	var out []*schemas.RetrainTrigger
	evidence := func(features []string, kinds ...string) []schemas.Evidence {
		want := map[string]bool{}
		for _, f := range features {
			want[f] = true
		}
		var ev []schemas.Evidence
		for _, r := range v.Rows {
			if !want[r.Feature] || !r.Drifted || !slices.Contains(kinds, r.Kind) {
				continue
			}
			if len(r.Feature) > schemas.MaxTriggerKeyBytes || len(r.Kind) > schemas.MaxTriggerKeyBytes || len(r.Method) > schemas.MaxTriggerKeyBytes {
				continue
			}
			e := schemas.Evidence{Check: r.Kind, Feature: r.Feature, Method: r.Method, Value: r.Value, Threshold: finite(r.Threshold), Samples: r.Samples}
			if !math.IsNaN(r.PValue) {
				p := r.PValue
				e.PValue = &p
			}
			ev = append(ev, e)
		}
		return ev
	}
	mk := func(reason schemas.TriggerReason, policyName string, ev []schemas.Evidence) *schemas.RetrainTrigger {
		key := dedupKey(policyName, snap.Model, snap.Current.End)
		t := &schemas.RetrainTrigger{
			TriggerID: key[:32], ModelID: snap.Model, ModelVersion: version, Reason: reason, CreatedAt: now.UTC(),
			Window:    schemas.TimeRange{From: snap.Current.Start, To: snap.Current.End},
			Reference: schemas.TimeRange{From: snap.Reference.Start, To: snap.Reference.End},
			Evidence:  ev, Policy: policyName, DedupKey: key,
		}
		fitEvidence(t)
		return t
	}
	var inputs, preds []string
	for _, f := range v.Sustained {
		if f == window.ScoreFeature || f == window.LabelFeature {
			preds = append(preds, f)
		} else {
			inputs = append(inputs, f)
		}
	}
	if c.FeatureDrift && len(inputs) >= c.MinDriftedFeatures {
		out = append(out, mk(schemas.TriggerFeatureDrift, "feature_drift", evidence(inputs, policy.KindDrift)))
	}
	if c.PredictionDrift && len(preds) > 0 {
		out = append(out, mk(schemas.TriggerPredictionDrift, "prediction_drift", evidence(preds, policy.KindPredictionDrift)))
	}
	if c.Schedule > 0 && snap.Current.End.Equal(snap.Current.End.Truncate(c.Schedule)) {
		out = append(out, mk(schemas.TriggerSchedule, "schedule", nil))
	}
	if c.DataQuality && len(v.QualityIssues) > 0 {
		var fs []string
		for _, q := range v.QualityIssues {
			fs = append(fs, q[:strings.LastIndex(q, "/")])
		}
		out = append(out, mk(schemas.TriggerDataQuality, "data_quality", evidence(fs, policy.KindDataQuality)))
	}
	return out
}

// fitEvidence keeps the most drifted of t's evidence rows (drift, then
// the most samples, then by feature and method), at most
// schemas.MaxTriggerEvidence, and as many of those as fit the trigger in
// schemas.MaxTriggerBytes.
func fitEvidence(t *schemas.RetrainTrigger) {
	ev := t.Evidence
	slices.SortStableFunc(ev, func(a, b schemas.Evidence) int {
		if c := cmp.Compare(drift(b), drift(a)); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Samples, a.Samples); c != 0 {
			return c
		}
		if c := strings.Compare(a.Feature, b.Feature); c != 0 {
			return c
		}
		return strings.Compare(a.Method, b.Method)
	})
	ev = ev[:min(len(ev), schemas.MaxTriggerEvidence)]
	fits := func(n int) bool {
		t.Evidence = ev[:n]
		_, err := schemas.EncodeRetrainTrigger(t)
		return err == nil
	}
	if !fits(len(ev)) {
		// The longest prefix that fits (each row is at most a few KB
		// encoded, so one does).
		lo, hi := 0, len(ev) // fits(lo), !fits(hi)
		for hi-lo > 1 {
			if mid := (lo + hi) / 2; fits(mid) {
				lo = mid
			} else {
				hi = mid
			}
		}
		ev = ev[:lo]
	}
	t.Evidence = ev
}

// drift is how far beyond its threshold an evidence row is, comparable
// across methods: for a p-value test log(p)/log(alpha) (2 when p = alpha²),
// for a statistic value/threshold; 0 when undefined.
func drift(e schemas.Evidence) float64 {
	var d float64
	switch {
	case e.PValue != nil && *e.PValue <= 0:
		d = math.Inf(1)
	case e.PValue != nil && e.Threshold > 0 && e.Threshold < 1:
		d = math.Log(*e.PValue) / math.Log(e.Threshold)
	case e.PValue != nil:
		d = -math.Log(*e.PValue)
	case e.Threshold != 0:
		d = e.Value / math.Abs(e.Threshold)
	case e.Value > 0:
		d = math.Inf(1)
	}
	if math.IsNaN(d) {
		return 0
	}
	return d
}

// dedupKey is the same for the same decision: a monitor that evaluates the
// same window again (after a restart) produces the same key.
func dedupKey(parts ...any) string {
	h := sha256.New()
	for _, p := range parts {
		switch v := p.(type) {
		case time.Time:
			fmt.Fprintf(h, "%d|", v.UnixMilli())
		default:
			fmt.Fprintf(h, "%v|", v)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// gate decides and publishes: a trigger whose dedup_key is already in
// retrain_triggers is a duplicate; then cooldown and the daily maximum.
// Decisions for one model are serialised (a lock per model, held from the
// history read to the table write), so concurrent triggers — manual ones
// from the API, an evaluation's — never pass the daily maximum together.
// Publishing writes Kafka first and the table second, so a crash between
// the two republishes (with the same dedup_key, which the trainer ignores)
// rather than losing the trigger.
type gate struct {
	store  ledger
	writer interface {
		WriteMessages(ctx context.Context, msgs ...kafka.Message) error
	}
	cfg TriggerConfig
	// signer signs each published trigger; nil leaves them unsigned.
	signer *signing.Key

	mu    sync.Mutex
	locks map[string]*modelLock // by model; an entry lives while in use
}

type modelLock struct {
	ch    chan struct{} // a one-slot semaphore, so a waiter can give up with ctx
	users int
}

// lock takes model's lock, waiting at most until ctx ends; the returned
// function releases it.
func (g *gate) lock(ctx context.Context, model string) (func(), error) {
	g.mu.Lock()
	if g.locks == nil {
		g.locks = map[string]*modelLock{}
	}
	l := g.locks[model]
	if l == nil {
		l = &modelLock{ch: make(chan struct{}, 1)}
		g.locks[model] = l
	}
	l.users++
	g.mu.Unlock()
	done := func() {
		g.mu.Lock()
		if l.users--; l.users == 0 {
			delete(g.locks, model)
		}
		g.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; done() }, nil
	case <-ctx.Done():
		done()
		return nil, fmt.Errorf("wait for the trigger gate of %s: %w", model, ctx.Err())
	}
}

func (g *gate) decide(ctx context.Context, t *schemas.RetrainTrigger, manual bool) (Decision, error) {
	unlock, err := g.lock(ctx, t.ModelID)
	if err != nil {
		return Decision{}, err
	}
	defer unlock()
	// The two reads side by side; the history is not needed for a
	// duplicate.
	type history struct {
		last  time.Time
		today uint64
	}
	histF := future.Go(func() (history, error) {
		last, today, err := g.store.TriggerHistory(ctx, t.ModelID, t.CreatedAt.UTC().Truncate(24*time.Hour))
		return history{last, today}, err
	})
	dup, err := g.store.HasTrigger(ctx, t.ModelID, t.DedupKey)
	h, herr := histF.Wait()
	if err != nil {
		return Decision{}, err
	}
	if dup {
		return Decision{Trigger: t, Outcome: OutcomeDuplicate}, nil
	}
	if herr != nil {
		return Decision{}, herr
	}
	last, today := h.last, h.today
	if int(today) >= g.cfg.DailyMax {
		return Decision{Trigger: t, Outcome: OutcomeDailyMax}, nil
	}
	if !manual && last.Unix() > 0 && t.CreatedAt.Sub(last) < g.cfg.Cooldown {
		return Decision{Trigger: t, Outcome: OutcomeCooldown}, nil
	}
	if err := t.Validate(); err != nil {
		return Decision{}, fmt.Errorf("BUG: invalid trigger: %w", err)
	}
	body, err := json.Marshal(t)
	if err != nil {
		return Decision{}, fmt.Errorf("encode trigger: %w", err)
	}
	msg := kafka.Message{Key: []byte(t.ModelID), Value: body, Headers: []kafka.Header{{Key: schemas.SchemaHeader, Value: []byte(schemas.KindRetrainTrigger.SchemaName())}}}
	g.signer.AddTo(&msg)
	if err := g.writer.WriteMessages(ctx, msg); err != nil {
		return Decision{}, fmt.Errorf("publish trigger for %s: %w", t.ModelID, err)
	}
	ev, err := json.Marshal(t.Evidence)
	if err != nil {
		// Not reached: the trigger, evidence included, encoded above.
		return Decision{}, fmt.Errorf("BUG: encode the evidence of a published trigger for %s: %w", t.ModelID, err)
	}
	if err := g.store.RecordTrigger(ctx, t, string(ev)); err != nil {
		return Decision{}, err
	}
	return Decision{Trigger: t, Outcome: OutcomePublished}, nil
}

// sortedEvidence orders evidence for stable output.
func sortedEvidence(ev []schemas.Evidence) {
	sort.Slice(ev, func(i, j int) bool {
		if ev[i].Feature != ev[j].Feature {
			return ev[i].Feature < ev[j].Feature
		}
		return ev[i].Method < ev[j].Method
	})
}

// CheckLeanedOn is the check of the evidence rows naming what the domain
// classifier leaned on: Feature is the column (a feature, or a product
// "a*b" naming a pair), Value its absolute standardised coefficient.
const CheckLeanedOn = "leaned_on"

// leanedEvidence names what the domain classifier leaned on when its
// drift (__multivariate_classifier) is sustained: a feature drift trigger
// for a drift no feature shows says which features it is in.
func leanedEvidence(v policy.Verdict) []schemas.Evidence {
	if !slices.Contains(v.Sustained, multivariate.ClassifierFeature) {
		return nil
	}
	var ev []schemas.Evidence
	for _, r := range v.Rows {
		if r.Feature != multivariate.ClassifierFeature || r.Method != multivariate.MethodClassifier {
			continue
		}
		for _, l := range r.Leaned {
			if len(l.Column) <= schemas.MaxTriggerKeyBytes {
				ev = append(ev, schemas.Evidence{Check: CheckLeanedOn, Feature: l.Column, Method: r.Method, Value: l.Weight, Threshold: finite(r.Threshold), Samples: r.Samples})
			}
		}
	}
	return ev
}

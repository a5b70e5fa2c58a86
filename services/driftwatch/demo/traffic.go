package demo

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// world is the demo's ground truth: rows whose numeric features are
// standard normal (categorical ones uniform over three values) and a
// label drawn from a fixed logistic rule over the numeric features. The
// drift moves one feature's mean by shift standard deviations; the
// concept change flips the rule's sign, so the champion trained before it
// ranks the new labels backwards (its ROC AUC falls below 0.5) until a
// model trained after it takes over.
type world struct {
	numeric, categorical []string
	driftFeature         string
	shift                float64

	mu      sync.Mutex
	rng     *rand.Rand
	changed atomic.Bool
}

func newWorld(numeric, categorical []string, driftFeature string, shift float64, seed uint64) *world {
	return &world{numeric: numeric, categorical: categorical, driftFeature: driftFeature, shift: shift,
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// setDriftFeature names the feature the drift moves.
func (w *world) setDriftFeature(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.driftFeature = name
}

// weight is the rule's coefficient of the i-th numeric feature: 1.5,
// -1.5, 1.5, … so that every feature matters.
func weight(i int) float64 {
	if i%2 == 0 {
		return 1.5
	}
	return -1.5
}

// row draws one row's features and its true label ("1" or "0").
func (w *world) row() (map[string]any, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	changed := w.changed.Load()
	f := make(map[string]any, len(w.numeric)+len(w.categorical))
	z := 0.0
	for i, name := range w.numeric {
		x := w.rng.NormFloat64()
		// The rule reads the feature before the shift: the drift is of
		// the inputs the model sees, the concept change of the rule.
		z += weight(i) * x
		if changed && name == w.driftFeature {
			x += w.shift
		}
		f[name] = x
	}
	for _, name := range w.categorical {
		f[name] = [...]string{"a", "b", "c"}[w.rng.IntN(3)]
	}
	if changed {
		z = -z
	}
	label := "0"
	if w.rng.Float64() < 1/(1+math.Exp(-z)) {
		label = "1"
	}
	return f, label
}

// trafficStats is what the sender has done so far.
type trafficStats struct {
	predicted, labelled, failed atomic.Int64
	version                     atomic.Pointer[string]
	lastErr                     atomic.Pointer[string]
}

func (s *trafficStats) lastVersion() string {
	if v := s.version.Load(); v != nil {
		return *v
	}
	return ""
}

// send runs until ctx ends: every tick it predicts batch rows through
// serve and posts each row's label through the outcomes endpoint.
func send(ctx context.Context, c *client, model string, w *world, rate int, st *trafficStats) {
	const ticksPerSecond = 5
	batch := max(1, rate/ticksPerSecond)
	tk := time.NewTicker(time.Second / ticksPerSecond)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		rows := make([]map[string]any, batch)
		labels := make([]string, batch)
		for i := range rows {
			rows[i], labels[i] = w.row()
		}
		preds, err := c.predict(ctx, model, rows)
		if err != nil {
			st.failed.Add(1)
			msg := err.Error()
			st.lastErr.Store(&msg)
			continue
		}
		st.predicted.Add(int64(len(preds)))
		for i, p := range preds {
			v := p.ModelVersion
			st.version.Store(&v)
			if err := c.outcome(ctx, model, p.PredictionID, labels[i]); err != nil {
				st.failed.Add(1)
				msg := err.Error()
				st.lastErr.Store(&msg)
				continue
			}
			st.labelled.Add(1)
		}
	}
}

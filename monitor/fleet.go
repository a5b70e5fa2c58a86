package monitor

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// DefaultLease is how long a monitor instance may go without a heartbeat
// before the others take its models over (the trainer's lease too).
const DefaultLease = time.Minute

// claimSettle is how long an instance waits between writing its claims
// and reading them back: a claim written at the same time by another
// instance, whose check also found the model free, is visible by then, and
// of the two the earlier holds the model.
const claimSettle = 500 * time.Millisecond

// defaultInstanceID is the host name and the pid.
func defaultInstanceID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return host + "-" + strconv.Itoa(os.Getpid())
}

// rendezvous returns the instance of live model is assigned to: the one
// with the highest hash of (instance, model), so that an instance joining
// or leaving moves only the models it gains or had (highest random weight
// hashing). live must not be empty.
func rendezvous(model string, live []string) string {
	var best string
	var bestScore uint64
	for i, inst := range live {
		h := sha256.Sum256([]byte(inst + "\x00" + model))
		score := binary.BigEndian.Uint64(h[:8])
		if i == 0 || score > bestScore || (score == bestScore && inst < best) {
			best, bestScore = inst, score
		}
	}
	return best
}

// tenure is a row of monitor_leases: owner's hold (or claim) of model
// since claimedAt, renewed age ago.
type tenure struct {
	model, owner string
	claimedAt    time.Time
	released     bool
	age          time.Duration
}

// holder returns the tenure that holds a model among ts: of the live ones
// (not released, renewed within lease) the earliest claimed, then the
// smallest owner; false when none is live.
func holder(ts []tenure, lease time.Duration) (tenure, bool) {
	var h tenure
	ok := false
	for _, t := range ts {
		if t.released || t.age >= lease {
			continue
		}
		if !ok || t.claimedAt.Before(h.claimedAt) || (t.claimedAt.Equal(h.claimedAt) && t.owner < h.owner) {
			h, ok = t, true
		}
	}
	return h, ok
}

// fleet shares the models with the other monitor instances on the same
// ClickHouse (docs/monitor.md "Many monitors"). Each instance announces
// itself in monitor_instances; the live instances assign every model to
// one of them by rendezvous hashing; and the instance a model hashes to
// evaluates it only once it holds the model's lease in monitor_leases,
// which its previous holder releases when the model hashes elsewhere, or
// which lapses when its holder dies. The lease, not the hashing, is what
// keeps two instances from evaluating one model: while their views of the
// live instances differ, both may want a model, but only one holds it.
type fleet struct {
	self  string
	lease time.Duration
	store *Store
	log   *slog.Logger

	owned, live prometheus.Gauge
	takeovers   prometheus.Counter

	mu sync.Mutex
	// held is this instance's tenures: model → claimed_at.
	held map[string]time.Time
	// renewed is when the last successful heartbeat began (local clock):
	// while it is younger than the lapse margin, the lease has not lapsed
	// by ClickHouse's clock either.
	renewed time.Time
}

func newFleet(self string, lease time.Duration, store *Store, log *slog.Logger, reg prometheus.Registerer) *fleet {
	f := promauto.With(reg)
	return &fleet{self: self, lease: lease, store: store, log: log, held: map[string]time.Time{},
		owned: f.NewGauge(prometheus.GaugeOpts{Name: "driftwatch_monitor_models_owned", Help: "Models this monitor instance holds the lease of and evaluates."}),
		live:  f.NewGauge(prometheus.GaugeOpts{Name: "driftwatch_monitor_instances_live", Help: "Monitor instances sharing the models, as this instance last saw them (itself included)."}),
		takeovers: f.NewCounter(prometheus.CounterOpts{Name: "driftwatch_monitor_lease_takeovers_total",
			Help: "Models this instance took over from another instance whose lease had lapsed (it died or lost ClickHouse) rather than released."}),
	}
}

// heldCopy returns a copy of the tenures, or none when the last heartbeat
// is so old that they may have lapsed (then they are dropped: the models
// are claimed again through assign, after anyone who took them over).
func (f *fleet) heldCopy(now time.Time) map[string]time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.held) > 0 && now.Sub(f.renewed) >= f.lease*3/4 {
		f.log.Warn("model leases dropped: no heartbeat reached ClickHouse for three quarters of the lease", "models", len(f.held), "lease", f.lease)
		clear(f.held)
		f.owned.Set(0)
	}
	return maps.Clone(f.held)
}

// history is how far back tenures are read: far enough to see whom a
// model is taken over from, not so far that every instance that ever ran
// is read each round.
func (f *fleet) history() time.Duration { return max(10*f.lease, time.Hour) }

// holds reports whether this instance still holds model.
func (f *fleet) holds(model string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.held[model]
	return ok
}

// heartbeat renews the instance and its tenures, under an eighth of the
// lease (so that a renewal begun within three quarters of it lands within
// the lease).
func (f *fleet) heartbeat(ctx context.Context) error {
	began := time.Now()
	held := f.heldCopy(began)
	ctx, cancel := context.WithTimeout(ctx, f.lease/8)
	defer cancel()
	if err := f.store.Heartbeat(ctx, f.self, false, held); err != nil {
		return err
	}
	f.mu.Lock()
	f.renewed = began
	f.mu.Unlock()
	return nil
}

// run sends heartbeats every quarter of the lease until ctx ends, then
// releases every model and says the instance stopped, so that the others
// take its models over at once.
func (f *fleet) run(ctx context.Context) {
	tick := time.NewTicker(f.lease / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			f.stop()
			return
		case <-tick.C:
			if err := f.heartbeat(ctx); err != nil && ctx.Err() == nil {
				f.log.Warn("monitor heartbeat", "instance", f.self, "err", err)
			}
		}
	}
}

// stop releases the models and records the instance as stopped.
func (f *fleet) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	f.mu.Lock()
	held := maps.Clone(f.held)
	clear(f.held)
	f.owned.Set(0)
	f.mu.Unlock()
	err := f.store.Release(ctx, f.self, held)
	if err == nil {
		err = f.store.Heartbeat(ctx, f.self, true, nil)
	}
	if err != nil {
		f.log.Warn("release the model leases on the way out; the others take them over when the lease lapses", "instance", f.self, "models", len(held), "err", err)
	}
}

// assign returns the models of this round this instance evaluates: those
// it holds, after releasing those that hash to another live instance and
// claiming those that hash to it and nobody holds.
func (f *fleet) assign(ctx context.Context, models []string) ([]string, error) {
	if err := f.heartbeat(ctx); err != nil {
		return nil, err
	}
	live, err := f.store.LiveInstances(ctx, f.lease)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(live, f.self) {
		live = append(live, f.self)
	}
	f.live.Set(float64(len(live)))
	ts, err := f.store.Tenures(ctx, models, f.history())
	if err != nil {
		return nil, err
	}
	held := f.heldCopy(time.Now())
	var mine, claims []string
	release := map[string]time.Time{}
	for _, model := range models {
		at, isHeld := held[model]
		if rendezvous(model, live) != f.self {
			if isHeld {
				release[model] = at
			}
			continue
		}
		h, ok := holder(ts[model], f.lease)
		switch {
		case ok && h.owner == f.self:
			// Ours, or an earlier process's under the same instance_id
			// (restarted): go on with it.
			held[model] = h.claimedAt
			mine = append(mine, model)
		case ok:
			// Another instance holds it: it releases the model once it
			// sees that the model hashes here, or its lease lapses.
		default:
			claims = append(claims, model)
		}
	}
	// Releases first: a model released here is claimed by its new
	// instance in that instance's next round.
	if err := f.store.Release(ctx, f.self, release); err != nil {
		return nil, err
	}
	for model := range release {
		delete(held, model)
	}
	if len(release) > 0 {
		f.log.Info("models handed over to the instances they hash to", "instance", f.self, "models", len(release), "live_instances", len(live))
	}
	if len(claims) > 0 {
		won, lost, err := f.claim(ctx, claims, ts)
		if err != nil {
			return nil, err
		}
		for model, at := range won {
			held[model] = at
			mine = append(mine, model)
		}
		if err := f.store.Release(ctx, f.self, lost); err != nil {
			return nil, err
		}
	}
	slices.Sort(mine)
	f.mu.Lock()
	clear(f.held)
	for _, model := range mine {
		f.held[model] = held[model]
	}
	f.owned.Set(float64(len(f.held)))
	f.mu.Unlock()
	return mine, nil
}

// claim claims models, waits claimSettle and reads them back: won holds
// those whose earliest live tenure is now this instance's (model →
// claimed_at), lost this instance's claims that came second.
func (f *fleet) claim(ctx context.Context, models []string, before map[string][]tenure) (won, lost map[string]time.Time, err error) {
	if err := f.store.Claim(ctx, f.self, models); err != nil {
		return nil, nil, err
	}
	select {
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	case <-time.After(claimSettle):
	}
	ts, err := f.store.Tenures(ctx, models, f.history())
	if err != nil {
		return nil, nil, err
	}
	won, lost = map[string]time.Time{}, map[string]time.Time{}
	for _, model := range models {
		h, ok := holder(ts[model], f.lease)
		if ok && h.owner == f.self {
			won[model] = h.claimedAt
			if prev := takenFrom(before[model], f.self); prev != "" {
				f.takeovers.Inc()
				f.log.Info("model taken over: its lease lapsed", "model", model, "from", prev, "instance", f.self)
			}
			continue
		}
		for _, t := range ts[model] {
			if t.owner == f.self && !t.released {
				lost[model] = t.claimedAt
			}
		}
	}
	return won, lost, nil
}

// takenFrom returns the instance whose lapsed tenure (not released) was the
// newest of ts besides self's: the one a claim takes the model over from;
// "" when the model was released or never held.
func takenFrom(ts []tenure, self string) string {
	var prev tenure
	for _, t := range ts {
		if t.owner != self && (prev.owner == "" || t.claimedAt.After(prev.claimedAt)) {
			prev = t
		}
	}
	if prev.owner == "" || prev.released {
		return ""
	}
	return prev.owner
}

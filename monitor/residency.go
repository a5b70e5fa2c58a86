package monitor

// residency decides whose entry a per-model cache drops when it is over
// its budget. The monitor evaluates every model at every step, in turn:
// under least-recently-used eviction a fleet needing a little more than
// the budget would miss on every evaluation, each model's entry evicted
// just before its turn. Instead, the entries of models evaluated within
// about the last two passes over the fleet stay, and the entry that does
// not fit is the newest one (the model just evaluated); only the entries
// of models no longer evaluated here — gone from the fleet, or moved to
// another monitor instance — are evicted to make room, least recently used
// first. A fleet larger than the budget then keeps a fixed part of it
// cached, and the rest is read every step as without a cache.
type residency struct {
	tick uint64
	seen map[string]uint64 // model → tick of its latest evaluation
}

func newResidency() *residency { return &residency{seen: map[string]uint64{}} }

// touch records an evaluation of model.
func (r *residency) touch(model string) {
	r.tick++
	r.seen[model] = r.tick
	if r.tick%64 == 0 {
		for m := range r.seen {
			if !r.active(m) {
				delete(r.seen, m)
			}
		}
	}
}

// active reports whether model was evaluated within the last two passes
// over the models seen (and a margin for evaluations in parallel).
func (r *residency) active(model string) bool {
	t, ok := r.seen[model]
	return ok && r.tick-t <= 2*uint64(len(r.seen))+16
}

package monitor

import (
	"container/list"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftwatch/driftwatch/monitor/window"
)

// refCache keeps each model's reference-window aggregates between
// evaluations, within a byte budget: over it, the references of models no
// longer evaluated are dropped first, then the one just computed (see
// residency). A model's reference is fixed (its first day, or a
// configured period) while the current window slides every step, so
// without the cache every evaluation would read the reference again —
// 24 times the current window's rows with the defaults.
type refCache struct {
	mu      sync.Mutex
	budget  int64
	used    int64
	lru     *list.List // of *refEntry, most recent first
	byModel map[string]*list.Element
	lookups *prometheus.CounterVec
	res     *residency
}

type refEntry struct {
	model string
	ref   *window.Reference
}

func newRefCache(budget int64, lookups *prometheus.CounterVec) *refCache {
	return &refCache{budget: budget, lru: list.New(), byModel: map[string]*list.Element{}, lookups: lookups, res: newResidency()}
}

// get returns model's cached reference, or nil. Whether it still holds is
// window.ComputeCached's decision.
func (c *refCache) get(model string) *window.Reference {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.res.touch(model)
	if e, ok := c.byModel[model]; ok {
		c.lru.MoveToFront(e)
		return e.Value.(*refEntry).ref
	}
	return nil
}

// put stores ref as model's reference (nil forgets it), counts a hit when
// ref is the one get returned, and evicts down to the budget.
func (c *refCache) put(model string, ref *window.Reference) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byModel[model]
	if ok && ref != nil && e.Value.(*refEntry).ref == ref {
		c.lookups.WithLabelValues("hit").Inc()
		return
	}
	if ref != nil {
		c.lookups.WithLabelValues("miss").Inc()
	}
	if ok {
		c.used -= e.Value.(*refEntry).ref.Bytes()
		c.lru.Remove(e)
		delete(c.byModel, model)
	}
	if ref == nil || c.budget <= 0 || ref.Bytes() > c.budget {
		return
	}
	e = c.lru.PushFront(&refEntry{model: model, ref: ref})
	c.byModel[model] = e
	c.used += ref.Bytes()
	for c.used > c.budget {
		victim := e
		for o := c.lru.Back(); o != nil; o = o.Prev() {
			if m := o.Value.(*refEntry).model; m != model && !c.res.active(m) {
				victim = o
				break
			}
		}
		ve := victim.Value.(*refEntry)
		c.used -= ve.ref.Bytes()
		c.lru.Remove(victim)
		delete(c.byModel, ve.model)
		if victim == e {
			return
		}
	}
}

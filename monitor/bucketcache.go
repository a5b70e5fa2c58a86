package monitor

import (
	"container/list"
	"sync"

	"github.com/driftwatch/driftwatch/monitor/window"
)

// bucketCaches keeps each model's window.BucketCache (incremental
// windows' partials in memory) within a byte budget, window_cache_mb:
// over it, the caches of models no longer evaluated are dropped first,
// then the one just evaluated (see residency). A model whose own cache
// was dropped for not fitting is spilled: it gets no cache (get returns
// nil, and its windows are merged in ClickHouse, the same snapshot) until
// the budget has room for the size it needed. Without that, a spilled
// model got an empty cache at every step and read its whole window's
// partials into it, only to drop them again: a fleet a little over the
// budget cost twice as much as with no cache at all. A cache's size is
// known only after an evaluation, so the budget is enforced then
// (account).
type bucketCaches struct {
	mu      sync.Mutex
	budget  int64
	used    int64
	lru     *list.List // of *bucketEntry, most recent first
	byModel map[string]*list.Element
	res     *residency
	size    func(*window.BucketCache) int64 // (*window.BucketCache).Bytes; tests set it
	// spilled is the bytes each spilled model's cache took when it was
	// dropped.
	spilled map[string]int64
	// writeEvery is each cache's WriteEvery.
	writeEvery int
}

type bucketEntry struct {
	model string
	cache *window.BucketCache
	bytes int64
}

func newBucketCaches(budget int64, writeEvery int) *bucketCaches {
	return &bucketCaches{budget: budget, lru: list.New(), byModel: map[string]*list.Element{}, res: newResidency(), size: (*window.BucketCache).Bytes,
		spilled: map[string]int64{}, writeEvery: writeEvery}
}

// maxSpilled is how many spilled models are remembered before those no
// longer evaluated are forgotten.
const maxSpilled = 4096

// get returns model's cache, a new one when it has none; nil without a
// budget, and for a spilled model while its cache would not fit.
func (c *bucketCaches) get(model string) *window.BucketCache {
	if c == nil || c.budget <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.res.touch(model)
	if e, ok := c.byModel[model]; ok {
		c.lru.MoveToFront(e)
		return e.Value.(*bucketEntry).cache
	}
	if need, ok := c.spilled[model]; ok {
		// Room the caches of models no longer evaluated held counts.
		for o := c.lru.Back(); o != nil && c.used+need > c.budget; {
			prev := o.Prev()
			if ve := o.Value.(*bucketEntry); !c.res.active(ve.model) {
				c.used -= ve.bytes
				c.lru.Remove(o)
				delete(c.byModel, ve.model)
			}
			o = prev
		}
		if c.used+need > c.budget {
			return nil
		}
		delete(c.spilled, model)
	}
	bc := window.NewBucketCache()
	if c.writeEvery > 0 {
		bc.WriteEvery(c.writeEvery)
	}
	c.byModel[model] = c.lru.PushFront(&bucketEntry{model: model, cache: bc})
	return bc
}

// account records the size of model's cache after an evaluation and
// drops caches down to the budget: those of models no longer evaluated,
// least recently used first, then model's own (see residency). It returns
// the caches dropped, whose unwritten partials the caller writes
// (window.BucketCache.Flush).
func (c *bucketCaches) account(model string) (dropped []*window.BucketCache) {
	if c == nil || c.budget <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byModel[model]
	if !ok {
		return nil
	}
	be := e.Value.(*bucketEntry)
	n := c.size(be.cache)
	c.used += n - be.bytes
	be.bytes = n
	for c.used > c.budget {
		victim := e
		for o := c.lru.Back(); o != nil; o = o.Prev() {
			if m := o.Value.(*bucketEntry).model; m != model && !c.res.active(m) {
				victim = o
				break
			}
		}
		ve := victim.Value.(*bucketEntry)
		c.used -= ve.bytes
		c.lru.Remove(victim)
		delete(c.byModel, ve.model)
		dropped = append(dropped, ve.cache)
		if victim == e {
			if len(c.spilled) >= maxSpilled {
				// Forget the models no longer evaluated (a fleet that
				// changes its models over time).
				for m := range c.spilled {
					if !c.res.active(m) {
						delete(c.spilled, m)
					}
				}
			}
			c.spilled[model] = be.bytes
			return dropped
		}
	}
	return dropped
}

// all is every cache held.
func (c *bucketCaches) all() []*window.BucketCache {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*window.BucketCache, 0, c.lru.Len())
	for e := c.lru.Front(); e != nil; e = e.Next() {
		out = append(out, e.Value.(*bucketEntry).cache)
	}
	return out
}

// bytes is the memory the caches hold.
func (c *bucketCaches) bytes() int64 {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used
}

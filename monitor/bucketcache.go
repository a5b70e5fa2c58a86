package monitor

import (
	"container/list"
	"sync"

	"github.com/driftwatch/driftwatch/monitor/window"
)

// bucketCaches keeps each model's window.BucketCache (incremental
// windows' partials in memory) within a byte budget, window_cache_mb:
// over it, the caches of models no longer evaluated are dropped first,
// then the one just evaluated (see residency); those models' windows are
// then merged in ClickHouse (the same snapshot, slower). A cache's size is
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
}

type bucketEntry struct {
	model string
	cache *window.BucketCache
	bytes int64
}

func newBucketCaches(budget int64) *bucketCaches {
	return &bucketCaches{budget: budget, lru: list.New(), byModel: map[string]*list.Element{}, res: newResidency(), size: (*window.BucketCache).Bytes}
}

// get returns model's cache, a new one when it has none; nil without a
// budget.
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
	bc := window.NewBucketCache()
	c.byModel[model] = c.lru.PushFront(&bucketEntry{model: model, cache: bc})
	return bc
}

// account records the size of model's cache after an evaluation and
// drops caches down to the budget: those of models no longer evaluated,
// least recently used first, then model's own (see residency).
func (c *bucketCaches) account(model string) {
	if c == nil || c.budget <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byModel[model]
	if !ok {
		return
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
		if victim == e {
			return
		}
	}
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

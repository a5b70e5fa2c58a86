package monitor

import (
	"container/list"
	"sync"

	"github.com/driftwatch/driftwatch/monitor/window"
)

// bucketCaches keeps each model's window.BucketCache (incremental
// windows' partials in memory) within a byte budget, window_cache_mb: the
// least recently evaluated models' caches are dropped first, and those
// models' windows are then merged in ClickHouse (the same snapshot,
// slower). A cache's size is known only after an evaluation, so the
// budget is enforced then (account).
type bucketCaches struct {
	mu      sync.Mutex
	budget  int64
	used    int64
	lru     *list.List // of *bucketEntry, most recent first
	byModel map[string]*list.Element
}

type bucketEntry struct {
	model string
	cache *window.BucketCache
	bytes int64
}

func newBucketCaches(budget int64) *bucketCaches {
	return &bucketCaches{budget: budget, lru: list.New(), byModel: map[string]*list.Element{}}
}

// get returns model's cache, a new one when it has none; nil without a
// budget.
func (c *bucketCaches) get(model string) *window.BucketCache {
	if c == nil || c.budget <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byModel[model]; ok {
		c.lru.MoveToFront(e)
		return e.Value.(*bucketEntry).cache
	}
	bc := window.NewBucketCache()
	c.byModel[model] = c.lru.PushFront(&bucketEntry{model: model, cache: bc})
	return bc
}

// account records the size of model's cache after an evaluation and
// drops caches, least recently used first, down to the budget (model's
// own too when it alone is over it).
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
	n := be.cache.Bytes()
	c.used += n - be.bytes
	be.bytes = n
	for c.used > c.budget && c.lru.Len() > 0 {
		last := c.lru.Back()
		le := last.Value.(*bucketEntry)
		c.used -= le.bytes
		c.lru.Remove(last)
		delete(c.byModel, le.model)
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

package monitor

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/driftwatch/driftwatch/monitor/window"
)

func TestRefCacheLRUWithinBudget(t *testing.T) {
	lookups := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x"}, []string{"result"})
	ref := func(bytes int) *window.Reference { return window.NewTestReference(int64(bytes)) }
	c := newRefCache(1000, lookups)
	a, b, d := ref(400), ref(400), ref(400)
	c.put("a", a)
	c.put("b", b)
	if c.get("a") != a || c.get("b") != b {
		t.Fatal("a and b should both fit")
	}
	c.get("d")
	c.put("d", d) // over budget, a and b evaluated lately: d, the newest, is not kept
	if c.get("b") != b || c.get("a") != a || c.get("d") != nil {
		t.Errorf("after d: a %v b %v d %v", c.get("a") != nil, c.get("b") != nil, c.get("d") != nil)
	}
	c.put("d", d) // again: not kept, a second miss
	c.put("a", a) // the same reference back: a hit
	c.put("a", nil)
	if c.get("a") != nil {
		t.Error("put(nil) should forget a")
	}
	c.put("huge", ref(5000)) // over the whole budget: not kept
	if c.get("huge") != nil || c.used != 400 {
		t.Errorf("huge kept %v, used %d", c.get("huge") != nil, c.used)
	}
	if hit, miss := testutil.ToFloat64(lookups.WithLabelValues("hit")), testutil.ToFloat64(lookups.WithLabelValues("miss")); hit != 1 || miss != 5 {
		t.Errorf("hits %v misses %v, want 1 and 5", hit, miss)
	}
	none := newRefCache(-1, lookups)
	none.put("a", a)
	if none.get("a") != nil {
		t.Error("a negative budget keeps nothing")
	}
}

// A fleet evaluated in turn that needs more than the budget keeps part of
// it cached (least-recently-used eviction would miss every time), and the
// models no longer evaluated make room for those that are.
func TestCachesKeepPartOfAFleetOverBudget(t *testing.T) {
	lookups := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x"}, []string{"result"})
	refs := newRefCache(1000, lookups)
	parts := newBucketCaches(1000, 0)
	parts.size = func(*window.BucketCache) int64 { return 300 }
	var spilled int // evaluations that got no partials cache
	pass := func(models []string) (refHits, partHits int) {
		for _, m := range models {
			if r := refs.get(m); r != nil {
				refHits++
			} else {
				refs.put(m, window.NewTestReference(300))
			}
			before := len(parts.byModel)
			_, had := parts.byModel[m]
			if parts.get(m) == nil {
				spilled++
			}
			parts.account(m)
			if had {
				partHits++
			} else if len(parts.byModel) < before {
				t.Errorf("%s: a new cache evicted another", m)
			}
		}
		return
	}
	fleet := []string{"a", "b", "c", "d", "e"}
	pass(fleet)
	if spilled != 0 {
		t.Errorf("the first pass: %d models got no cache, want 0 (their sizes are not known yet)", spilled)
	}
	for i := range 3 {
		spilled = 0
		if r, p := pass(fleet); r != 3 || p != 3 {
			t.Errorf("pass %d over 5 models: %d reference and %d partials hits, want 3 each (3 of 300 fit in 1000)", i+2, r, p)
		}
		// The two that do not fit get no cache (their windows merged in
		// ClickHouse), instead of an empty one filled and dropped again.
		if spilled != 2 {
			t.Errorf("pass %d over 5 models: %d got no partials cache, want 2", i+2, spilled)
		}
	}
	// The fleet shrinks to the two spilled models and one cached: once
	// the others are no longer evaluated (residency: two passes and a
	// margin of 16 evaluations) their caches are not held against the
	// spilled ones, and all three are cached.
	shrunk := []string{"a", "d", "e"}
	var p int
	for range 15 {
		_, p = pass(shrunk)
	}
	if p != 3 {
		t.Errorf("after the fleet shrank to 3: %d partials hits per pass, want 3", p)
	}
	if refs.used > 1000 || parts.used > 1000 {
		t.Errorf("over budget: references %d, partials %d bytes", refs.used, parts.used)
	}
	// The fleet moves to other models: within a few passes they are the
	// ones cached.
	moved := []string{"f", "g", "h"}
	var r int
	for range 30 {
		r, p = pass(moved)
	}
	if r != 3 || p != 3 {
		t.Errorf("after the fleet moved: %d reference and %d partials hits per pass, want 3 each", r, p)
	}
}

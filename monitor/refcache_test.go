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
	c.get("a")    // a is now the most recently used
	c.put("d", d) // over budget: b, the least recently used, goes
	if c.get("b") != nil || c.get("a") != a || c.get("d") != d {
		t.Errorf("after d: a %v b %v d %v", c.get("a") != nil, c.get("b") != nil, c.get("d") != nil)
	}
	c.put("a", a) // the same reference back: a hit
	c.put("a", nil)
	if c.get("a") != nil {
		t.Error("put(nil) should forget a")
	}
	c.put("huge", ref(5000)) // over the whole budget: not kept
	if c.get("huge") != nil || c.used != 400 {
		t.Errorf("huge kept %v, used %d", c.get("huge") != nil, c.used)
	}
	if hit, miss := testutil.ToFloat64(lookups.WithLabelValues("hit")), testutil.ToFloat64(lookups.WithLabelValues("miss")); hit != 1 || miss != 4 {
		t.Errorf("hits %v misses %v, want 1 and 4", hit, miss)
	}
	none := newRefCache(-1, lookups)
	none.put("a", a)
	if none.get("a") != nil {
		t.Error("a negative budget keeps nothing")
	}
}

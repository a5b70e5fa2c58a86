package monitor

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/internal/kafkaio"
)

// TestGateIsAtomicPerModel: 50 manual triggers for one model at once, each
// with its own idempotency key, publish exactly daily_max (3) of them — to
// Kafka and to retrain_triggers — and refuse the rest as daily_max. Before
// the gate locked per model, the 50 read the same history and 49 passed.
func TestGateIsAtomicPerModel(t *testing.T) {
	w := newWorld(t)
	w.start = time.Now().UTC().Truncate(24 * time.Hour).Add(-30 * time.Hour)
	tw, err := kafkaio.NewWriter(w.kopts, "retrain-triggers")
	if err != nil {
		t.Fatal(err)
	}
	defer tw.Close()
	m := w.monitor(t, tw)
	daily := m.gate.cfg.DailyMax
	if daily != 3 {
		t.Fatalf("daily_max is %d, want the default 3", daily)
	}
	const n = 50
	var wg sync.WaitGroup
	outcomes := make([]Outcome, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			d, err := m.Manual(context.Background(), "model-0", "v1", fmt.Sprintf("ticket-%d", i), "")
			outcomes[i], errs[i] = d.Outcome, err
		}()
	}
	close(start)
	wg.Wait()
	count := map[Outcome]int{}
	for i := range n {
		if errs[i] != nil {
			t.Errorf("trigger %d: %v", i, errs[i])
		}
		count[outcomes[i]]++
	}
	if count[OutcomePublished] != daily || count[OutcomeDailyMax] != n-daily {
		t.Errorf("outcomes %v; want %d published and %d daily_max", count, daily, n-daily)
	}
	if k, tbl := w.triggersSent(t), w.count(t, "SELECT count() FROM retrain_triggers"); k != daily || tbl != uint64(daily) {
		t.Errorf("Kafka holds %d triggers and retrain_triggers %d rows; want %d each", k, tbl, daily)
	}
	// The locks are released: nothing is left behind in the gate.
	m.gate.mu.Lock()
	left := len(m.gate.locks)
	m.gate.mu.Unlock()
	if left != 0 {
		t.Errorf("%d model locks left in the gate after every decision", left)
	}
}

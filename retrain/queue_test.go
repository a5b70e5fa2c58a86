package retrain

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/schemas"
)

func TestQueueOrderAndOneRunPerModel(t *testing.T) {
	q := newQueue(100, 1<<20)
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	push := func(model, id string, reason schemas.TriggerReason, age time.Duration) bool {
		return q.push(&item{trig: schemas.RetrainTrigger{TriggerID: id, ModelID: model, Reason: reason, DedupKey: id, CreatedAt: t0.Add(-age)}}) == pushed
	}
	push("a", "a-drift", schemas.TriggerFeatureDrift, time.Hour)
	push("a", "a-manual", schemas.TriggerManual, 0)
	push("b", "b-drift-old", schemas.TriggerFeatureDrift, 2*time.Hour)
	push("c", "c-drift-new", schemas.TriggerFeatureDrift, 0)
	if push("a", "a-manual", schemas.TriggerManual, 0) {
		t.Error("a queued trigger was queued again")
	}
	first := q.pop()  // manual first
	second := q.pop() // a is busy: the oldest drift of another model
	third := q.pop()
	got := first.trig.TriggerID + "," + second.trig.TriggerID + "," + third.trig.TriggerID
	if got != "a-manual,b-drift-old,c-drift-new" {
		t.Errorf("order %s", got)
	}
	q.done(first)
	if it := q.pop(); it.trig.TriggerID != "a-drift" {
		t.Errorf("after a's run: %s", it.trig.TriggerID)
	}
}

func queued(model, id string, valueBytes int) *item {
	return &item{trig: schemas.RetrainTrigger{TriggerID: id, ModelID: model, Reason: schemas.TriggerFeatureDrift, DedupKey: id},
		msg: kafka.Message{Value: []byte(strings.Repeat("x", valueBytes))}}
}

// TestQueueBounded: push waits while the queue holds maxItems triggers or
// maxBytes of them, and goes on when a pop makes room; closing the queue
// releases a waiting push. An empty queue takes a trigger of any size.
func TestQueueBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(2, 1<<20)
		q.push(queued("a", "a1", 10))
		q.push(queued("b", "b1", 10))
		res := make(chan pushResult, 1)
		go func() { res <- q.push(queued("c", "c1", 10)) }()
		synctest.Wait()
		select {
		case r := <-res:
			t.Fatalf("push into a full queue (2 of 2) returned %v", r)
		default:
		}
		if it := q.pop(); it.trig.TriggerID != "a1" {
			t.Fatalf("popped %s", it.trig.TriggerID)
		}
		if r := <-res; r != pushed || q.len() != 2 {
			t.Fatalf("push after a pop: %v, %d queued", r, q.len())
		}

		// Bytes: 2×600 KB of messages (item.size doubles them) do not fit 2 MiB
		// next to another 600 KB.
		q = newQueue(100, 2<<20)
		if r := q.push(queued("a", "big", 3<<20)); r != pushed {
			t.Fatalf("an empty queue refused a trigger larger than its bound: %v", r)
		}
		q.pop()
		q.push(queued("a", "a1", 600<<10))
		go func() { res <- q.push(queued("b", "b1", 600<<10)) }()
		synctest.Wait()
		select {
		case r := <-res:
			t.Fatalf("push over max bytes returned %v", r)
		default:
		}
		q.close()
		if r := <-res; r != closed {
			t.Fatalf("push released by close: %v, want closed", r)
		}
	})
}

// TestQueueRetryDoesNotBlock: a trigger put back after a transient error
// waits out its backoff without a worker; another model's trigger is
// handed out meanwhile, the same model's waits (one run per model, in
// order), and the retried one runs once it is due.
func TestQueueRetryDoesNotBlock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(100, 1<<20)
		q.push(queued("a", "first", 10))
		q.push(queued("a", "a-second", 10))
		q.push(queued("b", "b-first", 10))
		it := q.pop()
		if it.trig.TriggerID != "first" {
			t.Fatalf("popped %s", it.trig.TriggerID)
		}
		start := time.Now()
		q.retry(it, start.Add(10*time.Second))
		if r := q.push(queued("a", "first", 10)); r != duplicate {
			t.Errorf("a redelivery of the retried trigger: %v, want duplicate", r)
		}
		next := q.pop()
		if next.trig.TriggerID != "b-first" || time.Since(start) != 0 {
			t.Fatalf("while first backs off: %s after %v, want b-first at once", next.trig.TriggerID, time.Since(start))
		}
		q.done(next)
		again := q.pop() // waits for the backoff (the bubble's clock)
		if again.trig.TriggerID != "first" || time.Since(start) != 10*time.Second {
			t.Errorf("popped %s after %v, want first after its 10s backoff (before a-second)", again.trig.TriggerID, time.Since(start))
		}
		q.done(again)
		if it := q.pop(); it.trig.TriggerID != "a-second" {
			t.Errorf("then %s, want a-second", it.trig.TriggerID)
		}
	})
}

func TestOffsetsCommitContiguousPrefix(t *testing.T) {
	o := newOffsets()
	msg := func(off int64) kafka.Message { return kafka.Message{Topic: "t", Partition: 0, Offset: off} }
	for _, off := range []int64{0, 1, 2} {
		o.add(msg(off))
	}
	if _, ok := o.finish(msg(1)); ok {
		t.Error("finishing 1 before 0 committed something")
	}
	if c, ok := o.finish(msg(0)); !ok || c.Offset != 1 {
		t.Errorf("after 0 and 1: %v %v, want commit of 1", c.Offset, ok)
	}
	if c, ok := o.finish(msg(2)); !ok || c.Offset != 2 {
		t.Errorf("after 2: %v %v", c.Offset, ok)
	}

	// Offset 3 delivered again (a rebalance) while its first delivery
	// runs: finishing the duplicate commits nothing past 2.
	o.add(msg(3))
	o.add(msg(3))
	if c, ok := o.finish(msg(3)); ok && c.Offset > 2 {
		t.Errorf("finishing the duplicate of a running offset committed %d", c.Offset)
	}
	if c, ok := o.finish(msg(3)); !ok || c.Offset != 3 {
		t.Errorf("after the run of 3: %v %v, want commit of 3", c.Offset, ok)
	}
}

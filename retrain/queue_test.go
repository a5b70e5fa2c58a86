package retrain

import (
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/schemas"
)

func TestQueueOrderAndOneRunPerModel(t *testing.T) {
	q := newQueue()
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	push := func(model, id string, reason schemas.TriggerReason, age time.Duration) bool {
		return q.push(&item{trig: schemas.RetrainTrigger{TriggerID: id, ModelID: model, Reason: reason, DedupKey: id, CreatedAt: t0.Add(-age)}})
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

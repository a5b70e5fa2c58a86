package retrain

import (
	"container/heap"
	"sync"

	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/schemas"
)

// item is one queued trigger with the message that carried it.
type item struct {
	trig schemas.RetrainTrigger
	msg  kafka.Message
	seq  uint64
}

func (a *item) before(b *item) bool {
	pa, pb := prio(a.trig.Reason), prio(b.trig.Reason)
	if pa != pb {
		return pa < pb
	}
	if !a.trig.CreatedAt.Equal(b.trig.CreatedAt) {
		return a.trig.CreatedAt.Before(b.trig.CreatedAt)
	}
	return a.seq < b.seq
}

func prio(r schemas.TriggerReason) int {
	if p, ok := priority[string(r)]; ok {
		return p
	}
	return len(priority)
}

type itemHeap []*item

func (h itemHeap) Len() int           { return len(h) }
func (h itemHeap) Less(i, j int) bool { return h[i].before(h[j]) }
func (h itemHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *itemHeap) Push(x any)        { *h = append(*h, x.(*item)) }
func (h *itemHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// queue holds triggers ordered by priority (reason) and age, and hands
// out at most one per model at a time. A trigger whose trigger_id or
// (model, dedup_key) is already queued or running is refused, so
// redeliveries never wait for a run that would be skipped anyway.
type queue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	items  itemHeap
	busy   map[string]bool // model → a run is in progress
	keys   map[string]int  // trigger_id and model/dedup_key → queued or running
	seq    uint64
	closed bool
}

func newQueue() *queue {
	q := &queue{busy: map[string]bool{}, keys: map[string]int{}}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func itemKeys(t *schemas.RetrainTrigger) [2]string {
	return [2]string{"id\x00" + t.TriggerID, "dedup\x00" + t.ModelID + "\x00" + t.DedupKey}
}

// push queues it; false when the same trigger is already queued or running.
func (q *queue) push(it *item) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	ks := itemKeys(&it.trig)
	if q.keys[ks[0]] > 0 || q.keys[ks[1]] > 0 {
		return false
	}
	for _, k := range ks {
		q.keys[k]++
	}
	q.seq++
	it.seq = q.seq
	heap.Push(&q.items, it)
	q.cond.Broadcast()
	return true
}

// pop blocks until a trigger of an idle model is queued, marks the model
// busy and returns it; nil once closed.
func (q *queue) pop() *item {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		if q.closed {
			return nil
		}
		// The heap's order is kept by scanning for the best item of an
		// idle model; queues are short (one entry per pending trigger).
		best := -1
		for i, it := range q.items {
			if !q.busy[it.trig.ModelID] && (best < 0 || it.before(q.items[best])) {
				best = i
			}
		}
		if best >= 0 {
			it := heap.Remove(&q.items, best).(*item)
			q.busy[it.trig.ModelID] = true
			return it
		}
		q.cond.Wait()
	}
}

// done releases the model and the trigger's keys.
func (q *queue) done(it *item) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.busy, it.trig.ModelID)
	for _, k := range itemKeys(&it.trig) {
		if q.keys[k]--; q.keys[k] <= 0 {
			delete(q.keys, k)
		}
	}
	q.cond.Broadcast()
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}

// offsets tracks, per partition, the offsets fetched but not yet finished,
// and says which offset may be committed: everything below the smallest
// unfinished one. Triggers finish out of order (priority queue, several
// models), and committing a later offset would also commit the earlier,
// unfinished ones.
type offsets struct {
	mu sync.Mutex
	// pending counts the deliveries of each offset not finished yet: after
	// a rebalance the same offset can arrive again while its first
	// delivery still runs, and finishing the duplicate must not let the
	// commit pass the run.
	pending map[int]map[int64]int
	maxDone map[int]int64
}

func newOffsets() *offsets {
	return &offsets{pending: map[int]map[int64]int{}, maxDone: map[int]int64{}}
}

func (o *offsets) add(m kafka.Message) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.pending[m.Partition] == nil {
		o.pending[m.Partition] = map[int64]int{}
	}
	o.pending[m.Partition][m.Offset]++
}

// finish marks m done and returns the message to commit (its Offset is
// the last finished offset of the contiguous prefix), ok false when
// nothing new may be committed.
func (o *offsets) finish(m kafka.Message) (kafka.Message, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.pending[m.Partition]
	if p[m.Offset] > 1 {
		p[m.Offset]--
	} else {
		delete(p, m.Offset)
	}
	if md, ok := o.maxDone[m.Partition]; !ok || m.Offset > md {
		o.maxDone[m.Partition] = m.Offset
	}
	upTo := o.maxDone[m.Partition]
	for off := range p {
		if off-1 < upTo {
			upTo = off - 1
		}
	}
	if upTo < 0 {
		return kafka.Message{}, false
	}
	return kafka.Message{Topic: m.Topic, Partition: m.Partition, Offset: upTo}, true
}

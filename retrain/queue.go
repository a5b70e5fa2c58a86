package retrain

import (
	"container/heap"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/driftwatch/driftwatch/schemas"
)

// item is one queued trigger with the message that carried it.
type item struct {
	trig schemas.RetrainTrigger
	msg  kafka.Message
	seq  uint64
	// notBefore is when a trigger put back after a transient error may
	// run again (zero: now); attempts counts those errors.
	notBefore time.Time
	attempts  int
	// parked is set while a retried trigger waits: its model stays busy
	// for every other trigger of the model.
	parked bool
}

// size is what an item counts against the queue's byte bound: its
// message, which the decoded trigger roughly doubles.
func (a *item) size() int { return 2 * (len(a.msg.Key) + len(a.msg.Value)) }

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
// redeliveries never wait for a run that would be skipped anyway. It holds
// at most maxItems triggers and maxBytes (item.size) of them: push waits
// for room, so a flood of triggers waits in Kafka, not in memory. A
// trigger put back after a transient error (retry) waits out its backoff
// without holding a worker, so the triggers of other models run
// meanwhile; its own model stays busy, so that a model still never has two
// runs at once and its triggers keep their order.
type queue struct {
	mu       sync.Mutex
	cond     *sync.Cond
	items    itemHeap
	bytes    int
	maxItems int
	maxBytes int
	busy     map[string]bool // model → a run is in progress
	keys     map[string]int  // trigger_id and model/dedup_key → queued or running
	seq      uint64
	closed   bool
}

func newQueue(maxItems, maxBytes int) *queue {
	q := &queue{busy: map[string]bool{}, keys: map[string]int{}, maxItems: maxItems, maxBytes: maxBytes}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func itemKeys(t *schemas.RetrainTrigger) [2]string {
	return [2]string{"id\x00" + t.TriggerID, "dedup\x00" + t.ModelID + "\x00" + t.DedupKey}
}

// pushResult is what push did with a trigger.
type pushResult int

const (
	pushed    pushResult = iota
	duplicate            // the same trigger is already queued or running
	closed               // the queue was closed while push waited for room
)

// push queues it once there is room (an empty queue always has room, so
// one trigger larger than maxBytes still runs).
func (q *queue) push(it *item) pushResult {
	q.mu.Lock()
	defer q.mu.Unlock()
	for !q.closed && len(q.items) > 0 && (len(q.items) >= q.maxItems || q.bytes+it.size() > q.maxBytes) {
		q.cond.Wait()
	}
	if q.closed {
		return closed
	}
	ks := itemKeys(&it.trig)
	if q.keys[ks[0]] > 0 || q.keys[ks[1]] > 0 {
		return duplicate
	}
	for _, k := range ks {
		q.keys[k]++
	}
	q.seq++
	it.seq = q.seq
	q.add(it)
	return pushed
}

func (q *queue) add(it *item) {
	heap.Push(&q.items, it)
	q.bytes += it.size()
	q.cond.Broadcast()
}

// pop blocks until a trigger of an idle model is due, marks the model
// busy and returns it; nil once closed.
func (q *queue) pop() *item {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		if q.closed {
			return nil
		}
		// The heap's order is kept by scanning for the best due item of an
		// idle model; queues are short (at most maxItems).
		now := time.Now()
		best := -1
		var wake time.Time
		for i, it := range q.items {
			if q.busy[it.trig.ModelID] && !it.parked {
				continue
			}
			if it.notBefore.After(now) {
				if wake.IsZero() || it.notBefore.Before(wake) {
					wake = it.notBefore
				}
				continue
			}
			if best < 0 || it.before(q.items[best]) {
				best = i
			}
		}
		if best >= 0 {
			it := heap.Remove(&q.items, best).(*item)
			q.bytes -= it.size()
			q.busy[it.trig.ModelID] = true
			it.parked = false
			q.cond.Broadcast() // room for push
			return it
		}
		var tm *time.Timer
		if !wake.IsZero() {
			tm = time.AfterFunc(time.Until(wake), func() {
				q.mu.Lock()
				q.cond.Broadcast()
				q.mu.Unlock()
			})
		}
		q.cond.Wait()
		if tm != nil {
			tm.Stop()
		}
	}
}

// retry puts a popped trigger back, due at notBefore; its model stays
// busy for other triggers and its keys stay taken, so a redelivery is
// still refused. It does not wait for room: the trigger held its place
// while it ran.
func (q *queue) retry(it *item, notBefore time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	it.notBefore, it.parked = notBefore, true
	q.add(it)
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

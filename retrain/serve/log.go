package serve

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// MessageWriter is what the event log writes to (a *kafka.Writer).
type MessageWriter interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// ErrLogFull is returned by eventLog.add when an event was dropped: the
// buffer stayed full (policy block, after log_wait) or was full (drop).
var ErrLogFull = errors.New("inference log buffer full")

// ErrClosed is returned by eventLog.add after the log stopped accepting.
var ErrClosed = errors.New("serve is shutting down")

type logItem struct {
	w     MessageWriter
	topic string
	msg   kafka.Message
}

// eventLog is the bounded, asynchronous log of inference and outcome
// events: add never waits on Kafka, only (policy block, up to wait) for
// room in the buffer; run writes batches until its context ends and then
// writes everything accepted.
type eventLog struct {
	ch     chan logItem
	policy LogPolicy
	wait   time.Duration
	log    *slog.Logger
	events *prometheus.CounterVec // topic, outcome

	mu      sync.RWMutex
	closed  bool
	lastErr time.Time
}

func newEventLog(size int, policy LogPolicy, wait time.Duration, log *slog.Logger, events *prometheus.CounterVec) *eventLog {
	return &eventLog{ch: make(chan logItem, size), policy: policy, wait: wait, log: log, events: events}
}

// add queues msg for w (topic names the metric's topic label).
func (l *eventLog) add(w MessageWriter, topic string, msg kafka.Message) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	it := logItem{w, topic, msg}
	select {
	case l.ch <- it:
		l.events.WithLabelValues(topic, "accepted").Inc()
		return nil
	default:
	}
	if l.policy == PolicyBlock && l.wait > 0 {
		t := time.NewTimer(l.wait)
		defer t.Stop()
		select {
		case l.ch <- it:
			l.events.WithLabelValues(topic, "accepted").Inc()
			return nil
		case <-t.C:
		}
	}
	l.events.WithLabelValues(topic, "dropped").Inc()
	return ErrLogFull
}

// close stops accepting: add returns ErrClosed from now on.
func (l *eventLog) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
}

// maxBatch is the most messages of one WriteMessages call.
const maxBatch = 1000

// run writes the buffered events until ctx ends, then stops accepting and
// writes what was accepted. Everything after ctx ends — the write under
// way and the rest of the buffer — must finish within timeout; then the
// writes are cancelled (counted failed).
func (l *eventLog) run(ctx context.Context, timeout time.Duration) {
	wctx, wcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer wcancel()
	// The timer may outlive run; cancelling wctx then is a no-op.
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(timeout, wcancel) })
	defer stop()
	batch := map[MessageWriter][]kafka.Message{}
	topics := map[MessageWriter]string{}
	write := func(ctx context.Context) {
		for w, msgs := range batch {
			if len(msgs) == 0 {
				continue
			}
			topic := topics[w]
			if err := w.WriteMessages(ctx, msgs...); err != nil {
				l.events.WithLabelValues(topic, "failed").Add(float64(len(msgs)))
				if time.Since(l.lastErr) > 10*time.Second {
					l.lastErr = time.Now()
					l.log.Error("write logged events to Kafka", "topic", topic, "events", len(msgs), "err", err)
				}
			} else {
				l.events.WithLabelValues(topic, "written").Add(float64(len(msgs)))
			}
			batch[w] = msgs[:0]
		}
	}
	take := func(it logItem) int {
		topics[it.w] = it.topic
		batch[it.w] = append(batch[it.w], it.msg)
		n := 1
		for n < maxBatch {
			select {
			case it := <-l.ch:
				topics[it.w] = it.topic
				batch[it.w] = append(batch[it.w], it.msg)
				n++
				continue
			default:
			}
			break
		}
		return n
	}
	// A write under way when ctx ends finishes (within timeout): those
	// events were accepted.
	for {
		select {
		case it := <-l.ch:
			take(it)
			write(wctx)
			if ctx.Err() == nil {
				continue
			}
		case <-ctx.Done():
		}
		break
	}
	l.close()
	for {
		select {
		case it := <-l.ch:
			take(it)
			write(wctx)
			continue
		default:
		}
		break
	}
}

// isClosed reports whether add refuses events.
func (l *eventLog) isClosed() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.closed
}

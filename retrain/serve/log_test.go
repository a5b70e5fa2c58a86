package serve

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
)

// gate is a writer that holds every write until opened, like a Kafka
// that does not answer.
type gate struct {
	open chan struct{}
	mu   sync.Mutex
	got  int
}

func (g *gate) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	select {
	case <-g.open:
	case <-ctx.Done():
		return ctx.Err()
	}
	g.mu.Lock()
	g.got += len(msgs)
	g.mu.Unlock()
	return nil
}

// With Kafka stuck, add never blocks beyond log_wait: the buffer fills,
// then events are dropped and counted (both policies); on shutdown every
// accepted event is written and later adds are refused.
func TestEventLogBoundedAndFlushed(t *testing.T) {
	for _, policy := range []LogPolicy{PolicyBlock, PolicyDrop} {
		t.Run(string(policy), func(t *testing.T) {
			ev := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x"}, []string{"topic", "outcome"})
			l := newEventLog(10, policy, time.Millisecond, slog.New(slog.DiscardHandler), ev)
			g := &gate{open: make(chan struct{})}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				l.run(ctx, time.Minute)
			}()
			var accepted, dropped int
			for range 100 {
				switch err := l.add(g, "t", kafka.Message{Value: []byte("e")}); {
				case err == nil:
					accepted++
				case errors.Is(err, ErrLogFull):
					dropped++
				default:
					t.Fatal(err)
				}
			}
			// At most the buffer plus the batch the writer holds.
			if accepted < 10 || accepted > 10+maxBatch || dropped != 100-accepted {
				t.Errorf("accepted %d, dropped %d", accepted, dropped)
			}
			if got := testutil.ToFloat64(ev.WithLabelValues("t", "dropped")); got != float64(dropped) {
				t.Errorf("dropped metric %v, want %d", got, dropped)
			}
			cancel()
			close(g.open)
			<-done
			if g.got != accepted {
				t.Errorf("written %d, accepted %d", g.got, accepted)
			}
			if err := l.add(g, "t", kafka.Message{}); !errors.Is(err, ErrClosed) {
				t.Errorf("add after shutdown: %v", err)
			}
		})
	}
}

// A Kafka that never answers does not hold shutdown beyond its timeout:
// run returns and the events it could not write are counted failed.
func TestEventLogShutdownBounded(t *testing.T) {
	ev := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x"}, []string{"topic", "outcome"})
	l := newEventLog(10, PolicyDrop, 0, slog.New(slog.DiscardHandler), ev)
	g := &gate{open: make(chan struct{})} // never opened
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.run(ctx, 10*time.Millisecond) }()
	accepted := 0
	for range 5 {
		if l.add(g, "t", kafka.Message{Value: []byte("e")}) == nil {
			accepted++
		}
	}
	cancel()
	<-done
	written := testutil.ToFloat64(ev.WithLabelValues("t", "written"))
	failed := testutil.ToFloat64(ev.WithLabelValues("t", "failed"))
	if accepted != 5 || written != 0 || failed != 5 {
		t.Errorf("accepted %d, written %v, failed %v; want 5, 0, 5", accepted, written, failed)
	}
}

package kafkaio

import (
	"log/slog"
	"strings"
	"sync"
	"time"
)

// throttle is kafka-go's error logger. While a broker is down kafka-go
// logs every retry — each partition's reader, every backoff, the writer's
// every batch — so one outage repeats the same warning many times a
// second. A throttle logs the first warning of a kind (its text with the
// numbers masked: partitions, offsets, addresses) and counts the repeats
// within window; the next one logged after the window says how many there
// were ("repeated", "over").
type throttle struct {
	l      *slog.Logger
	now    func() time.Time
	window time.Duration

	mu    sync.Mutex
	kinds map[string]*warning
}

// warning is one kind's last logged time and its repeats since.
type warning struct {
	logged     time.Time
	suppressed int
}

const (
	// throttleWindow is how long a kind of warning stays quiet after it
	// was logged.
	throttleWindow = 30 * time.Second
	// maxWarningKinds bounds the kinds remembered; past it they are
	// forgotten (the next of each is logged again).
	maxWarningKinds = 256
)

func newThrottle(l *slog.Logger, now func() time.Time, window time.Duration) *throttle {
	return &throttle{l: l, now: now, window: window, kinds: map[string]*warning{}}
}

// warn logs msg unless a warning of its kind was logged within the window.
func (t *throttle) warn(msg string) {
	key := maskNumbers(msg)
	now := t.now()
	t.mu.Lock()
	w := t.kinds[key]
	if w != nil && now.Sub(w.logged) < t.window {
		w.suppressed++
		t.mu.Unlock()
		return
	}
	attrs := []any{"component", "kafka-go"}
	if w != nil && w.suppressed > 0 {
		attrs = append(attrs, "repeated", w.suppressed, "over", now.Sub(w.logged).Round(time.Second).String())
	}
	if w == nil && len(t.kinds) >= maxWarningKinds {
		clear(t.kinds)
	}
	t.kinds[key] = &warning{logged: now}
	t.mu.Unlock()
	t.l.Warn(msg, attrs...)
}

// maskNumbers replaces every run of digits in s with '#'.
func maskNumbers(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	digits := false
	for _, r := range s {
		if r >= '0' && r <= '9' {
			if !digits {
				b.WriteByte('#')
			}
			digits = true
			continue
		}
		digits = false
		b.WriteRune(r)
	}
	return b.String()
}

package kafkaio

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestThrottleQuietsRepeatedWarnings plays a broker outage as kafka-go
// logs it — the same error for every partition and offset, 1,000 times in
// 10 seconds — and another kind of warning in between: the first of each
// kind is logged, the repeats are not, and the first one after the window
// says how many there were.
func TestThrottleQuietsRepeatedWarnings(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	th := newThrottle(slog.New(slog.NewJSONHandler(&buf, nil)), func() time.Time { return now }, 30*time.Second)
	for i := range 1000 {
		th.warn(fmt.Sprintf("the kafka reader got an unknown error reading partition %d of dw.inferences at offset %d: dial tcp 127.0.0.1:%d: connect: connection refused", i%6, 1000+i, 29092+i%3))
		if i == 500 {
			th.warn("kafka-go: failed to produce messages to dw.dead-letters: [7] Request Timed Out")
		}
		now = now.Add(10 * time.Millisecond)
	}
	now = now.Add(25 * time.Second) // 35 s after the first
	th.warn("the kafka reader got an unknown error reading partition 2 of dw.inferences at offset 77: dial tcp 127.0.0.1:29093: connect: connection refused")
	th.warn("the kafka reader got an unknown error reading partition 3 of dw.inferences at offset 78: dial tcp 127.0.0.1:29093: connect: connection refused")

	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 3 {
		t.Fatalf("%d lines logged, want 3 (the first of each kind, then one after the window):\n%s", len(lines), buf.String())
	}
	for i, want := range []string{"partition 0 of dw.inferences at offset 1000", "failed to produce", "partition 2 of dw.inferences at offset 77"} {
		if msg, _ := lines[i]["msg"].(string); !strings.Contains(msg, want) || lines[i]["level"] != "WARN" || lines[i]["component"] != "kafka-go" {
			t.Errorf("line %d = %v, want a kafka-go WARN containing %q", i, lines[i], want)
		}
	}
	if lines[0]["repeated"] != nil || lines[1]["repeated"] != nil {
		t.Errorf("first warnings of their kind carry a repeat count: %v, %v", lines[0], lines[1])
	}
	if got, want := lines[2]["repeated"], float64(999); got != want || lines[2]["over"] != "35s" {
		t.Errorf("the warning after the window: repeated %v over %v, want %v over 35s", got, lines[2]["over"], want)
	}
}

func TestMaskNumbers(t *testing.T) {
	for in, want := range map[string]string{
		"":                                  "",
		"partition 12 at offset 3400":       "partition # at offset #",
		"dial tcp 127.0.0.1:29092: refused": "dial tcp #.#.#.#:#: refused",
		"no digits":                         "no digits",
	} {
		if got := maskNumbers(in); got != want {
			t.Errorf("maskNumbers(%q) = %q, want %q", in, got, want)
		}
	}
}

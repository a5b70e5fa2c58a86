package monitor

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/monitor/policy"
	"github.com/driftwatch/driftwatch/monitor/window"
	"github.com/driftwatch/driftwatch/schemas"
)

// TestMemorySinkAnswersAsTheStore: a replay's sink gives the hysteresis
// and the gate what Store gives them from drift_results and
// retrain_triggers — the verdicts of the windows asked for, oldest first,
// a window without a verdict as not drifted, the population apart from
// the slices; the newest trigger and the count since a time, the zero
// Unix time without one.
func TestMemorySinkAnswersAsTheStore(t *testing.T) {
	ctx := context.Background()
	s := newMemorySink()
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
	write := func(model, segment string, end time.Time, drifted ...string) {
		snap := &window.Snapshot{Model: model, Current: window.Span{Start: end.Add(-time.Hour), End: end}}
		var rows []policy.Row
		for _, f := range []string{"f0", "f1"} {
			rows = append(rows, policy.Row{Feature: f, Method: MethodVerdict, Drifted: slices.Contains(drifted, f)})
		}
		if err := s.WriteResults(ctx, snap, segment, ReferencePinned, nil, rows, end); err != nil {
			t.Fatal(err)
		}
	}
	write("m", "", h(1), "f0")
	write("m", "", h(2), "f0", "f1")
	write("m", "region=eu", h(2), "f1")
	write("other", "", h(2), "f0", "f1")
	got, err := s.DriftHistory(ctx, "m", []time.Time{h(1), h(2), h(3)})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got["f0"], []bool{true, true, false}) || !slices.Equal(got["f1"], []bool{false, true, false}) || len(got) != 2 {
		t.Fatalf("population history %v", got)
	}
	segs, _ := s.SegmentHistory(ctx, "m", []time.Time{h(2)}, true)
	if len(segs) != 1 || !slices.Equal(segs["region=eu"]["f1"], []bool{true}) || !slices.Equal(segs["region=eu"]["f0"], []bool{false}) {
		t.Fatalf("slice history %v", segs)
	}
	if none, _ := s.DriftHistory(ctx, "m", nil); len(none) != 0 {
		t.Fatalf("no windows asked: %v", none)
	}

	last, n, _ := s.TriggerHistory(ctx, "m", t0)
	if !last.Equal(time.Unix(0, 0)) || n != 0 {
		t.Fatalf("no trigger: %s, %d", last, n)
	}
	for i, at := range []time.Time{h(1), h(30)} {
		if err := s.RecordTrigger(ctx, &schemas.RetrainTrigger{ModelID: "m", DedupKey: string(rune('a' + i)), CreatedAt: at}, ""); err != nil {
			t.Fatal(err)
		}
	}
	last, n, _ = s.TriggerHistory(ctx, "m", h(24))
	dup, _ := s.HasTrigger(ctx, "m", "a")
	other, _ := s.HasTrigger(ctx, "other", "a")
	if !last.Equal(h(30)) || n != 1 || !dup || other {
		t.Fatalf("triggers: last %s, %d since, dup %v, other model %v", last, n, dup, other)
	}
}

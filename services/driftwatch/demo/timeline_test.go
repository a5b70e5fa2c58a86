package demo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// fakeClock's Sleep advances Now: the timeline's waits take no real time.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }
func (c *fakeClock) sleep(_ context.Context, d time.Duration) error {
	c.t = c.t.Add(d)
	return nil
}

func newFakeTimeline(w *strings.Builder) (*Timeline, *fakeClock) {
	clk := &fakeClock{t: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)}
	tl := &Timeline{W: w, Now: clk.now, Sleep: clk.sleep, Poll: 2 * time.Second, Progress: 10 * time.Second}
	tl.Start()
	return tl, clk
}

func TestTimelineSteps(t *testing.T) {
	tests := []struct {
		name     string
		doneAt   time.Duration // the check reports done from then on; negative: never
		fatal    error
		timeout  time.Duration
		wantErr  bool
		wantOut  []string
		progress int // progress lines
	}{
		{name: "at once", doneAt: 0, timeout: time.Minute, wantOut: []string{"[+   0.0s] ✓  step: evidence at 0s"}},
		{name: "after a wait", doneAt: 25 * time.Second, timeout: time.Minute,
			wantOut: []string{"waiting for step (10s of 1m0s): seen at 10s", "[+  26.0s] ✓  step: evidence at 26s"}, progress: 2},
		{name: "timeout", doneAt: -1, timeout: 30 * time.Second, wantErr: true,
			wantOut: []string{"[+  30.0s] ✗  step: not within 30s (last seen: seen at 30s)"}, progress: 2},
		{name: "fatal", doneAt: -1, fatal: errors.New("not a classifier"), timeout: time.Minute, wantErr: true,
			wantOut: []string{"✗  step: not a classifier"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			tl, clk := newFakeTimeline(&out)
			start := clk.t
			ev, err := tl.Wait(context.Background(), "step", tc.timeout, func(context.Context) (bool, string, error) {
				at := clk.t.Sub(start)
				if tc.fatal != nil {
					return false, "", tc.fatal
				}
				if tc.doneAt >= 0 && at >= tc.doneAt {
					return true, fmt.Sprintf("evidence at %s", at), nil
				}
				return false, fmt.Sprintf("seen at %s", at), nil
			})
			if tc.wantErr {
				var se *StepError
				if !errors.As(err, &se) || se.Step != "step" {
					t.Fatalf("error %v, want a *StepError naming the step", err)
				}
				if tc.fatal != nil && !errors.Is(err, tc.fatal) {
					t.Errorf("error %v does not wrap %v", err, tc.fatal)
				}
				if !strings.Contains(err.Error(), `"step"`) {
					t.Errorf("error %q does not name the step", err)
				}
			} else if err != nil || !strings.HasPrefix(ev, "evidence") {
				t.Fatalf("Wait = %q, %v; want the evidence", ev, err)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			if n := strings.Count(out.String(), "waiting for"); n != tc.progress {
				t.Errorf("%d progress lines, want %d:\n%s", n, tc.progress, out.String())
			}
		})
	}
}

// TestWorld checks the demo's ground truth: before the change the label
// follows the rule (rows whose rule score z is large are mostly "1"),
// after it the rule is flipped and the drift feature's mean has moved by
// the shift while the others have not.
func TestWorld(t *testing.T) {
	w := newWorld([]string{"f0", "f1"}, []string{"c"}, "f0", 3, 1)
	const n = 20000
	mean := func() (m0, m1, agree float64) {
		for range n {
			f, label := w.row()
			x0, x1 := f["f0"].(float64), f["f1"].(float64)
			if w.changed.Load() {
				x0 -= 3 // the rule reads the unshifted value
			}
			z := 1.5*x0 - 1.5*x1
			if (z > 0) == (label == "1") {
				agree++
			}
			m0 += f["f0"].(float64)
			m1 += x1
		}
		return m0 / n, m1 / n, agree / n
	}
	m0, m1, agree := mean()
	// With z ~ N(0, 1.5²·2) and P(y=1|z) = σ(z), the label agrees with
	// sign(z) with probability E[σ(|z|)] ≈ 0.79 (numerical integration:
	// ∫ σ(|z|) φ(z/2.12)/2.12 dz = 0.787, z's sd being 1.5·√2 = 2.12).
	if !(abs(m0) <= 0.05) || !(abs(m1) <= 0.05) || !(abs(agree-0.787) <= 0.02) {
		t.Errorf("before the change: means %.3f %.3f, agreement %.3f; want 0, 0 and 0.787", m0, m1, agree)
	}
	w.changed.Store(true)
	m0, m1, agree = mean()
	if !(abs(m0-3) <= 0.05) || !(abs(m1) <= 0.05) || !(abs(agree-(1-0.787)) <= 0.02) {
		t.Errorf("after the change: means %.3f %.3f, agreement %.3f; want 3, 0 and 0.213", m0, m1, agree)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// Package demo is `driftwatch demo`: it drives the whole loop against a
// running stack (make run, or make demo's short-window stack) — traffic
// through serve, labels through serve's outcomes endpoint, an injected
// drift and concept change, the monitor's verdict, the alert in
// Alertmanager, the retrain trigger, the trainer's promotion, serve's
// reload and the recovered live performance — and prints a timeline of
// the steps with their evidence. docs/demo.md lists the steps.
package demo

import (
	"context"
	"fmt"
	"io"
	"time"
)

// StepError is returned when a step did not happen within its timeout
// (or its check failed for good); the demo exits non-zero naming Step.
type StepError struct {
	Step    string
	Timeout time.Duration
	// Last is what the step's check last reported while waiting.
	Last string
	Err  error
}

func (e *StepError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("step %q failed: %v", e.Step, e.Err)
	}
	return fmt.Sprintf("step %q did not happen within %s (last seen: %s)", e.Step, e.Timeout, e.Last)
}

func (e *StepError) Unwrap() error { return e.Err }

// Check reports whether a step has happened, with its evidence when it
// has and what it sees so far when not. A non-nil error ends the wait at
// once (a step that can no longer happen); an unreachable service is not
// such an error, it is reported as progress and retried.
type Check func(ctx context.Context) (done bool, evidence string, err error)

// Timeline prints each step with its time since Start.
type Timeline struct {
	W io.Writer
	// Now and Sleep are injected for tests.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	// Poll is how often a check runs; Progress how often a waiting line
	// is printed.
	Poll, Progress time.Duration

	start time.Time
}

// NewTimeline returns a timeline on the real clock, started now.
func NewTimeline(w io.Writer, poll, progress time.Duration) *Timeline {
	t := &Timeline{W: w, Now: time.Now, Sleep: sleep, Poll: poll, Progress: progress}
	t.start = t.Now()
	return t
}

// Start restarts the timeline's clock.
func (t *Timeline) Start() { t.start = t.Now() }

// Elapsed is the time since Start.
func (t *Timeline) Elapsed() time.Duration { return t.Now().Sub(t.start) }

// Note prints a line that is not a step (a phase of the traffic).
func (t *Timeline) Note(format string, args ...any) {
	fmt.Fprintf(t.W, "%s    %s\n", stamp(t.Elapsed()), fmt.Sprintf(format, args...))
}

// Wait runs check every Poll until it reports done, then prints the step
// with its evidence; it prints a progress line every Progress meanwhile
// and returns a *StepError when timeout passes first.
func (t *Timeline) Wait(ctx context.Context, name string, timeout time.Duration, check Check) (string, error) {
	begin := t.Now()
	lastProgress := begin
	last := "nothing yet"
	for {
		done, ev, err := check(ctx)
		if err != nil {
			fmt.Fprintf(t.W, "%s ✗  %s: %v\n", stamp(t.Elapsed()), name, err)
			return "", &StepError{Step: name, Timeout: timeout, Last: last, Err: err}
		}
		if done {
			fmt.Fprintf(t.W, "%s ✓  %s: %s\n", stamp(t.Elapsed()), name, ev)
			return ev, nil
		}
		if ev != "" {
			last = ev
		}
		now := t.Now()
		if now.Sub(begin) >= timeout {
			fmt.Fprintf(t.W, "%s ✗  %s: not within %s (last seen: %s)\n", stamp(t.Elapsed()), name, timeout, last)
			return "", &StepError{Step: name, Timeout: timeout, Last: last}
		}
		if now.Sub(lastProgress) >= t.Progress {
			lastProgress = now
			fmt.Fprintf(t.W, "%s …  waiting for %s (%s of %s): %s\n", stamp(t.Elapsed()), name, now.Sub(begin).Truncate(time.Second), timeout, last)
		}
		if err := t.Sleep(ctx, t.Poll); err != nil {
			return "", &StepError{Step: name, Timeout: timeout, Last: last, Err: err}
		}
	}
}

func stamp(d time.Duration) string {
	return fmt.Sprintf("[+%6.1fs]", d.Seconds())
}

func sleep(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

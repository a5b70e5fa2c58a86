package retrain

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/internal/testdb"
)

func TestOwner(t *testing.T) {
	self := selfOwner()
	if self.pid != os.Getpid() || self.host == "" || self.start == "" {
		t.Fatalf("selfOwner() = %+v", self)
	}
	if o, ok := parseOwner(self.String()); !ok || o != self {
		t.Fatalf("parseOwner(%q) = %+v, %v", self.String(), o, ok)
	}
	for _, bad := range []string{"", "host", "host/12", "host/x/1"} {
		if _, ok := parseOwner(bad); ok {
			t.Errorf("parseOwner(%q) accepted", bad)
		}
	}
	for _, tc := range []struct {
		name string
		o    owner
		gone bool
	}{
		{"this process", self, false},
		{"this pid, another start (a restarted process with the same pid)", owner{self.host, self.pid, self.start + "0"}, true},
		{"a pid no process has", owner{self.host, 1 << 30, "1"}, true},
		{"another host (unknown: the lease decides)", owner{self.host + "-other", 1 << 30, "1"}, false},
	} {
		if got := tc.o.goneFrom(self); got != tc.gone {
			t.Errorf("%s: goneFrom = %v, want %v", tc.name, got, tc.gone)
		}
	}
}

// TestLeases records runs as running under other trainers' leases and
// checks what a trainer does with their triggers: it waits for a live
// owner (ErrRunHeld; Recover leaves the run alone), and takes the run over
// as a retry once the lease lapses or when the owner was a process of this
// host that is gone.
func TestLeases(t *testing.T) {
	conn, _ := testdb.Open(t, "lease_test")
	ctx := context.Background()
	mc := modelCfg()
	tr, err := New(Options{Conn: conn, Events: &eventLog{}, ArtifactDir: filepath.Join(t.TempDir(), "a"), WorkDir: filepath.Join(t.TempDir(), "w"),
		Defaults: mc, Lease: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	// running records trigger id as running under owner, whose last
	// heartbeat was just now.
	running := func(id, owner string) {
		t.Helper()
		trig := trigger("m-lease", id, id, now)
		r := &Run{RunID: RunID(trig.ModelID, trig.DedupKey), ModelID: trig.ModelID, Version: "v-" + id, TriggerID: id, DedupKey: id, Attempt: 1,
			Reason: string(trig.Reason), Trainer: TrainerBuiltin, Status: RunRunning, StartedAt: now}
		if err := tr.writeRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		if err := conn.Exec(ctx, fmt.Sprintf("INSERT INTO training_leases SELECT %s, %s, %s, now64(3)", quote(r.RunID), quote(r.ModelID), quote(owner))); err != nil {
			t.Fatal(err)
		}
	}
	status := func(id string) *Run {
		t.Helper()
		runs, err := tr.Runs(ctx, "m-lease")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range runs {
			if r.TriggerID == id {
				return r
			}
		}
		t.Fatalf("no run of trigger %s", id)
		return nil
	}
	self := selfOwner()

	// A trainer on another host, alive a moment ago.
	running("remote", "other-host/7/123")
	if err := tr.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if r := status("remote"); r.Status != RunRunning {
		t.Fatalf("Recover took a run another live trainer holds: %s %q", r.Status, r.DecisionReason)
	}
	r, err := tr.RunTrigger(ctx, trigger("m-lease", "remote", "remote", now))
	if !errors.Is(err, ErrRunHeld) || r != nil || !strings.Contains(err.Error(), "trainer other-host/7/123 holds it") {
		t.Fatalf("trigger of a held run: %+v, %v; want ErrRunHeld naming the owner", r, err)
	}
	// Its lease lapses: the redelivered trigger retries the run here.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		held, _, err := tr.heldElsewhere(ctx, status("remote"))
		if err != nil {
			t.Fatal(err)
		}
		if !held {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the lease did not lapse")
		}
	}
	r, err = tr.RunTrigger(ctx, trigger("m-lease", "remote", "remote", now))
	if err != nil || r == nil {
		t.Fatalf("trigger of an abandoned run: %+v, %v", r, err)
	}
	// m-lease has no data, so the retry fails, but it ran: attempt 2.
	if r.Attempt != 2 || r.Status != RunFailed || isInterrupted(r.DecisionReason) {
		t.Errorf("taken-over run: attempt %d, %s %q; want attempt 2 that ran", r.Attempt, r.Status, r.DecisionReason)
	}
	if l, err := tr.readLease(ctx, r); err != nil || l == nil || l.owner != self.String() {
		t.Errorf("lease after the takeover: %+v, %v; want held by %s", l, err, self)
	}

	// A process of this host that is gone: taken over at once, by Recover
	// as by a trigger.
	running("gone1", fmt.Sprintf("%s/%d/1", self.host, 1<<30))
	running("gone2", fmt.Sprintf("%s/%d/%s0", self.host, self.pid, self.start))
	if err := tr.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if r := status("gone1"); r.Status != RunFailed || !strings.Contains(r.DecisionReason, "no longer runs on this host") {
		t.Errorf("Recover left a run of a gone process: %s %q", r.Status, r.DecisionReason)
	}
	r, err = tr.RunTrigger(ctx, trigger("m-lease", "gone2", "gone2", now))
	if err != nil || r == nil || r.Attempt != 2 {
		t.Fatalf("trigger of a run whose owner is gone: %+v, %v", r, err)
	}

	// A run this very process holds is a duplicate, skipped.
	running("mine", self.String())
	if r, err := tr.RunTrigger(ctx, trigger("m-lease", "mine", "mine", now)); r != nil || err != nil {
		t.Errorf("trigger of a run this process holds: %+v, %v; want skipped", r, err)
	}
}

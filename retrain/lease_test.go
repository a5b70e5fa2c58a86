package retrain

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/internal/chsql"
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
	if self.scope == "-" || len(self.scope) != 12 {
		t.Errorf("scope %q: /proc has the boot id and pid namespace here", self.scope)
	}
	for _, bad := range []string{"", "host", "host/12", "host/x/1/s", "host/12/1", "host/12/1/s/x"} {
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
		{"this pid, another start (a restarted process with the same pid)", owner{self.host, self.pid, self.start + "0", self.scope}, true},
		{"a pid no process has", owner{self.host, 1 << 30, "1", self.scope}, true},
		{"another host (unknown: the lease decides)", owner{self.host + "-other", 1 << 30, "1", self.scope}, false},
		{"same host name, another pid namespace or boot", owner{self.host, 1 << 30, "1", "0123456789ab"}, false},
		{"a process whose /proc could not tell", owner{self.host, 1 << 30, "1", "-"}, false},
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
	tr, err := New(Options{Conn: conn, Events: &eventLog{},
		Settings: Settings{DataDir: t.TempDir(), Defaults: mc, Lease: 3 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	// runningSince records trigger id as running under owner, whose last
	// heartbeat was ago seconds ago.
	runningSince := func(id, owner string, ago int) {
		t.Helper()
		trig := trigger("m-lease", id, id, now)
		r := &Run{RunID: RunID(trig.ModelID, trig.DedupKey), ModelID: trig.ModelID, Version: "v-" + id, TriggerID: id, DedupKey: id, Attempt: 1,
			Reason: string(trig.Reason), Trainer: TrainerBuiltin, Status: RunRunning, StartedAt: now}
		if err := tr.store().writeRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		if err := conn.Exec(ctx, fmt.Sprintf("INSERT INTO training_leases SELECT %s, %s, %s, now64(3) - toIntervalSecond(%d)", chsql.String(r.RunID), chsql.String(r.ModelID), chsql.String(owner), ago)); err != nil {
			t.Fatal(err)
		}
	}
	running := func(id, owner string) { t.Helper(); runningSince(id, owner, 0) }
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
	running("remote", "other-host/7/123/0123456789ab")
	if err := tr.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if r := status("remote"); r.Status != RunRunning {
		t.Fatalf("Recover took a run another live trainer holds: %s %q", r.Status, r.DecisionReason)
	}
	r, err := tr.RunTrigger(ctx, trigger("m-lease", "remote", "remote", now))
	if !errors.Is(err, ErrRunHeld) || r != nil || !strings.Contains(err.Error(), "trainer other-host/7/123/0123456789ab holds it") {
		t.Fatalf("trigger of a held run: %+v, %v; want ErrRunHeld naming the owner", r, err)
	}
	// Its lease lapses: the redelivered trigger retries the run here.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		state, _, err := tr.leaseOf(ctx, status("remote"))
		if err != nil {
			t.Fatal(err)
		}
		if state == leaseAbandoned {
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
	if r.Attempt != 2 || r.Status != RunFailed || r.interrupted() {
		t.Errorf("taken-over run: attempt %d, %s %q; want attempt 2 that ran", r.Attempt, r.Status, r.DecisionReason)
	}
	if l, err := tr.store().lease(ctx, r); err != nil || l == nil || l.owner != self.String() {
		t.Errorf("lease after the takeover: %+v, %v; want held by %s", l, err, self)
	}

	// A process of this host that is gone: taken over at once, by Recover
	// as by a trigger.
	running("gone1", owner{self.host, 1 << 30, "1", self.scope}.String())
	running("gone2", owner{self.host, self.pid, self.start + "0", self.scope}.String())
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

	// A run this process executes is a duplicate; one it holds but no
	// longer executes (an attempt that stopped without recording its end)
	// is taken over.
	running("mine", self.String())
	tr.setActive(RunID("m-lease", "mine"), true)
	if r, err := tr.RunTrigger(ctx, trigger("m-lease", "mine", "mine", now)); r != nil || err != nil {
		t.Errorf("trigger of a run this process executes: %+v, %v; want skipped", r, err)
	}
	tr.setActive(RunID("m-lease", "mine"), false)
	if r, err := tr.RunTrigger(ctx, trigger("m-lease", "mine", "mine", now)); err != nil || r == nil || r.Attempt != 2 {
		t.Errorf("trigger of a run this process left: %+v, %v; want attempt 2", r, err)
	}

	// The last attempt abandoned: its end is recorded, not left running.
	runningSince("last", "other-host/7/123/0123456789ab", 3600)
	last := status("last")
	last.Attempt = 3
	if err := tr.store().writeRun(ctx, last); err != nil {
		t.Fatal(err)
	}
	if r, err := tr.RunTrigger(ctx, trigger("m-lease", "last", "last", now)); r != nil || err != nil {
		t.Errorf("trigger of an abandoned last attempt: %+v, %v; want skipped", r, err)
	}
	if r := status("last"); r.Status != RunFailed || r.FinishedAt == nil || !strings.Contains(r.DecisionReason, "no attempt left (3 of 3)") {
		t.Errorf("abandoned last attempt: %s %q, finished %v", r.Status, r.DecisionReason, r.FinishedAt)
	}
}

// BenchmarkLeaseHeartbeat holds a run's lease (3 s, so a heartbeat every
// second) for ten heartbeats against the ClickHouse of the environment,
// sampling the lease every 100 ms, and reports the oldest heartbeat seen
// as a share of the lease: how close a loaded machine comes to letting a
// live run's lease lapse (the tests check that heartbeats happen, not
// their timing).
func BenchmarkLeaseHeartbeat(b *testing.B) {
	conn, _ := testdb.Open(b, "lease_bench")
	ctx := context.Background()
	const leaseFor = 3 * time.Second
	tr, err := New(Options{Conn: conn, Events: &eventLog{},
		Settings: Settings{DataDir: b.TempDir(), Defaults: modelCfg(), Lease: leaseFor}})
	if err != nil {
		b.Fatal(err)
	}
	var oldest time.Duration
	for i := 0; b.Loop(); i++ {
		r := &Run{RunID: fmt.Sprintf("bench-%d", i), ModelID: "m-bench"}
		stop, err := tr.holdLease(ctx, r)
		if err != nil {
			b.Fatal(err)
		}
		for end := time.Now().Add(10 * leaseFor / 3); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			l, err := tr.store().lease(ctx, r)
			if err != nil {
				b.Fatal(err)
			}
			if l != nil {
				oldest = max(oldest, l.age)
			}
		}
		stop()
	}
	b.ReportMetric(oldest.Seconds(), "oldest-heartbeat-s")
	b.ReportMetric(oldest.Seconds()/leaseFor.Seconds(), "of-lease")
}

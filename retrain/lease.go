package retrain

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrRunHeld is returned by RunTrigger for a trigger whose run another
// live trainer is running: the caller retries later, by when the run has
// ended or its owner's lease has lapsed.
var ErrRunHeld = errors.New("run held by another trainer")

// DefaultLease is how long a running run's owner may go without a
// heartbeat before another trainer takes the run over.
const DefaultLease = time.Minute

// owner identifies a trainer process: its host, pid, the process's start
// time (so that a restarted process that got the same pid, such as pid 1
// in a container, is a different owner) and scope, a digest of the boot id
// and the pid namespace: two processes can only be compared through /proc
// when they share both (containers may share a host name, not a pid
// namespace). scope is "-" when /proc cannot tell.
type owner struct {
	host  string
	pid   int
	start string
	scope string
}

func (o owner) String() string {
	return o.host + "/" + strconv.Itoa(o.pid) + "/" + o.start + "/" + o.scope
}

func parseOwner(s string) (owner, bool) {
	f := strings.Split(s, "/")
	if len(f) != 4 || f[0] == "" || f[2] == "" || f[3] == "" {
		return owner{}, false
	}
	pid, err := strconv.Atoi(f[1])
	if err != nil {
		return owner{}, false
	}
	return owner{host: f[0], pid: pid, start: f[2], scope: f[3]}, true
}

// selfOwner is this process as an owner.
func selfOwner() owner {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	host = strings.ReplaceAll(host, "/", "_")
	pid := os.Getpid()
	start, ok := processStart(pid)
	scope := procScope()
	if !ok {
		// Without /proc, a value no other process shares, and no scope:
		// other processes cannot be judged gone.
		start, scope = "t"+strconv.FormatInt(time.Now().UnixNano(), 36), "-"
	}
	return owner{host: host, pid: pid, start: start, scope: scope}
}

// procScope digests this boot's id and this process's pid namespace, or
// returns "-" when /proc does not have them.
func procScope() string {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "-"
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return "-"
	}
	h := sha256.Sum256([]byte(strings.TrimSpace(string(boot)) + "\x00" + ns))
	return hex.EncodeToString(h[:6])
}

// processStart returns a process's start time (field 22 of
// /proc/PID/stat, in clock ticks since boot).
func processStart(pid int) (string, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", false
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", false
	}
	f := strings.Fields(s[i+1:]) // from field 3 on
	if len(f) < 20 {
		return "", false
	}
	return f[19], true
}

// goneFrom reports whether o is a process that no longer runs, as far as
// self can tell: o shares self's host, boot and pid namespace, and its pid
// is free or belongs to a process started at another time. Of any other
// process nothing is known, and it reports false (the lease decides).
func (o owner) goneFrom(self owner) bool {
	if o.host != self.host || o.scope != self.scope || o.scope == "-" || o == self {
		return false
	}
	start, ok := processStart(o.pid)
	return !ok || start != o.start
}

// lease is what training_leases holds about a run.
type lease struct {
	owner string
	age   time.Duration // since the last heartbeat, by ClickHouse's clock
}

// leaseState is what a run recorded as running is, by its lease.
type leaseState int

const (
	// leaseAbandoned: no live trainer runs it (no lease, a lapsed one, an
	// owner of this host that is gone, or an earlier attempt of this
	// process that stopped without recording its end); take it over.
	leaseAbandoned leaseState = iota
	// leaseHeld: another live trainer runs it; wait.
	leaseHeld
	// leaseActiveHere: this process is executing it; a trigger of it is a
	// duplicate.
	leaseActiveHere
)

// leaseOf tells what a run recorded as running is, by its lease, and why
// (for the logs).
func (t *Trainer) leaseOf(ctx context.Context, r *Run) (leaseState, string, error) {
	l, err := t.store().lease(ctx, r)
	if err != nil {
		return 0, "", err
	}
	switch {
	case l == nil:
		return leaseAbandoned, "no lease recorded", nil
	case l.owner == t.self.String() && t.isActive(r.RunID):
		return leaseActiveHere, "running in this process", nil
	case l.owner == t.self.String():
		return leaseAbandoned, "an earlier attempt in this process stopped without recording its end", nil
	case l.age >= t.opts.Lease:
		return leaseAbandoned, fmt.Sprintf("trainer %s sent no heartbeat for %s (lease %s)", l.owner, l.age.Round(time.Second), t.opts.Lease), nil
	}
	if o, ok := parseOwner(l.owner); ok && o.goneFrom(t.self) {
		return leaseAbandoned, fmt.Sprintf("trainer %s no longer runs on this host", l.owner), nil
	}
	return leaseHeld, fmt.Sprintf("trainer %s holds it (heartbeat %s ago, lease %s)", l.owner, l.age.Round(time.Millisecond), t.opts.Lease), nil
}

// setActive marks run id as executing in this process (or no longer).
func (t *Trainer) setActive(id string, on bool) {
	t.activeMu.Lock()
	defer t.activeMu.Unlock()
	if on {
		t.active[id] = true
	} else {
		delete(t.active, id)
	}
}

func (t *Trainer) isActive(id string) bool {
	t.activeMu.Lock()
	defer t.activeMu.Unlock()
	return t.active[id]
}

// holdLease writes run r's first heartbeat, then one every third of the
// lease until the returned stop is called (stop waits for a heartbeat in
// flight, so none lands after it). A failed heartbeat is logged and
// retried at the next tick; the run goes on.
func (t *Trainer) holdLease(ctx context.Context, r *Run) (stop func(), err error) {
	if err := t.store().writeLease(ctx, r, t.self.String()); err != nil {
		return nil, err
	}
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(t.opts.Lease / 3)
		defer tick.Stop()
		for {
			select {
			case <-hctx.Done():
				return
			case <-tick.C:
				// Bounded: one insert stuck on a dead connection must not
				// hold back the heartbeats after it.
				wctx, cancel := context.WithTimeout(hctx, t.opts.Lease/3)
				if err := t.store().writeLease(wctx, r, t.self.String()); err != nil && hctx.Err() == nil {
					t.log.Warn("training run heartbeat", "model", r.ModelID, "run_id", r.RunID, "err", err)
				}
				cancel()
			}
		}
	})
	var once sync.Once
	return func() { once.Do(func() { cancel(); wg.Wait() }) }, nil
}

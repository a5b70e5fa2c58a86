package retrain

import (
	"context"
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

// owner identifies a trainer process: its host, pid and the process's
// start time (so that a restarted process that got the same pid, such as
// pid 1 in a container, is a different owner).
type owner struct {
	host  string
	pid   int
	start string
}

func (o owner) String() string { return o.host + "/" + strconv.Itoa(o.pid) + "/" + o.start }

func parseOwner(s string) (owner, bool) {
	i := strings.LastIndexByte(s, '/')
	if i < 0 {
		return owner{}, false
	}
	j := strings.LastIndexByte(s[:i], '/')
	if j < 0 {
		return owner{}, false
	}
	pid, err := strconv.Atoi(s[j+1 : i])
	if err != nil {
		return owner{}, false
	}
	return owner{host: s[:j], pid: pid, start: s[i+1:]}, true
}

// selfOwner is this process as an owner.
func selfOwner() owner {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	pid := os.Getpid()
	start, ok := processStart(pid)
	if !ok {
		// Without /proc, a value no other process shares.
		start = "t" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	return owner{host: host, pid: pid, start: start}
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

// goneFrom reports whether o is a process of self's host that no longer
// runs: its pid is free or belongs to a process started at another time.
// Of another host nothing is known, and it reports false.
func (o owner) goneFrom(self owner) bool {
	if o.host != self.host {
		return false
	}
	if o == self {
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

// readLease returns a run's lease, nil when it has none.
func (t *Trainer) readLease(ctx context.Context, r *Run) (*lease, error) {
	rows, err := t.opts.Conn.Query(ctx, fmt.Sprintf("SELECT owner, dateDiff('millisecond', heartbeat_at, now64(3)) FROM training_leases FINAL WHERE model_id = %s AND run_id = %s",
		quote(r.ModelID), quote(r.RunID)))
	if err != nil {
		return nil, fmt.Errorf("read the lease of run %s: %w", r.RunID, err)
	}
	defer rows.Close()
	var l *lease
	for rows.Next() {
		var (
			who string
			ms  int64
		)
		if err := rows.Scan(&who, &ms); err != nil {
			return nil, fmt.Errorf("read the lease of run %s: %w", r.RunID, err)
		}
		l = &lease{owner: who, age: time.Duration(ms) * time.Millisecond}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the lease of run %s: %w", r.RunID, err)
	}
	return l, nil
}

// heldElsewhere reports whether a run recorded as running is being run
// by another live trainer: its lease is younger than Options.Lease and its
// owner is not a process of this host that has gone. It also returns why,
// for the logs.
func (t *Trainer) heldElsewhere(ctx context.Context, r *Run) (bool, string, error) {
	l, err := t.readLease(ctx, r)
	if err != nil {
		return false, "", err
	}
	switch {
	case l == nil:
		return false, "no lease recorded", nil
	case l.owner == t.self.String():
		return false, "held by this process", nil
	case l.age >= t.opts.Lease:
		return false, fmt.Sprintf("trainer %s sent no heartbeat for %s (lease %s)", l.owner, l.age.Round(time.Second), t.opts.Lease), nil
	}
	if o, ok := parseOwner(l.owner); ok && o.goneFrom(t.self) {
		return false, fmt.Sprintf("trainer %s no longer runs on this host", l.owner), nil
	}
	return true, fmt.Sprintf("trainer %s holds it (heartbeat %s ago, lease %s)", l.owner, l.age.Round(time.Millisecond), t.opts.Lease), nil
}

// writeLease records a heartbeat of run r by this process.
func (t *Trainer) writeLease(ctx context.Context, r *Run) error {
	err := t.opts.Conn.Exec(ctx, fmt.Sprintf("INSERT INTO training_leases (run_id, model_id, owner, heartbeat_at) SELECT %s, %s, %s, now64(3)",
		quote(r.RunID), quote(r.ModelID), quote(t.self.String())))
	if err != nil {
		return fmt.Errorf("write the lease of run %s: %w", r.RunID, err)
	}
	return nil
}

// holdLease writes run r's first heartbeat, then one every third of the
// lease until the returned stop is called (stop waits for a heartbeat in
// flight, so none lands after it). A failed heartbeat is logged and
// retried at the next tick; the run goes on.
func (t *Trainer) holdLease(ctx context.Context, r *Run) (stop func(), err error) {
	if err := t.writeLease(ctx, r); err != nil {
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
				if err := t.writeLease(hctx, r); err != nil && hctx.Err() == nil {
					t.log.Warn("training run heartbeat", "model", r.ModelID, "run_id", r.RunID, "err", err)
				}
			}
		}
	})
	var once sync.Once
	return func() { once.Do(func() { cancel(); wg.Wait() }) }, nil
}

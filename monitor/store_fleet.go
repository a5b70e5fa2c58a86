package monitor

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/driftwatch/driftwatch/internal/chsql"
)

// The fleet's queries (monitor_instances, monitor_leases): every time in
// them is ClickHouse's (now64), the one clock all instances share. The
// newest row of an instance or tenure is taken with argMax rather than
// FINAL, so that no filter can pick an older row, and a release or stop
// written in the same millisecond as a renewal wins the tie.

// Heartbeat records that instance is live (stopped: that it is leaving)
// and renews its tenures of held (model → claimed_at), in one insert each.
func (s *Store) Heartbeat(ctx context.Context, instance string, stopped bool, held map[string]time.Time) error {
	if err := s.conn.Exec(ctx, fmt.Sprintf("INSERT INTO monitor_instances (instance_id, stopped, heartbeat_at) SELECT %s, %t, now64(3)",
		chsql.String(instance), stopped)); err != nil {
		return fmt.Errorf("write the heartbeat of monitor %s: %w", instance, err)
	}
	if len(held) == 0 {
		return nil
	}
	rows := make([]string, 0, len(held))
	for model, at := range held {
		rows = append(rows, fmt.Sprintf("(%s, %s, %s)", chsql.String(model), chsql.String(instance), chsql.Time(at)))
	}
	return s.writeTenures(ctx, instance, "renew", false, rows)
}

// writeTenures inserts tenure rows (model, owner, claimed_at) stamped with
// ClickHouse's now as heartbeat_at.
func (s *Store) writeTenures(ctx context.Context, instance, what string, released bool, rows []string) error {
	q := fmt.Sprintf("INSERT INTO monitor_leases (model_id, owner, claimed_at, released, heartbeat_at) SELECT m, o, c, %t, now64(3) FROM values('m String, o String, c DateTime64(3, ''UTC'')', %s)",
		released, strings.Join(rows, ", "))
	if err := s.conn.Exec(ctx, q); err != nil {
		return fmt.Errorf("%s %d model leases of monitor %s: %w", what, len(rows), instance, err)
	}
	return nil
}

// Claim begins instance's tenures of models, claimed now by ClickHouse's
// clock (claimed_at = heartbeat_at).
func (s *Store) Claim(ctx context.Context, instance string, models []string) error {
	if len(models) == 0 {
		return nil
	}
	rows := make([]string, 0, len(models))
	for _, m := range models {
		rows = append(rows, fmt.Sprintf("(%s, %s)", chsql.String(m), chsql.String(instance)))
	}
	q := fmt.Sprintf("INSERT INTO monitor_leases (model_id, owner, claimed_at, released, heartbeat_at) SELECT m, o, now64(3), false, now64(3) FROM values('m String, o String', %s)",
		strings.Join(rows, ", "))
	if err := s.conn.Exec(ctx, q); err != nil {
		return fmt.Errorf("claim %d model leases for monitor %s: %w", len(models), instance, err)
	}
	return nil
}

// Release ends instance's tenures of models (model → claimed_at).
func (s *Store) Release(ctx context.Context, instance string, models map[string]time.Time) error {
	if len(models) == 0 {
		return nil
	}
	rows := make([]string, 0, len(models))
	for model, at := range models {
		rows = append(rows, fmt.Sprintf("(%s, %s, %s)", chsql.String(model), chsql.String(instance), chsql.Time(at)))
	}
	return s.writeTenures(ctx, instance, "release", true, rows)
}

// LiveInstances returns the instances whose newest heartbeat is younger
// than lease and that did not stop.
func (s *Store) LiveInstances(ctx context.Context, lease time.Duration) ([]string, error) {
	rows, err := s.conn.Query(ctx, fmt.Sprintf("SELECT instance_id FROM monitor_instances GROUP BY instance_id "+
		"HAVING NOT argMax(stopped, (heartbeat_at, stopped)) AND max(heartbeat_at) > now64(3) - toIntervalMillisecond(%d) ORDER BY instance_id",
		lease.Milliseconds()))
	if err != nil {
		return nil, fmt.Errorf("read the live monitor instances: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("read the live monitor instances: %w", err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the live monitor instances: %w", err)
	}
	return out, nil
}

// Tenures returns the tenures recorded for models (the newest row of each
// model and owner) renewed within since, their ages by ClickHouse's clock.
// It reads every model's and keeps models' (a query naming each model
// would grow with them).
func (s *Store) Tenures(ctx context.Context, models []string, since time.Duration) (map[string][]tenure, error) {
	out := map[string][]tenure{}
	if len(models) == 0 {
		return out, nil
	}
	want := make(map[string]bool, len(models))
	for _, m := range models {
		want[m] = true
	}
	rows, err := s.conn.Query(ctx, fmt.Sprintf("SELECT model_id, owner, argMax(claimed_at, (heartbeat_at, released)), argMax(released, (heartbeat_at, released)), "+
		"dateDiff('millisecond', max(heartbeat_at), now64(3)) FROM monitor_leases WHERE heartbeat_at > now64(3) - toIntervalMillisecond(%d) GROUP BY model_id, owner",
		since.Milliseconds()))
	if err != nil {
		return nil, fmt.Errorf("read the model leases: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			t  tenure
			ms int64
		)
		if err := rows.Scan(&t.model, &t.owner, &t.claimedAt, &t.released, &ms); err != nil {
			return nil, fmt.Errorf("read the model leases: %w", err)
		}
		t.age = time.Duration(ms) * time.Millisecond
		if want[t.model] {
			out[t.model] = append(out[t.model], t)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the model leases: %w", err)
	}
	return out, nil
}

// NewestWindow returns the end of model's newest window in drift_results
// (zero when it has none), where an instance taking the model over goes
// on from.
func (s *Store) NewestWindow(ctx context.Context, model string) (time.Time, error) {
	var end time.Time
	if err := s.conn.QueryRow(ctx, fmt.Sprintf("SELECT max(window_end) FROM drift_results WHERE model_id = %s", chsql.String(model))).Scan(&end); err != nil {
		return time.Time{}, fmt.Errorf("read the newest window of %s: %w", model, err)
	}
	if end.Unix() <= 0 { // max of no rows
		return time.Time{}, nil
	}
	return end.UTC(), nil
}

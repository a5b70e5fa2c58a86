package admin

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/driftwatch/driftwatch/internal/testdb"
)

// TestForgetOnCluster erases subjects from a database made with the
// cluster DDL (testdb.OpenOneShard: the rows in <table>_local, the
// original names reading them, and refusing DELETE as Distributed tables
// do): by segment (its predictions named literally, two statements of one
// prediction each) and by event id. Each time nothing of the subject is
// left and the other subject is intact; every delete went to a _local
// table ON CLUSTER, read no other table, and parses in the real engine.
// Without the cluster setting the same forget fails on the first delete.
func TestForgetOnCluster(t *testing.T) {
	conn, _ := testdb.OpenOneShard(t, "forget_cluster")
	ctx := context.Background()
	exec := func(sql string) {
		t.Helper()
		if err := conn.Conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	// Subjects u-0, u-1, u-2: two inferences each (the user segment), the
	// outcome of the first, its labelling, a business metric in the
	// segment and a rejected inference naming the first prediction.
	for s := range 3 {
		for j := range 2 {
			exec(fmt.Sprintf(`INSERT INTO inferences_local (event_id, model_id, model_version, prediction_id, timestamp, features_numeric, segment, ingested_at)
				VALUES ('e%d-%d', 'm', 'v1', 'p%d-%d', now64(3) - %d, map('age', %d), map('user', 'u-%d'), now64(3))`, s, j, s, j, 10*s+j, 30+s, s))
		}
		exec(fmt.Sprintf(`INSERT INTO outcomes_local (event_id, model_id, prediction_id, timestamp, ingested_at) VALUES ('o%d', 'm', 'p%d-0', now64(3), now64(3))`, s, s))
		exec(fmt.Sprintf(`INSERT INTO labeling_queue_local (model_id, prediction_id, event_id, batch_id, assignee, strategy, stratum, handed_out_at)
			VALUES ('m', 'p%d-0', 'e%d-0', 'b', 'ana', 'uncertainty', 'random', now64(3))`, s, s))
		exec(fmt.Sprintf(`INSERT INTO business_metrics_local (event_id, metric, value, timestamp, model_id, segment, ingested_at) VALUES ('b%d', 'revenue', 1, now64(3), 'm', map('user', 'u-%d'), now64(3))`, s, s))
		exec(fmt.Sprintf(`INSERT INTO dead_letters_local (timestamp, received_at, model_id, kind, reason, payload) VALUES (now64(3), now64(3), 'm', 'inference', 'no prediction',
			'{"event_id":"bad%d","prediction_id":"p%d-0","segment":{"user":"u-%d"}}')`, s, s, s))
	}
	count := func(q string) uint64 {
		t.Helper()
		var n uint64
		if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	rows := func(s int) string {
		return fmt.Sprint([]uint64{
			count(fmt.Sprintf("SELECT count() FROM inferences WHERE startsWith(event_id, 'e%d-')", s)),
			count(fmt.Sprintf("SELECT count() FROM outcomes WHERE prediction_id = 'p%d-0'", s)),
			count(fmt.Sprintf("SELECT count() FROM labeling_queue WHERE prediction_id = 'p%d-0'", s)),
			count(fmt.Sprintf("SELECT count() FROM business_metrics WHERE event_id = 'b%d'", s)),
			count(fmt.Sprintf("SELECT count() FROM dead_letters WHERE JSONExtractString(payload, 'event_id') = 'bad%d'", s)),
		})
	}
	const all, none = "[2 1 1 1 1]", "[0 0 0 0 0]"
	for s := range 3 {
		if got := rows(s); got != all {
			t.Fatalf("subject %d before forget: %s, want %s", s, got, all)
		}
	}

	// Without the cluster setting, the delete goes to the Distributed
	// table, which refuses it.
	seg, err := (&forgetConfig{Segment: "user=u-0", segKey: "user", segValue: "u-0"}).subject()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := forget(ctx, conn, seg, false, ""); err == nil || !strings.Contains(err.Error(), "delete the subject's rows") {
		t.Fatalf("forget without the cluster on a cluster's tables: err = %v, want a refused delete", err)
	}
	if got := rows(0); got != all {
		t.Fatalf("subject 0 after the refused forget: %s, want %s", got, all)
	}

	before := len(conn.Execs())
	defer func(n int) { maxLiteralPredictions = n }(maxLiteralPredictions)
	maxLiteralPredictions = 1
	if _, err := forget(ctx, conn, seg, false, testdb.Cluster); err != nil {
		t.Fatalf("forget segment user=u-0 on the cluster: %v", err)
	}
	ev, err := (&forgetConfig{EventID: "e1-0"}).subject()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := forget(ctx, conn, ev, false, testdb.Cluster); err != nil {
		t.Fatalf("forget event e1-0 on the cluster: %v", err)
	}
	if got := rows(0); got != none {
		t.Errorf("subject 0 after forget: %s, want %s", got, none)
	}
	// The event's own inference, its prediction's outcome and labelling;
	// the other inference and the metric and dead letter (other event ids)
	// stay.
	if got := rows(1); got != "[1 0 0 1 1]" {
		t.Errorf("subject 1 after forgetting e1-0: %s, want [1 0 0 1 1]", got)
	}
	if got := rows(2); got != all {
		t.Errorf("subject 2 after forget: %s, want %s", got, all)
	}

	deletes := 0
	chunked := 0
	for _, sql := range conn.Execs()[before:] {
		if !strings.HasPrefix(sql, "DELETE") {
			continue
		}
		deletes++
		table, _, _ := strings.Cut(strings.TrimPrefix(sql, "DELETE FROM "), " ")
		if !strings.HasSuffix(table, "_local`") || !strings.Contains(sql, " ON CLUSTER "+testdb.Cluster+" WHERE ") {
			t.Errorf("a delete not sent to a local table on the cluster: %s", sql)
		}
		if strings.Contains(sql, "SELECT") {
			t.Errorf("a delete whose condition reads another table (replicated tables refuse it): %s", sql)
		}
		if strings.Contains(sql, "outcomes_local") && strings.Contains(sql, "IN (('m', 'p0-") {
			chunked++
		}
		var parsed string
		if err := conn.QueryRow(ctx, "SELECT formatQuery(?)", sql).Scan(&parsed); err != nil || !strings.Contains(parsed, "ON CLUSTER") {
			t.Errorf("the engine's parser on %s: %q, %v", sql, parsed, err)
		}
	}
	if deletes == 0 {
		t.Fatal("no deletes recorded")
	}
	if chunked != 2 {
		t.Errorf("segment u-0's outcomes deleted in %d statements naming its predictions, want 2 (one prediction each)", chunked)
	}
}

package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/testdb"
	"github.com/driftwatch/driftwatch/internal/teststack"
)

// TestRendezvousAssignment: every model goes to exactly one live instance,
// the same whatever order the instances are listed in; 600 models over
// three instances give each a fair share (within ±25% of 200: the hash
// spreads them like independent draws, whose standard deviation is 11.5);
// and when an instance leaves, only its models move, each to a survivor.
func TestRendezvousAssignment(t *testing.T) {
	live := []string{"monitor-a", "monitor-b", "monitor-c"}
	var models []string
	for i := range 600 {
		models = append(models, "model-"+strconv.Itoa(i))
	}
	before := map[string]string{}
	share := map[string]int{}
	for _, m := range models {
		got := rendezvous(m, live)
		if !slices.Contains(live, got) {
			t.Fatalf("%s assigned to %q, not a live instance", m, got)
		}
		if again := rendezvous(m, []string{live[2], live[0], live[1]}); again != got {
			t.Fatalf("%s: %s, but %s with the instances in another order", m, got, again)
		}
		before[m] = got
		share[got]++
	}
	for _, inst := range live {
		if n := share[inst]; n < 150 || n > 250 {
			t.Errorf("%s holds %d of 600 models, want 150 to 250 (shares %v)", inst, n, share)
		}
	}
	survivors := []string{"monitor-a", "monitor-c"}
	moved := 0
	for _, m := range models {
		got := rendezvous(m, survivors)
		switch {
		case before[m] == "monitor-b":
			moved++
			if !slices.Contains(survivors, got) {
				t.Errorf("%s of the gone instance went to %q", m, got)
			}
		case got != before[m]:
			t.Errorf("%s moved from %s to %s although its instance is still live", m, before[m], got)
		}
	}
	if moved != share["monitor-b"] {
		t.Errorf("%d models moved, want monitor-b's %d", moved, share["monitor-b"])
	}
}

// TestLeaseHolder: of a model's tenures, the earliest claimed live one
// holds it; released and lapsed ones do not count; equal claims go to the
// smaller instance id; and a lapsed tenure not released is what a claim
// takes over (takenFrom), a released one is not.
func TestLeaseHolder(t *testing.T) {
	lease := 10 * time.Second
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	ten := func(owner string, claimed int, released bool, age time.Duration) tenure {
		return tenure{model: "m", owner: owner, claimedAt: t0.Add(time.Duration(claimed) * time.Second), released: released, age: age}
	}
	for _, tc := range []struct {
		name  string
		ts    []tenure
		want  string // "" when nobody holds it
		taken string
	}{
		{"none", nil, "", ""},
		{"one live", []tenure{ten("a", 0, false, time.Second)}, "a", "a"},
		{"earliest of two concurrent claims", []tenure{ten("b", 2, false, 0), ten("a", 1, false, 0)}, "a", "b"},
		{"equal claims: smaller id", []tenure{ten("b", 1, false, 0), ten("a", 1, false, 0)}, "a", "b"},
		{"released does not hold", []tenure{ten("a", 0, true, time.Second), ten("b", 5, false, 0)}, "b", "b"},
		{"lapsed does not hold", []tenure{ten("a", 0, false, lease), ten("b", 5, false, 0)}, "b", "b"},
		{"all lapsed or released", []tenure{ten("a", 0, false, 2*lease), ten("b", 5, true, 0)}, "", "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, ok := holder(tc.ts, lease)
			if got := map[bool]string{true: h.owner}[ok]; got != tc.want {
				t.Errorf("holder %q, want %q", got, tc.want)
			}
		})
	}
	// takenFrom, for the instance "c" claiming.
	if got := takenFrom([]tenure{ten("a", 0, false, 2*lease)}, "c"); got != "a" {
		t.Errorf("takenFrom a lapsed lease: %q, want a", got)
	}
	if got := takenFrom([]tenure{ten("a", 0, false, 2*lease), ten("b", 5, true, 0)}, "c"); got != "" {
		t.Errorf("takenFrom a model whose newest holder released it: %q, want none", got)
	}
	if got := takenFrom([]tenure{ten("c", 0, false, 2*lease)}, "c"); got != "" {
		t.Errorf("takenFrom its own lapsed tenure: %q, want none", got)
	}
}

// TestManyMonitorsSIGKILL runs three monitor processes on one database of
// six models: every window of every model is evaluated by exactly one
// instance (drift_results.instance_id, one computed_at per window); one
// instance is killed with SIGKILL and its models are taken over by the
// two others, which go on from its last window, so that each model's
// windows run step by step without a gap or a repeat; and every schedule
// trigger is in retrain_triggers once and on the topic under the same
// keys (repeated only where the kill cut a window between the two). The two
// left, stopped cleanly, release their models and record that they
// stopped.
func TestManyMonitorsSIGKILL(t *testing.T) {
	w := newWorld(t)
	w.models, w.numeric = 6, 4
	w.start = time.Now().UTC().Truncate(time.Minute).Add(-4 * time.Hour)
	w.fill(t, 4, 1200)
	bin := teststack.Build(t, "./services/monitor")
	dir := t.TempDir()
	const step, lease = 3 * time.Second, 6 * time.Second
	cfgPath := filepath.Join(dir, "monitor.yaml")
	// A schedule trigger every second window of each model, without
	// cooldown or a daily limit: a window evaluated twice would publish
	// its trigger twice.
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(`window: 1h
step: %s
reference: 1h
lease: %s
evaluation_concurrency: 2
performance:
  enabled: false
triggers:
  schedule: %s
  cooldown: 0s
  daily_max: 100000
`, step, lease, 2*step)), 0o644); err != nil {
		t.Fatal(err)
	}
	type instance struct {
		id, addr string
		proc     *teststack.Process
	}
	var fleet []*instance
	for i := range 3 {
		in := &instance{id: "fleet-" + strconv.Itoa(i), addr: "127.0.0.1:" + strconv.Itoa(teststack.FreePort(t))}
		env := []string{"DRIFTWATCH_KAFKA_BROKERS=" + strings.Join(w.brokers, ","), "DRIFTWATCH_TOPIC_PREFIX=" + w.kopts.TopicPrefix,
			"DRIFTWATCH_CLICKHOUSE_URL=" + testdb.URL(t, w.db), "DRIFTWATCH_HTTP_ADDR=" + in.addr, "DRIFTWATCH_LOG_LEVEL=info",
			"DRIFTWATCH_SHUTDOWN_TIMEOUT=10s", "DRIFTWATCH_MONITOR_INSTANCE_ID=" + in.id}
		in.proc = teststack.Start(t, in.id, bin, env, "-config", cfgPath)
		fleet = append(fleet, in)
	}
	for _, in := range fleet {
		teststack.WaitHTTP(t, "http://"+in.addr+"/readyz", 90*time.Second, in.proc)
	}
	ctx := context.Background()
	output := func() string {
		var b strings.Builder
		for _, in := range fleet {
			fmt.Fprintf(&b, "--- %s:\n%s\n", in.id, in.proc.Output())
		}
		return b.String()
	}
	waitFor := func(what string, d time.Duration, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out after %s waiting for %s; output:\n%s", d, what, output())
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	// owners returns each model's instances among the windows ending
	// after since.
	owners := func(since time.Time) map[string][]string {
		t.Helper()
		rows, err := w.conn.Query(ctx, fmt.Sprintf("SELECT model_id, arraySort(groupUniqArray(instance_id)) FROM drift_results WHERE window_end > fromUnixTimestamp64Milli(%d) GROUP BY model_id", since.UnixMilli()))
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string][]string{}
		for rows.Next() {
			var m string
			var ids []string
			if err := rows.Scan(&m, &ids); err != nil {
				t.Fatal(err)
			}
			out[m] = ids
		}
		return out
	}
	// expect is the assignment of the six models by rendezvous hashing
	// over the live instances.
	expect := func(live []*instance) map[string][]string {
		var ids []string
		for _, in := range live {
			ids = append(ids, in.id)
		}
		out := map[string][]string{}
		for i := range 6 {
			m := "model-" + strconv.Itoa(i)
			out[m] = []string{rendezvous(m, ids)}
		}
		return out
	}
	// Settled: the instances have split the models as they hash, each
	// model evaluated by its one instance over three steps.
	want := expect(fleet)
	waitFor("the three instances to split the six models", 2*time.Minute, func() bool {
		return fmt.Sprint(owners(time.Now().Add(-3*step))) == fmt.Sprint(want)
	})
	held := map[string][]string{}
	for m, ids := range want {
		held[ids[0]] = append(held[ids[0]], m)
	}
	for _, ids := range held {
		slices.Sort(ids)
	}
	t.Logf("models by instance: %v", held)
	var victim *instance
	for _, in := range fleet {
		if victim == nil || len(held[in.id]) > len(held[victim.id]) {
			victim = in
		}
	}
	if len(held) < 2 {
		t.Fatalf("one instance evaluates every model: %v", held)
	}
	var survivors []*instance
	for _, in := range fleet {
		if in != victim {
			survivors = append(survivors, in)
		}
	}
	victim.proc.Kill()
	killed := time.Now()
	t.Logf("%s killed with SIGKILL; it held %v", victim.id, held[victim.id])
	// Taken over by the survivors as the models hash over them; the
	// others stay where they were.
	want = expect(survivors)
	waitFor("the killed instance's models taken over", 2*time.Minute, func() bool {
		return fmt.Sprint(owners(killed.Add(lease))) == fmt.Sprint(want)
	})
	for _, m := range held[victim.id] {
		var first time.Time
		if err := w.conn.QueryRow(ctx, fmt.Sprintf("SELECT min(computed_at) FROM drift_results WHERE model_id = '%s' AND instance_id != '%s' AND computed_at > fromUnixTimestamp64Milli(%d)", m, victim.id, killed.UnixMilli())).Scan(&first); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: first result by its new instance %s after the kill (lease %s, step %s)", m, first.Sub(killed).Round(100*time.Millisecond), lease, step)
	}
	// Every model evaluated again after this, then the survivors stop
	// cleanly.
	again := time.Now().Add(step)
	waitFor("a window of every model after the takeover", time.Minute, func() bool { return len(owners(again)) == 6 })
	var owned, takeovers float64
	for _, in := range survivors {
		o, err := teststack.MetricSum(ctx, in.addr, "driftwatch_monitor_models_owned")
		if err != nil {
			t.Fatal(err)
		}
		k, err := teststack.MetricSum(ctx, in.addr, "driftwatch_monitor_lease_takeovers_total")
		if err != nil {
			t.Fatal(err)
		}
		owned, takeovers = owned+o, takeovers+k
	}
	if owned != 6 || takeovers != float64(len(held[victim.id])) {
		t.Errorf("the survivors own %v models and took %v over; want 6 and the killed instance's %d", owned, takeovers, len(held[victim.id]))
	}
	for _, in := range survivors {
		if err := in.proc.Stop(20 * time.Second); err != nil {
			t.Errorf("%s: %v", in.id, err)
		}
	}
	// Stopped cleanly, the survivors released their models and said so:
	// another instance would take them at once. Only the killed
	// instance's tenures are left unreleased (lapsed).
	if n := w.count(t, "SELECT count() FROM (SELECT owner, argMax(released, (heartbeat_at, released)) AS r FROM monitor_leases GROUP BY model_id, owner) WHERE NOT r AND owner != '"+victim.id+"'"); n != 0 {
		t.Errorf("%d tenures of the stopped instances not released", n)
	}
	if n := w.count(t, "SELECT count() FROM (SELECT instance_id, argMax(stopped, (heartbeat_at, stopped)) AS s FROM monitor_instances GROUP BY instance_id) WHERE s"); n != 2 {
		t.Errorf("%d instances recorded as stopped, want the two stopped cleanly", n)
	}

	// No window evaluated twice, by one instance or two.
	if n := w.count(t, "SELECT count() FROM (SELECT model_id, window_end FROM drift_results GROUP BY model_id, window_end HAVING uniqExact(instance_id) > 1 OR uniqExact(computed_at) > 1)"); n != 0 {
		t.Errorf("%d model windows evaluated more than once; output:\n%s", n, output())
	}
	// Each model's windows follow one another step by step: the takeover
	// went on from the killed instance's last window, without a gap.
	rows, err := w.conn.Query(ctx, fmt.Sprintf("SELECT model_id, uniqExact(window_end), intDiv(dateDiff('millisecond', min(window_end), max(window_end)), %d) + 1, arraySort(groupUniqArray(instance_id)) FROM drift_results GROUP BY model_id ORDER BY model_id", step.Milliseconds()))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	models := 0
	for rows.Next() {
		var m string
		var n uint64
		var span int64
		var ids []string
		if err := rows.Scan(&m, &n, &span, &ids); err != nil {
			t.Fatal(err)
		}
		models++
		t.Logf("%s: %d windows by %v", m, n, ids)
		if int64(n) != span {
			t.Errorf("%s: %d windows over a span of %d steps: a gap", m, n, span)
		}
	}
	if models != 6 {
		t.Errorf("%d models evaluated, want 6", models)
	}
	// Every trigger once: one row per dedup key in retrain_triggers, and
	// the topic holds the same keys. A key may be on the topic twice only
	// when the kill cut an evaluation between the topic and the table:
	// the window is evaluated again and republishes under its key, which
	// the trainer ignores (at most once per model of the killed instance).
	total, keys := w.count(t, "SELECT count() FROM retrain_triggers"), w.count(t, "SELECT uniqExact(dedup_key) FROM retrain_triggers")
	if total == 0 || total != keys {
		t.Errorf("retrain_triggers holds %d rows of %d dedup keys; want one per key, at least one", total, keys)
	}
	rows2, err := w.conn.Query(ctx, "SELECT DISTINCT dedup_key FROM retrain_triggers")
	if err != nil {
		t.Fatal(err)
	}
	inTable := map[string]bool{}
	for rows2.Next() {
		var k string
		if err := rows2.Scan(&k); err != nil {
			t.Fatal(err)
		}
		inTable[k] = true
	}
	rows2.Close()
	sent := w.triggersSent(t)
	rd, err := kafkaio.NewReader(w.kopts, "retrain-triggers", "fleet-test")
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	onTopic := map[string]int{}
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for n := 0; n < sent; n++ {
		msg, err := rd.FetchMessage(rctx)
		if err != nil {
			t.Fatalf("read trigger %d of %d: %v", n+1, sent, err)
		}
		var tr struct {
			DedupKey string `json:"dedup_key"`
		}
		if err := json.Unmarshal(msg.Value, &tr); err != nil {
			t.Fatal(err)
		}
		onTopic[tr.DedupKey]++
	}
	repeats := sent - len(onTopic)
	for k := range onTopic {
		if !inTable[k] {
			t.Errorf("trigger %s is on the topic and not in retrain_triggers", k)
		}
	}
	if len(onTopic) != len(inTable) || repeats > len(held[victim.id]) {
		t.Errorf("the topic holds %d triggers of %d keys, retrain_triggers %d keys; want the same keys, repeated at most %d times (the killed instance's models)",
			sent, len(onTopic), len(inTable), len(held[victim.id]))
	}
	t.Logf("%d schedule triggers, each in retrain_triggers once; on the topic %d messages (%d republished after the kill)", total, sent, repeats)
}

// TestConcurrentClaimsHaveOneWinner: three instances claim the same ten
// free models at the same moment, twenty times over, against the real
// ClickHouse: each model is won by exactly one of them (the earliest
// claim), and the losers' claims are released, so that the winner is the
// holder the tenures show.
func TestConcurrentClaimsHaveOneWinner(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	var fleets []*fleet
	for i := range 3 {
		id := "claimer-" + strconv.Itoa(i)
		fleets = append(fleets, newFleet(id, time.Minute, &Store{conn: w.conn, instance: id}, slog.New(slog.DiscardHandler), prometheus.NewRegistry()))
	}
	for round := range 20 {
		var models []string
		for i := range 10 {
			models = append(models, fmt.Sprintf("race-%d-%d", round, i))
		}
		won := make([]map[string]time.Time, len(fleets))
		errs := make([]error, len(fleets))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, f := range fleets {
			wg.Go(func() {
				<-start
				var lost map[string]time.Time
				won[i], lost, errs[i] = f.claim(ctx, models, nil)
				if errs[i] == nil {
					errs[i] = f.store.Release(ctx, f.self, lost)
				}
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d, %s: %v", round, fleets[i].self, err)
			}
		}
		ts, err := fleets[0].store.Tenures(ctx, models, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range models {
			var winners []string
			for i, f := range fleets {
				if _, ok := won[i][m]; ok {
					winners = append(winners, f.self)
				}
			}
			h, ok := holder(ts[m], time.Minute)
			if len(winners) != 1 || !ok || h.owner != winners[0] {
				t.Errorf("round %d, %s: won by %v, held by %q (%v)", round, m, winners, h.owner, ok)
			}
			live := 0
			for _, tn := range ts[m] {
				if !tn.released {
					live++
				}
			}
			if live != 1 {
				t.Errorf("round %d, %s: %d tenures not released, want the winner's alone", round, m, live)
			}
		}
	}
}

// TestFleetSettings: lease must be at least 3s and instance_id printable;
// the defaults are valid, and an empty instance_id becomes the host name
// and pid.
func TestFleetSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*Settings)
		want string // "" when valid
	}{
		{"defaults", func(*Settings) {}, ""},
		{"a named instance", func(s *Settings) { s.InstanceID = "monitor-a" }, ""},
		{"short lease", func(s *Settings) { s.Lease = time.Second }, "lease: must be at least 3s, got 1s"},
		{"control character", func(s *Settings) { s.InstanceID = "a\nb" }, "instance_id: must be at most 200 characters without control characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := DefaultSettings()
			tc.set(&s)
			err := s.Validate()
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
	host, _ := os.Hostname()
	if id := defaultInstanceID(); id != host+"-"+strconv.Itoa(os.Getpid()) {
		t.Errorf("default instance_id %q, want the host name and pid", id)
	}
}
